"""Checkpoints: native round trip, NVIDIA pickles read as data (never executed), rosinality layout."""

import argparse
import collections
import math
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stylesurv.core.errors import CheckpointError, InputError
from stylesurv.gan import checkpoint as ck
from stylesurv.gan import rosinality
from stylesurv.gan.networks import Discriminator, Generator


def _tiny_networks() -> tuple[Generator, Discriminator]:
    torch.manual_seed(0)
    g = Generator(
        8,
        0,
        8,
        16,
        3,
        mapping_kwargs=dict(num_layers=2),
        synthesis_kwargs=dict(channel_base=128, channel_max=16),
    )
    for name, param in g.named_parameters():
        if name.endswith("noise_strength"):
            param.data.normal_()
    g.mapping.w_avg.normal_()
    d = Discriminator(0, 16, 3, channel_base=128, channel_max=16)
    return g.eval(), d.eval()


def _assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def _images(g: Generator) -> torch.Tensor:
    z = torch.from_numpy(np.random.RandomState(5).randn(2, g.z_dim)).float()
    with torch.no_grad():
        return g(z, None, truncation_psi=0.7, noise_mode="const")


# ------------------------------------------------------------------------------------------------ native
def test_native_round_trip_is_bit_exact(tmp_path: Path) -> None:
    g, d = _tiny_networks()
    path = tmp_path / "networks.bin"  # the extension does not matter: the format is read from the content
    ck.save_networks(path, G=g, D=d, G_ema=g, extra_meta={"kimg": 12.5})
    assert ck.detect_format(path) == "safetensors"
    _assert_same_state(ck.load_generator(path), g)
    _assert_same_state(ck.load_generator(path, which="G"), g)
    _assert_same_state(ck.load_discriminator(path), d)
    info = ck.checkpoint_info(path)
    assert info["networks"]["G_ema"]["config"] == g.init_kwargs
    assert info["networks"]["D"]["parameters"] == sum(p.numel() for p in d.parameters())
    assert info["extra"] == {"kimg": 12.5} and len(info["sha256"]) == 64
    assert torch.equal(_images(ck.load_generator(path)), _images(g))


def test_native_metadata_and_names(tmp_path: Path) -> None:
    from safetensors import safe_open

    g, _ = _tiny_networks()
    path = tmp_path / "g.safetensors"
    ck.save_networks(path, G_ema=g)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        assert "G_ema.mapping.fc0.weight" in f.keys() and "G_ema.synthesis.b4.const" in f.keys()
    assert meta["format"] == "stylesurv-gan" and meta["format_version"] == "1"
    with pytest.raises(CheckpointError, match="no network 'D'"):
        ck.load_discriminator(path)


def test_unknown_and_missing_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"hello, not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a GAN checkpoint"):
        ck.load_generator(junk)
    with pytest.raises(InputError, match="not found"):
        ck.load_generator(tmp_path / "absent.safetensors")


# ------------------------------------------------------------------------------------------ NVIDIA pickle
def _reconstruct_persistent_obj(meta):  # noqa: ANN001, ANN202 - mimics torch_utils.persistence's name only
    raise AssertionError("the loader must never call the pickled reconstruct function")


class _EasyDict(dict):
    pass


@pytest.fixture
def nvidia_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake `torch_utils.persistence` and `dnnlib.util` so pickle writes NVIDIA's global names."""
    persistence = types.ModuleType("torch_utils.persistence")
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util = types.ModuleType("dnnlib.util")
    _EasyDict.__module__ = "dnnlib.util"
    _EasyDict.__qualname__ = "EasyDict"
    util.EasyDict = _EasyDict
    for name, module in {
        "torch_utils": types.ModuleType("torch_utils"),
        "torch_utils.persistence": persistence,
        "dnnlib": types.ModuleType("dnnlib"),
        "dnnlib.util": util,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)


class _Persistent:
    """Pickles like an NVIDIA persistent_class instance: _reconstruct_persistent_obj(meta)."""

    def __init__(self, module: torch.nn.Module, module_src: str, init_kwargs: dict | None = None) -> None:
        state = {
            "training": False,
            "_parameters": collections.OrderedDict(module._parameters),
            "_buffers": collections.OrderedDict(module._buffers),
            "_non_persistent_buffers_set": set(),
            "_modules": collections.OrderedDict(
                (n, _Persistent(m, module_src)) for n, m in module._modules.items()
            ),
            "_init_args": (),
            "_init_kwargs": _EasyDict(init_kwargs or {}),
            "weight_gain": np.float64(1 / math.sqrt(3)),  # the reference keeps numpy scalars in module state
        }
        cls_name = type(module).__name__
        self.meta = dict(type="class", version=6, module_src=module_src, class_name=cls_name, state=state)

    def __reduce__(self):  # noqa: ANN204
        return (_reconstruct_persistent_obj, (self.meta,))


def _easy(config: dict) -> _EasyDict:
    return _EasyDict({k: _easy(v) if isinstance(v, dict) else v for k, v in config.items()})


def _marker_module_src(marker: Path) -> str:
    """The module_src the test snapshots carry: running it writes the marker file."""
    return f"import pathlib\npathlib.Path({str(marker)!r}).write_text('module_src was executed')\n"


def _nvidia_snapshot(g: Generator, d: Discriminator, marker: Path, protocol: int) -> bytes:
    # If anyone executed module_src, the marker file would appear.
    module_src = _marker_module_src(marker)
    snapshot = {
        "G": _Persistent(g, module_src, _easy(g.init_kwargs)),
        "D": _Persistent(d, module_src, _easy(d.init_kwargs)),
        "G_ema": _Persistent(g, module_src, _easy(g.init_kwargs)),
        "augment_pipe": None,
        "training_set_kwargs": _EasyDict(path="ffhq.zip", resolution=16, xflip=True),
    }
    return pickle.dumps(snapshot, protocol=protocol)


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_nvidia_pickle_loads_as_data_and_never_runs_module_src(
    nvidia_modules: None, tmp_path: Path, protocol: int
) -> None:
    g, d = _tiny_networks()
    marker = tmp_path / "executed.txt"
    blob = _nvidia_snapshot(g, d, marker, protocol)
    assert b"torch_utils.persistence" in blob or b"torch_utils\n" in blob
    path = tmp_path / "network-snapshot-000100.pkl"
    path.write_bytes(blob)
    assert ck.detect_format(path) == "pickle"
    g_ema = ck.load_generator(path)
    _assert_same_state(g_ema, g)
    _assert_same_state(ck.load_generator(path, which="G"), g)
    _assert_same_state(ck.load_discriminator(path), d)
    assert torch.equal(_images(g_ema), _images(g))
    assert g_ema.init_kwargs == g.init_kwargs
    assert not marker.exists()
    # The marker mechanism works: running module_src (as pickle.load would) does write the file.
    exec(compile(_marker_module_src(marker), "<module_src>", "exec"), {})
    assert marker.exists()


def test_nvidia_networks_in_a_torch_zip_load_from_its_records(nvidia_modules: None, tmp_path: Path) -> None:
    # The same snapshot written with torch.save: storages live in the zip's data/ records.
    g, d = _tiny_networks()
    marker = tmp_path / "executed.txt"
    module_src = _marker_module_src(marker)
    snapshot = {
        "G_ema": _Persistent(g, module_src, _easy(g.init_kwargs)),
        "D": _Persistent(d, module_src, _easy(d.init_kwargs)),
    }
    path = tmp_path / "snapshot.pt"
    torch.save(snapshot, path)
    assert ck.detect_format(path) == "torch-zip"
    _assert_same_state(ck.load_generator(path), g)
    _assert_same_state(ck.load_discriminator(path), d)
    assert not marker.exists()


def test_nvidia_pickle_written_under_numpy1_loads(nvidia_modules: None, tmp_path: Path) -> None:
    # numpy 1.x pickles scalars as numpy.core.multiarray.scalar (numpy 2.x: numpy._core.multiarray).
    g, d = _tiny_networks()
    blob = _nvidia_snapshot(g, d, tmp_path / "marker", protocol=3)
    assert b"cnumpy._core.multiarray\nscalar\n" in blob
    path = tmp_path / "numpy1.pkl"
    path.write_bytes(blob.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))
    _assert_same_state(ck.load_generator(path), g)


def test_stylegan3_style_top_level_kwargs_and_convert(nvidia_modules: None, tmp_path: Path) -> None:
    # stylegan3's networks_stylegan2.Generator takes synthesis arguments at the top level.
    g, d = _tiny_networks()
    kwargs = {k: v for k, v in g.init_kwargs.items() if k != "synthesis_kwargs"}
    kwargs.update(g.init_kwargs["synthesis_kwargs"], fused_modconv_default="inference_only")
    snapshot = {"G_ema": _Persistent(g, "", _easy(kwargs))}
    src = tmp_path / "sg3-stylegan2.pkl"
    src.write_bytes(pickle.dumps(snapshot))
    dst = tmp_path / "converted.safetensors"
    assert ck.convert_checkpoint(src, dst) == ["G_ema"]
    converted = ck.load_generator(dst)
    _assert_same_state(converted, g)
    assert ck.checkpoint_info(dst)["extra"]["source_format"] == "nvidia-pickle"


class _Evil:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (self.command,))


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Evil(f"touch {marker}")}))
    with pytest.raises(CheckpointError, match=r"refusing to load: .*(posix|os)\.system"):
        ck.load_generator(path)
    assert not marker.exists()
    path.write_bytes(pickle.dumps({"G_ema": (eval, ("1 + 1",))}))  # a reference to eval itself
    with pytest.raises(CheckpointError, match=r"builtins\.eval"):
        ck.load_generator(path)


class _StorageBlob:
    """Pickles as torch.storage._load_from_bytes(blob), the way tensors inside NVIDIA pickles are stored."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    def __reduce__(self):  # noqa: ANN204
        return (torch.storage._load_from_bytes, (self.blob,))


def test_code_hidden_in_a_storage_blob_is_refused(tmp_path: Path) -> None:
    # A legacy torch.save stream (magic, protocol, sys info) whose object pickle calls os.system.
    marker = tmp_path / "pwned"
    header = b"".join(
        pickle.dumps(obj, protocol=2)
        for obj in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True})
    )
    blob = header + pickle.dumps(_Evil(f"touch {marker}"), protocol=2) + pickle.dumps([], protocol=2)
    path = tmp_path / "blob.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _StorageBlob(blob)}))
    with pytest.raises(CheckpointError, match=r"(posix|os)\.system"):
        ck.load_generator(path)
    assert not marker.exists()


def test_stylegan3_generator_is_rejected_clearly(nvidia_modules: None, tmp_path: Path) -> None:
    g, _ = _tiny_networks()
    record = _Persistent(g, "class SynthesisInput(torch.nn.Module): ...", _easy(g.init_kwargs))
    record.meta["state"]["_modules"]["synthesis"].meta["state"]["_modules"] = collections.OrderedDict(
        input=None, L0_36_512=None
    )
    path = tmp_path / "stylegan3-r.pkl"
    path.write_bytes(pickle.dumps({"G_ema": record}))
    with pytest.raises(CheckpointError, match="not a StyleGAN2 network"):
        ck.load_generator(path)


# -------------------------------------------------------------------------------------------- rosinality
def _blur(x: torch.Tensor, kernel: torch.Tensor, pad0: int, pad1: int, up: int = 1) -> torch.Tensor:
    """rosinality's upfirdn2d (zero-insertion, pad, convolve with the kernel), written out directly."""
    n, c, h, w = x.shape
    if up > 1:
        stuffed = x.new_zeros(n, c, h * up, w * up)
        stuffed[:, :, ::up, ::up] = x
        x = stuffed
    x = F.pad(x, [pad0, pad1, pad0, pad1])
    k = kernel.flip([0, 1])[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, k, groups=c)


def _rosinality_forward(sd: dict, z: torch.Tensor, n_mlp: int, truncation: float, w_avg: torch.Tensor):  # noqa: ANN202
    """An independent forward pass over rosinality's g_ema layout (EqualLinear, ModulatedConv2d, ToRGB)."""
    x = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
    for i in range(1, n_mlp + 1):
        weight = sd[f"style.{i}.weight"]
        x = F.linear(x, weight * (0.01 / math.sqrt(weight.shape[1])))
        x = F.leaky_relu(x + sd[f"style.{i}.bias"] * 0.01, 0.2) * math.sqrt(2)
    w = w_avg + truncation * (x - w_avg)

    def modconv(prefix: str, h: torch.Tensor, demodulate: bool, up: bool) -> torch.Tensor:
        weight = sd[f"{prefix}.conv.weight"]  # [1, O, I, k, k]
        _, out_c, in_c, k, _ = weight.shape
        mod = sd[f"{prefix}.conv.modulation.weight"]
        style = F.linear(w, mod / math.sqrt(mod.shape[1]), sd[f"{prefix}.conv.modulation.bias"])
        wt = weight / math.sqrt(in_c * k * k) * style[:, None, :, None, None]
        if demodulate:
            wt = wt * torch.rsqrt(wt.square().sum([2, 3, 4]) + 1e-8)[:, :, None, None, None]
        n = h.shape[0]
        h = h.reshape(1, n * in_c, *h.shape[2:])
        if up:
            wt = wt.transpose(1, 2).reshape(n * in_c, out_c, k, k)
            out = F.conv_transpose2d(h, wt, stride=2, groups=n)
            out = _blur(out.reshape(n * out_c, 1, *out.shape[2:]), sd[f"{prefix}.conv.blur.kernel"], 1, 1)
        else:
            out = F.conv2d(h, wt.reshape(n * out_c, in_c, k, k), padding=k // 2, groups=n)
        return out.reshape(n, out_c, *out.shape[2:])

    def styled(prefix: str, h: torch.Tensor, noise_index: int, up: bool) -> torch.Tensor:
        h = modconv(prefix, h, True, up) + sd[f"{prefix}.noise.weight"] * sd[f"noises.noise_{noise_index}"]
        return F.leaky_relu(h + sd[f"{prefix}.activate.bias"][None, :, None, None], 0.2) * math.sqrt(2)

    h = sd["input.input"].repeat(z.shape[0], 1, 1, 1)
    h = styled("conv1", h, 0, False)
    skip = modconv("to_rgb1", h, False, False) + sd["to_rgb1.bias"]
    i = 0
    while f"convs.{2 * i}.conv.weight" in sd:
        h = styled(f"convs.{2 * i}", h, 2 * i + 1, True)
        h = styled(f"convs.{2 * i + 1}", h, 2 * i + 2, False)
        up = _blur(skip, sd[f"to_rgbs.{i}.upsample.kernel"], 2, 1, up=2)
        skip = modconv(f"to_rgbs.{i}", h, False, False) + sd[f"to_rgbs.{i}.bias"] + up
        i += 1
    return skip


def test_rosinality_layout_round_trip_gives_equal_images(tmp_path: Path) -> None:
    g, d = _tiny_networks()
    g_sd = rosinality.generator_to_rosinality(g)
    assert g_sd["conv1.conv.weight"].shape == (1, 16, 16, 3, 3) and g_sd["noises.noise_0"].shape == (
        1,
        1,
        4,
        4,
    )
    z = torch.from_numpy(np.random.RandomState(5).randn(2, 8)).float()
    with torch.no_grad():
        theirs = _rosinality_forward(g_sd, z, 2, 0.7, g.mapping.w_avg)
    assert torch.allclose(_images(g), theirs, atol=1e-5)

    path = tmp_path / "550000.pt"
    ckpt = {
        "g_ema": g_sd,
        "g": rosinality.generator_to_rosinality(g),
        "d": rosinality.discriminator_to_rosinality(d),
        "latent_avg": g.mapping.w_avg.clone(),
        "args": argparse.Namespace(size=16, n_mlp=2),
    }
    torch.save(ckpt, path)
    assert ck.detect_format(path) == "torch-zip"
    imported = ck.load_generator(path)
    _assert_same_state(imported, g)
    assert torch.equal(_images(imported), _images(g))
    imported_d = ck.load_discriminator(path)
    _assert_same_state(imported_d, d)
    img = torch.randn(4, 3, 16, 16)
    assert torch.equal(imported_d(img, None), d(img, None))


def test_rosinality_without_latent_avg_estimates_it(tmp_path: Path) -> None:
    g, _ = _tiny_networks()
    path = tmp_path / "g.pt"
    torch.save({"g_ema": rosinality.generator_to_rosinality(g)}, path)
    imported = ck.load_generator(path)
    expected = rosinality.estimate_w_avg(g)
    assert torch.equal(imported.mapping.w_avg, expected)
    z = torch.randn(20000, 8, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(expected, g.mapping(z, None)[:, 0].mean(dim=0), atol=0.05)


def test_torch_file_with_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": _Evil(f"touch {tmp_path / 'pwned'}")}, path)
    with pytest.raises(CheckpointError, match="refused: it needs the Python object posix.system"):
        ck.load_generator(path)
    assert not (tmp_path / "pwned").exists()
