"""GAN checkpoints: the native safetensors format, and safe import of NVIDIA .pkl and rosinality .pt files.

Native format (`.safetensors`, format version 1):
- tensors are the networks' state dicts with a prefix per network: `G_ema.mapping.fc0.weight`,
  `G.synthesis.b4.const`, `D.b4.out.bias` (NVIDIA stylegan2-ada-pytorch names after the prefix);
- metadata (all strings): `format` = "stylesurv-gan", `format_version` = "1", `networks` = JSON list of
  the prefixes present, `class.<name>` = "Generator" | "Discriminator", `config.<name>` = JSON constructor
  arguments (the network's `init_kwargs`), and `extra` = JSON of whatever the writer adds (e.g. kimg).

The format of a file is recognised from its first bytes, never its extension: safetensors (8-byte header
length + JSON), zip (torch.save), or pickle (an NVIDIA snapshot, or a legacy torch.save stream).
NVIDIA pickles go through `nvidia_pickle` (no code runs); torch files through
`torch.load(weights_only=True)`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from stylesurv.core.atomic import write_safetensors_atomic
from stylesurv.core.errors import CheckpointError, InputError
from stylesurv.core.hashing import sha256_file
from stylesurv.gan import nvidia_pickle, rosinality
from stylesurv.gan.networks import Discriminator, Generator

FORMAT = "stylesurv-gan"
FORMAT_VERSION = 1
NETWORK_NAMES = ("G", "D", "G_ema")
_CLASSES: dict[str, type[torch.nn.Module]] = {"Generator": Generator, "Discriminator": Discriminator}
_OPTIONAL_BUFFER = re.compile(r"(^|\.)resample_filter$")  # defaults are fine where a format lacks them
_LEGACY_TORCH_PREFIX = b"\x80\x02\x8a\x0a"  # protocol-2 pickle of the 10-byte legacy torch.save magic int

# Keys of NVIDIA Generator._init_kwargs that are not our constructor's: stylegan3's `networks_stylegan2`
# passes synthesis arguments at the top level; `fused_modconv_default` is a speed switch chosen at run time.
_SYNTHESIS_KEYS = {
    "channel_base", "channel_max", "num_fp16_res", "conv_clamp", "architecture", "resample_filter",
    "fp16_channels_last", "kernel_size", "use_noise", "activation",
}  # fmt: skip
_IGNORED_KEYS = {"fused_modconv_default"}


@dataclass
class NetworkRecord:
    """One network read from a checkpoint: its class name, constructor config and NVIDIA-named tensors."""

    name: str
    class_name: str
    config: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    estimate_w_avg: bool = False  # the source had no average w (rosinality): compute it after building


def detect_format(path: str | os.PathLike[str]) -> str:
    """'safetensors', 'torch-zip', 'torch-legacy' or 'pickle', from the file's first bytes."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint file not found")
    with open(path, "rb") as f:
        head = f.read(16)
    size = path.stat().st_size
    if head[:4] == b"PK\x03\x04":
        return "torch-zip"
    if head[:4] == _LEGACY_TORCH_PREFIX:
        return "torch-legacy"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{" and 8 + int.from_bytes(head[:8], "little") <= size:
        return "safetensors"
    raise CheckpointError(f"{path}: not a GAN checkpoint (neither safetensors, a torch file nor a pickle)")


# ------------------------------------------------------------------------------------------------ reading
def read_checkpoint(path: str | os.PathLike[str]) -> tuple[str, dict[str, NetworkRecord], dict[str, Any]]:
    """(format, networks by name, extra metadata) of any supported checkpoint; nothing from it is executed."""
    path = Path(path)
    kind = detect_format(path)
    if kind == "safetensors":
        networks, extra = _read_native(path)
        return kind, networks, extra
    data = path.read_bytes()
    try:
        persistent = kind == "torch-zip" and _zip_has_persistent_objects(data)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    if kind == "pickle" or persistent:
        return "nvidia-pickle", _read_nvidia(data, str(path)), {}
    return "rosinality", _read_rosinality(path), {}


def _read_native(path: Path) -> tuple[dict[str, NetworkRecord], dict[str, Any]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise CheckpointError(f"{path}: safetensors file without stylesurv GAN metadata")
            version = int(meta.get("format_version", "0"))
            if version > FORMAT_VERSION:
                raise CheckpointError(f"{path}: format version {version} is newer than this stylesurv reads")
            names = json.loads(meta["networks"])
            keys = list(f.keys())
            networks = {}
            for name in names:
                prefix = f"{name}."
                tensors = {k[len(prefix) :]: f.get_tensor(k) for k in keys if k.startswith(prefix)}
                networks[name] = NetworkRecord(
                    name, meta[f"class.{name}"], json.loads(meta[f"config.{name}"]), tensors
                )
            return networks, json.loads(meta.get("extra", "{}"))
    except (SafetensorError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(
            f"{path}: damaged stylesurv GAN checkpoint ({type(exc).__name__}: {exc})"
        ) from exc


def _zip_has_persistent_objects(data: bytes) -> bool:
    import io
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return any(
                name.endswith("data.pkl") and b"torch_utils.persistence" in archive.read(name)
                for name in archive.namelist()
            )
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise CheckpointError(
            f"damaged torch checkpoint: not a complete zip archive ({exc}); copy it again"
        ) from exc


def _plain(value: Any) -> Any:
    """JSON-able copy of a config value (EasyDicts become dicts, tuples lists, numpy scalars numbers)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, torch.Tensor):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise CheckpointError(
        f"unsupported value of type {type(value).__name__} in a network's constructor arguments"
    )


def _generator_config(kwargs: dict[str, Any], source: str) -> dict[str, Any]:
    config = {k: v for k, v in kwargs.items() if k not in _SYNTHESIS_KEYS | _IGNORED_KEYS}
    synthesis = dict(config.pop("synthesis_kwargs", {}) or {})
    synthesis.update({k: v for k, v in kwargs.items() if k in _SYNTHESIS_KEYS})
    config["synthesis_kwargs"] = synthesis
    config["mapping_kwargs"] = dict(config.get("mapping_kwargs", {}) or {})
    known = {
        "z_dim",
        "c_dim",
        "w_dim",
        "img_resolution",
        "img_channels",
        "mapping_kwargs",
        "synthesis_kwargs",
    }
    if set(config) - known:
        raise CheckpointError(f"{source}: unknown generator arguments {sorted(set(config) - known)}")
    return config


def _is_stylegan3(record: nvidia_pickle.PersistentObject) -> bool:
    synthesis = record.children.get("synthesis")
    layer_names = synthesis.children if isinstance(synthesis, nvidia_pickle.PersistentObject) else {}
    return (
        "class SynthesisInput" in record.module_src
        or "input" in layer_names
        or any(re.fullmatch(r"L\d+_\d+_\d+", n) for n in layer_names)
    )


def _read_nvidia(data: bytes, source: str) -> dict[str, NetworkRecord]:
    snapshot = nvidia_pickle.read_nvidia_pickle(data, source)
    if isinstance(snapshot, nvidia_pickle.PersistentObject):  # a bare network rather than a snapshot dict
        snapshot = {"D" if snapshot.class_name == "Discriminator" else "G_ema": snapshot}
    if not isinstance(snapshot, dict):
        raise CheckpointError(f"{source}: the pickle does not hold a snapshot dict with G, D and G_ema")
    networks = {}
    for name in NETWORK_NAMES:
        record = snapshot.get(name)
        if record is None:
            continue
        if not isinstance(record, nvidia_pickle.PersistentObject):
            raise CheckpointError(f"{source}: {name} is not a persistent StyleGAN network")
        if record.class_name not in _CLASSES:
            raise CheckpointError(f"{source}: {name} is a {record.class_name}, not a StyleGAN2 network")
        if record.init_args:
            raise CheckpointError(
                f"{source}: {name} was built with positional arguments; cannot read its config"
            )
        kwargs = _plain(record.init_kwargs)
        if record.class_name == "Generator":
            if _is_stylegan3(record):
                raise CheckpointError(
                    f"{source}: {name} is a StyleGAN3 (alias-free) generator, not a StyleGAN2 network; "
                    "use a StyleGAN2 checkpoint (stylegan2-ada-pytorch, or stylegan3 with --cfg=stylegan2)"
                )
            kwargs = _generator_config(kwargs, source)
        networks[name] = NetworkRecord(name, record.class_name, kwargs, dict(record.tensors()))
    if not networks:
        raise CheckpointError(f"{source}: the pickle holds none of G, D, G_ema")
    return networks


def _read_rosinality(path: Path) -> dict[str, NetworkRecord]:
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ... for refused or broken files
        raise CheckpointError(f"{path}: {_torch_refusal(exc)}") from exc
    if not rosinality.looks_like_rosinality(obj):
        raise CheckpointError(f"{path}: a torch file, but not a rosinality StyleGAN2 checkpoint (no g_ema/g)")
    networks = {}
    for ours, theirs in (("G_ema", "g_ema"), ("G", "g")):
        if theirs in obj:
            config, tensors = rosinality.generator_from_rosinality(obj[theirs], f"{path}:{theirs}")
            w_avg = rosinality.latent_avg_of(obj, config["w_dim"])
            if w_avg is not None:
                tensors["mapping.w_avg"] = w_avg
            networks[ours] = NetworkRecord(ours, "Generator", config, tensors, estimate_w_avg=w_avg is None)
    if "d" in obj:
        config, tensors = rosinality.discriminator_from_rosinality(obj["d"], f"{path}:d")
        networks["D"] = NetworkRecord("D", "Discriminator", config, tensors)
    return networks


def _torch_refusal(exc: Exception) -> str:
    """Why torch's weights-only reader refused a file, in our words: the refused global when it names one
    (never torch's advice to turn the safe reader off), else its first line without terminal codes."""
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", str(exc))
    refused = re.search(r"GLOBAL ([A-Za-z_][\w.]*)", text)
    if refused:
        return (
            f"refused: it needs the Python object {refused.group(1)}, and a checkpoint may hold only "
            "tensors and plain data (nothing in it was run); convert it where it was made, or use a "
            "snapshot saved with plain tensors"
        )
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return f"cannot read this torch file safely ({first[:200]}); it may be damaged or not a checkpoint"


# Limits on a network's config, checked before anything is allocated: a file may claim any size.
CONFIG_LIMITS = {"z_dim": 4096, "w_dim": 4096, "c_dim": 4096, "img_resolution": 4096, "img_channels": 4}


def _check_config(record: NetworkRecord, source: str) -> None:
    """Refuse a config whose sizes are absurd (a 320 GB allocation, a negative width) before building."""
    if not isinstance(record.config, dict):
        raise CheckpointError(f"{source}: {record.name} has an invalid config (not an object)")
    for key, limit in CONFIG_LIMITS.items():
        value = record.config.get(key)
        if value is None:
            continue
        low = 1 if key in ("img_resolution", "img_channels") else 0
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= limit:
            raise CheckpointError(
                f"{source}: {record.name} has {key} = {value!r}, outside {low}..{limit}; the file is damaged "
                "or not a StyleGAN2 checkpoint"
            )
    resolution = record.config.get("img_resolution")
    if resolution is not None and resolution & (resolution - 1):
        raise CheckpointError(
            f"{source}: {record.name} has img_resolution = {resolution}, not a power of two"
        )


# ----------------------------------------------------------------------------------------------- building
def build_network(record: NetworkRecord, source: str = "checkpoint") -> torch.nn.Module:
    """Construct the network from its config and load its tensors (strict, except default FIR buffers)."""
    cls = _CLASSES.get(record.class_name)
    if cls is None:
        raise CheckpointError(f"{source}: {record.name} has unknown class {record.class_name!r}")
    _check_config(record, source)
    try:
        net = cls(**record.config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: {record.name} has an invalid config: {exc}") from exc
    expected = net.state_dict()
    missing = [k for k in expected if k not in record.tensors and not _OPTIONAL_BUFFER.search(k)]
    if record.estimate_w_avg and "mapping.w_avg" in missing:
        missing.remove("mapping.w_avg")
    unexpected = [k for k in record.tensors if k not in expected]
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: {record.name} does not match a {record.class_name} built from its config "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    for key, tensor in record.tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"{source}: {record.name}.{key} holds NaN or infinite values (a diverged or damaged "
                "checkpoint); use an earlier snapshot"
            )
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"{source}: {record.name}.{key} has shape {list(tensor.shape)}, "
                f"expected {list(expected[key].shape)}"
            )
    net.load_state_dict({k: v.to(expected[k].dtype) for k, v in record.tensors.items()}, strict=False)
    if record.estimate_w_avg and isinstance(net, Generator):
        net.mapping.w_avg.copy_(rosinality.estimate_w_avg(net))
    return net.eval()


def load_networks(
    path: str | os.PathLike[str], names: tuple[str, ...] | None = None
) -> dict[str, torch.nn.Module]:
    """All networks of a checkpoint (or just `names`), built and in eval mode, on the CPU."""
    _, records, _ = read_checkpoint(path)
    wanted = names or tuple(records)
    for name in wanted:
        if name not in records:
            raise CheckpointError(
                f"{path}: no network {name!r} in this checkpoint (it has {sorted(records)})"
            )
    return {name: build_network(records[name], str(path)) for name in wanted}


def load_generator(
    path: str | os.PathLike[str], which: str = "G_ema", device: str | torch.device = "cpu"
) -> Generator:
    """The generator `which` ("G_ema" by default, or "G") of any supported checkpoint, in eval mode."""
    net = load_networks(path, (which,))[which]
    if not isinstance(net, Generator):
        raise CheckpointError(f"{path}: {which} is not a generator")
    return net.to(device)


def generator_shape(path: str | os.PathLike[str], which: str = "G_ema") -> dict[str, int]:
    """The generator's image size and channels (``img_resolution``, ``img_channels``), read from the
    checkpoint without building it: what later stages check their settings against before they start."""
    _, records, _ = read_checkpoint(path)
    record = records.get(which)
    if record is None or "img_resolution" not in record.config:
        raise CheckpointError(f"{path}: no generator {which!r} in this checkpoint (it has {sorted(records)})")
    return {
        "img_resolution": int(record.config["img_resolution"]),
        "img_channels": int(record.config.get("img_channels", 3)),
    }


def load_discriminator(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Discriminator:
    """The discriminator "D" of any supported checkpoint, in eval mode."""
    net = load_networks(path, ("D",))["D"]
    if not isinstance(net, Discriminator):
        raise CheckpointError(f"{path}: D is not a discriminator")
    return net.to(device)


# ------------------------------------------------------------------------------------------------ writing
def save_networks(
    path: str | os.PathLike[str],
    G: Generator | None = None,  # noqa: N803 - NVIDIA's snapshot names
    D: Discriminator | None = None,  # noqa: N803
    G_ema: Generator | None = None,  # noqa: N803
    extra_meta: dict[str, Any] | None = None,
) -> None:
    """Write the given networks to a native .safetensors checkpoint, atomically."""
    networks = {name: net for name, net in (("G", G), ("D", D), ("G_ema", G_ema)) if net is not None}
    if not networks:
        raise ValueError("save_networks needs at least one of G, D, G_ema")
    tensors: dict[str, torch.Tensor] = {}
    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "networks": json.dumps(list(networks))}
    for name, net in networks.items():
        meta[f"class.{name}"] = type(net).__name__
        meta[f"config.{name}"] = json.dumps(net.init_kwargs, sort_keys=True)
        for key, value in net.state_dict().items():
            tensors[f"{name}.{key}"] = value.detach().to("cpu", copy=True).contiguous()
    meta["extra"] = json.dumps(extra_meta or {}, sort_keys=True)
    write_safetensors_atomic(path, tensors, meta)


def convert_checkpoint(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> list[str]:
    """Rewrite any supported checkpoint as a native .safetensors file; returns the network names written."""
    kind, records, extra = read_checkpoint(src)
    nets = {name: build_network(record, str(src)) for name, record in records.items()}
    extra = dict(extra, converted_from=Path(src).name, source_format=kind, source_sha256=sha256_file(src))
    save_networks(dst, extra_meta=extra, **nets)
    return list(nets)


def checkpoint_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Format, sha256 and, per network, class, config and parameter count (read without building)."""
    kind, records, extra = read_checkpoint(path)
    networks = {}
    for name, record in records.items():
        params = sum(t.numel() for k, t in record.tensors.items() if not _is_buffer_name(k))
        networks[name] = {"class": record.class_name, "config": record.config, "parameters": params}
    return {
        "path": str(path),
        "format": kind,
        "sha256": sha256_file(path),
        "networks": networks,
        "extra": extra,
    }


def _is_buffer_name(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in ("resample_filter", "noise_const", "w_avg")
