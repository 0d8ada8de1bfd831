"""StyleGAN2-ADA training and fine-tuning: the loop, its snapshots and exact resume.

One iteration (``Trainer.step``) does, on a global minibatch split evenly across processes:
G main (non-saturating loss through the augmented D), G path-length regularisation every ``pl_interval``
minibatches, D main (logistic loss on augmented reals and fakes), D R1 every ``r1_interval``, the G EMA
update, and the ADA p adjustment every 4 minibatches.  Adam's learning rate and betas are scaled by
interval / (interval + 1) for the lazily regularised networks (StyleGAN2, Appendix B).

Every random number comes from one torch.Generator seeded with ``--seed`` (latents, mixing, augmentation,
path-length noise) plus the global torch RNG (the generator's noise inputs) and the data order, and all of
them are in the snapshot: training 2N minibatches equals training N, resuming, and training N more.

A snapshot is one safetensors file holding G, D, G_ema, both optimisers' state and the RNG states, with
everything else (options, counters, ADA p, the SHA-256 of the tensors) as JSON in its metadata entry
``train_state``.  It is also a native generator checkpoint (stylesurv.gan.checkpoint reads its G, D and
G_ema and ignores the rest), so `stylesurv gan sample` and `embed` accept it directly.  It is written
atomically; a damaged file fails its hash check with a clear message.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import importlib.util
import json
import math
import random
import re
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from rich.progress import TextColumn

from stylesurv.core.atomic import atomic_path, write_json_atomic, write_safetensors_atomic, write_text_atomic
from stylesurv.core.config import FieldNames
from stylesurv.core.console import info, make_progress, set_verbosity, warn
from stylesurv.core.errors import CheckpointError, InputError
from stylesurv.core.hashing import sha256_file
from stylesurv.gan import checkpoint, dist
from stylesurv.gan.augment import AdaController, apply_params, sample_params
from stylesurv.gan.dataset import DataOrder, ImageDataset, to_float
from stylesurv.gan.loss import (
    PathLengthTarget,
    discriminator_loss,
    generator_loss,
    mix_styles,
    mixing_cutoff,
    path_length_noise,
    path_lengths,
    r1_penalty,
)
from stylesurv.gan.presets import TrainPreset, get_config

SNAPSHOT_FORMAT = "stylesurv-train-snapshot"
SNAPSHOT_VERSION = 1
TRAIN_STATE_KEY = "train_state"  # metadata entry with the training state (JSON)
_SNAPSHOT_NAME = re.compile(r"^snapshot-(\d{9})\.safetensors$")
ADA_INTERVAL = 4  # minibatches between ADA adjustments
GRID_SEEDS = 32  # samples in the per-snapshot grid (seeds 0..31, drawn as in `stylesurv gan sample`)

NetworkFactory = Callable[[dict[str, Any], dict[str, Any]], tuple[torch.nn.Module, torch.nn.Module]]


@dataclass
class TrainConfig:
    """The training stage's one config: the defaults of `stylesurv gan train` and, with the run's
    fine-tuning defaults (``app.config.FINETUNE_DEFAULTS``), a run's ``[finetune]`` section (where the run
    sets ``data``, ``out`` and ``resume``).  None means "from the preset"."""

    data: str = ""  # training images: aligned folder (qc.csv status ok) or folder of R x R images
    out: str = ""  # run folder: options.json, stats.jsonl, grids/, snapshots/
    cfg: str = "auto"  # preset name (presets.PRESETS) or auto
    resume: str | None = (
        None  # training snapshot (exact continuation) or any generator checkpoint (fine-tune)
    )
    weights_only: bool = False  # take only the networks from a training snapshot and start a new schedule
    kimg: float = 25000.0  # stop after this many thousand real images (counted from the run's start)
    batch: int | None = None  # global minibatch
    aug: str = "ada"  # ada | fixed | none
    p: float = 0.0  # initial (ada) or constant (fixed) augmentation probability
    target: float = 0.6  # ADA target for E[sign(D(real))]
    ada_kimg: float | None = None  # kimg for p to go 0 -> 1; None: 500 from scratch, 100 when fine-tuning
    freeze_d: int = 0  # Freeze-D: D's first N layers (from the image side) are not trained
    lr: float | None = None  # Adam learning rate of G and D
    gamma: float | None = None  # R1 weight
    mirror: bool | None = None  # x-flip augmentation of the dataset
    seed: int = 0  # seeds initialisation, latents, augmentation and data order
    tick_kimg: float = 1.0  # kimg between progress/stats lines
    snap: int = 10  # ticks between snapshots (and grids)
    snap_minutes: float | None = None  # also snapshot when this many minutes passed since the last one
    keep: int = 3  # snapshots kept in RUN/snapshots (older ones are deleted; at least 2)
    metrics_net: str | None = None  # TorchScript feature network for FID/KID at each snapshot
    metrics_n: int = 1000  # images per side for FID/KID
    threads: int | None = None  # torch CPU threads per process
    device: str | None = None  # cpu | cuda; default cuda when available

    def validate(self, names: Mapping[str, str] | None = None) -> TrainConfig:
        """Self, or an InputError naming the first bad field (``finetune.<field>``, or as ``names`` says)."""
        name = FieldNames("finetune", names)
        if self.aug not in AUGMENTATIONS:
            raise InputError(f"{name('aug')} must be one of {', '.join(AUGMENTATIONS)}, got {self.aug!r}")
        if not 0 <= self.p <= 1:
            raise InputError(f"{name('p')} must be in [0, 1], got {self.p}")
        if self.kimg < 0:
            raise InputError(f"{name('kimg')} must not be negative, got {self.kimg}")
        if self.batch is not None and self.batch < 1:
            raise InputError(f"{name('batch')} must be at least 1, got {self.batch}")
        if self.freeze_d < 0:
            raise InputError(f"{name('freeze_d')} must not be negative, got {self.freeze_d}")
        if self.keep < 2 or self.snap < 1 or not self.tick_kimg > 0:
            raise InputError(
                f"{name('keep')} must be >= 2, {name('snap')} >= 1 and {name('tick_kimg')} > 0, got "
                f"{self.keep}, {self.snap} and {self.tick_kimg}"
            )
        return self


AUGMENTATIONS = ("ada", "fixed", "none")

# Options that shape the optimisation; continuing a run with different values would not be a continuation.
_SCHEDULE_FIELDS = (
    "cfg",
    "batch",
    "aug",
    "p",
    "target",
    "ada_kimg",
    "freeze_d",
    "lr",
    "gamma",
    "mirror",
    "seed",
)


# ---------------------------------------------------------------------------------------------- networks
def default_factory(
    g_kwargs: dict[str, Any], d_kwargs: dict[str, Any]
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Build StyleGAN2 G and D from their constructor arguments."""
    from stylesurv.gan.networks import Discriminator, Generator

    return Generator(**g_kwargs), Discriminator(**d_kwargs)


def discriminator_layers(D: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """D's layers from the image side: the children of blocks ``b<res>`` (highest res first), then the rest.

    This is the order Freeze-D counts in (Mo et al. 2020; NVIDIA's ``--freezed``): at 64 px the first
    layers are b64.fromrgb, b64.conv0, b64.conv1, b64.skip, b32.conv0, ...
    """
    blocks = sorted(
        ((int(name[1:]), module) for name, module in D.named_children() if re.fullmatch(r"b\d+", name)),
        key=lambda item: -item[0],
    )
    layers = []
    for res, block in blocks:
        for name, child in block.named_children():
            if any(True for _ in child.parameters()):
                layers.append((f"b{res}.{name}", child))
    return layers


def freeze_discriminator(D: torch.nn.Module, count: int) -> list[torch.nn.Parameter]:
    """Mark D's first ``count`` layers frozen; return the parameters that stay trainable."""
    if count <= 0:
        return list(D.parameters())
    layers = discriminator_layers(D)
    if count > len(layers):
        raise InputError(
            f"freeze_d (--freeze-d) is {count} but the discriminator has only {len(layers)} layers"
        )
    frozen = {id(p) for _, layer in layers[:count] for p in layer.parameters()}
    return [p for p in D.parameters() if id(p) not in frozen]


# ------------------------------------------------------------------------------------------------ trainer
class Trainer:
    """The state of a training run and one optimisation step on it."""

    def __init__(
        self,
        G: torch.nn.Module,
        D: torch.nn.Module,
        config: TrainPreset,
        options: TrainConfig,
        dataset: ImageDataset,
        world: dist.World | None = None,
        G_ema: torch.nn.Module | None = None,
        ada_kimg: float | None = None,
    ) -> None:
        """``ada_kimg`` overrides options.ada_kimg (fine-tuning adjusts p faster); default 500."""
        self.world = world or dist.World()
        if config.batch % self.world.size:
            raise InputError(
                f"the batch (finetune.batch, --batch) {config.batch} must be divisible by the "
                f"{self.world.size} processes"
            )
        self.config, self.options, self.dataset = config, options, dataset
        device = self.world.device
        self.G = G.to(device).train()
        self.D = D.to(device).train()
        self.G_ema = (
            (G_ema if G_ema is not None else copy.deepcopy(G)).to(device).eval().requires_grad_(False)
        )
        dist.broadcast_module(self.G)
        dist.broadcast_module(self.D)
        dist.broadcast_module(self.G_ema)
        self.d_trainable = freeze_discriminator(self.D, options.freeze_d)
        lr = options.lr if options.lr is not None else config.lr
        self.opt_G = _lazy_adam(list(self.G.parameters()), lr, config.pl_interval)
        self.opt_D = _lazy_adam(self.d_trainable, lr, config.r1_interval)
        if ada_kimg is None:
            ada_kimg = options.ada_kimg if options.ada_kimg is not None else 500.0
        self.ada = AdaController(p=options.p, target=options.target, ada_kimg=ada_kimg, interval=ADA_INTERVAL)
        self.pl = PathLengthTarget(config.pl_decay)
        self.generator = torch.Generator().manual_seed(options.seed)
        self.order = DataOrder(len(dataset) * (2 if config.mirror else 1), options.seed)
        self.nimg = 0  # real images shown so far (all processes)
        self.step_index = 0  # minibatches so far

    # -- helpers -------------------------------------------------------------------------------------------
    def _share(self, n_global: int) -> slice:
        per = n_global // self.world.size
        return slice(self.world.rank * per, (self.world.rank + 1) * per)

    def _latents(self, n_global: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """This process's share of a global draw of (z, second z for mixing, mixing cutoff)."""
        z = torch.randn(n_global, self.G.z_dim, generator=self.generator)
        z2 = torch.randn(n_global, self.G.z_dim, generator=self.generator)
        cutoff = mixing_cutoff(self.G.num_ws, self.config.style_mixing, self.generator)
        share = self._share(n_global)
        return z[share].to(self.world.device), z2[share].to(self.world.device), cutoff

    def _generate(
        self, z: torch.Tensor, z2: torch.Tensor, cutoff: int, update_emas: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        c = torch.zeros(len(z), self.G.c_dim, device=z.device)
        ws = self.G.mapping(z, c, update_emas=update_emas)
        ws = mix_styles(self.G.mapping, ws, z2, c, cutoff)
        return self.G.synthesis(ws, noise_mode="random"), ws

    def _augment(self, images: torch.Tensor, n_global: int) -> torch.Tensor:
        if self.options.aug == "none" or self.ada.p <= 0:
            return images
        params = sample_params(n_global, self.ada.p, "cpu", self.generator)
        share = self._share(n_global)
        return apply_params(images, {k: v[share].to(images.device) for k, v in params.items()})

    def _discriminate(self, images: torch.Tensor, n_global: int) -> torch.Tensor:
        c = torch.zeros(len(images), self.G.c_dim, device=images.device)
        return self.D(self._augment(images, n_global), c)

    def _phase(self, trainable: list[torch.nn.Parameter]) -> None:
        self.G.requires_grad_(False)
        self.D.requires_grad_(False)
        for p in trainable:
            p.requires_grad_(True)

    def _apply(
        self, opt: torch.optim.Optimizer, params: list[torch.nn.Parameter], loss: torch.Tensor
    ) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        dist.average_gradients(params)
        opt.step()
        opt.zero_grad(set_to_none=True)

    # -- one minibatch -------------------------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        """Train on one global minibatch; return this process's loss values."""
        cfg, batch = self.config, self.config.batch
        device = self.world.device
        stats: dict[str, float] = {}
        indices = self.order.next(batch)[self._share(batch)]
        reals = to_float(self.dataset.images(indices)).to(device)
        g_params = list(self.G.parameters())

        # G main: non-saturating loss through augmented D.
        self._phase(g_params)
        z, z2, cutoff = self._latents(batch)
        fakes, _ = self._generate(z, z2, cutoff)
        fake_logits = self._discriminate(fakes, batch)
        loss_g = generator_loss(fake_logits).mean()
        self._apply(self.opt_G, g_params, loss_g)
        stats["loss_G"] = float(loss_g.detach())
        stats["fake_score"] = float(fake_logits.detach().mean())

        # G regularisation: path length, lazily.
        if cfg.pl_weight > 0 and self.step_index % cfg.pl_interval == 0:
            pl_global = max(batch // cfg.pl_batch_shrink, self.world.size)
            pl_global -= pl_global % self.world.size
            z, z2, cutoff = self._latents(pl_global)
            images, ws = self._generate(z, z2, cutoff)
            noise = path_length_noise(images.new_empty(pl_global, *images.shape[1:]), self.generator)
            lengths = path_lengths(images, ws, noise[self._share(pl_global)].to(device))
            batch_mean = float(dist.all_sum(lengths.detach().sum().double().cpu())) / pl_global
            penalty = self.pl.penalty(lengths, batch_mean)
            self._apply(self.opt_G, g_params, penalty.mean() * cfg.pl_weight * cfg.pl_interval)
            stats["loss_pl"] = float(penalty.detach().mean())
            stats["pl_mean"] = self.pl.mean

        # D main: logistic loss on augmented fakes and reals.
        self._phase(self.d_trainable)
        z, z2, cutoff = self._latents(batch)
        with torch.no_grad():
            fakes, _ = self._generate(z, z2, cutoff, update_emas=True)
        fake_logits = self._discriminate(fakes, batch)
        real_logits = self._discriminate(reals, batch)
        self.ada.accumulate(real_logits)
        loss_d = discriminator_loss(real_logits, fake_logits)
        self._apply(self.opt_D, self.d_trainable, loss_d)
        stats["loss_D"] = float(loss_d.detach())
        stats["real_score"] = float(real_logits.detach().mean())

        # D regularisation: R1 on reals, lazily (gradient with respect to the images before augmentation).
        if cfg.gamma > 0 and self.step_index % cfg.r1_interval == 0:
            x = reals.detach().requires_grad_(True)
            penalty = r1_penalty(x, self._discriminate(x, batch))
            self._apply(self.opt_D, self.d_trainable, penalty.mean() * (cfg.gamma / 2) * cfg.r1_interval)
            stats["loss_r1"] = float(penalty.detach().mean())

        self.nimg += batch
        self.step_index += 1
        self._average_buffers()
        self._update_ema()
        if self.options.aug == "ada" and self.step_index % ADA_INTERVAL == 0:
            self.ada.adjust(dist.all_sum(self.ada.totals()), batch * ADA_INTERVAL)
        self.G.requires_grad_(False)
        self.D.requires_grad_(False)
        return stats

    def _update_ema(self) -> None:
        cfg = self.config
        ema_nimg = cfg.ema_kimg * 1000
        if cfg.ema_rampup is not None:
            ema_nimg = min(ema_nimg, self.nimg * cfg.ema_rampup)
        beta = 0.5 ** (cfg.batch / max(ema_nimg, 1e-8))
        with torch.no_grad():
            for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
                p_ema.copy_(p.detach().lerp(p_ema, beta))
            for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
                b_ema.copy_(b)

    def _average_buffers(self) -> None:
        """Average G's floating buffers (e.g. the tracked w_avg, which each process updates on its share)."""
        if self.world.size <= 1:
            return
        for b in self.G.buffers():
            if b.is_floating_point():
                b.copy_(dist.all_sum(b) / self.world.size)

    # -- state -------------------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Tensors and JSON metadata of a snapshot of everything the next step depends on."""
        tensors: dict[str, torch.Tensor] = {}
        for prefix, module in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            for name, value in module.state_dict().items():
                tensors[f"{prefix}.{name}"] = value.detach().cpu().clone().contiguous()
        groups = {}
        for prefix, opt in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            sd = opt.state_dict()
            for index, slots in sd["state"].items():
                for key, value in slots.items():
                    tensors[f"{prefix}.{index}.{key}"] = value.detach().cpu().clone().contiguous()
            groups[prefix] = sd["param_groups"]
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.train"] = self.generator.get_state()
        np_state = np.random.get_state()
        tensors["rng.numpy_keys"] = torch.from_numpy(np_state[1].astype(np.int64))
        if torch.cuda.is_available():
            tensors["rng.cuda"] = torch.cuda.get_rng_state()
        py_state = random.getstate()
        meta = {
            "format": SNAPSHOT_FORMAT,
            "version": SNAPSHOT_VERSION,
            "G_kwargs": _init_kwargs(self.G),
            "D_kwargs": _init_kwargs(self.D),
            "config": self.config.to_dict(),
            "options": dataclasses.asdict(self.options),
            "nimg": self.nimg,
            "step": self.step_index,
            "ada": {
                "p": self.ada.p,
                "sign_sum": self.ada._sign_sum,
                "count": self.ada._count,
                "last_rt": self.ada.last_rt,
                "ada_kimg": self.ada.ada_kimg,
            },
            "pl_mean": self.pl.mean,
            "data_order": self.order.state(),
            "param_groups": groups,
            "rng_numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "rng_python": [py_state[0], list(py_state[1]), py_state[2]],
        }
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore a snapshot's state into this trainer (networks built from the same kwargs)."""
        for prefix, module in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            _load_module(module, tensors, prefix)
        for prefix, opt in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            state: dict[int, dict[str, torch.Tensor]] = {}
            for key, value in tensors.items():
                if key.startswith(prefix + "."):
                    _, index, slot = key.split(".", 2)
                    state.setdefault(int(index), {})[slot] = value
            opt.load_state_dict({"state": state, "param_groups": meta["param_groups"][prefix]})
        torch.set_rng_state(tensors["rng.torch"])
        self.generator.set_state(tensors["rng.train"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])
        name, pos, has_gauss, gauss = meta["rng_numpy"]
        np.random.set_state(
            (name, tensors["rng.numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, gauss)
        )
        version, internal, gauss_next = meta["rng_python"]
        random.setstate((version, tuple(internal), gauss_next))
        ada = meta["ada"]
        self.ada.p, self.ada._sign_sum, self.ada._count = ada["p"], ada["sign_sum"], ada["count"]
        self.ada.last_rt, self.ada.ada_kimg = ada["last_rt"], ada["ada_kimg"]
        self.pl.mean = meta["pl_mean"]
        order = meta["data_order"]
        if order["size"] != self.order.size:
            raise InputError(
                f"the snapshot was trained on {order['size']} images (with mirrors) but the data folder now "
                f"gives {self.order.size}; continue with the same --data or fine-tune with --weights-only"
            )
        self.order.epoch, self.order.position = order["epoch"], order["position"]
        self.nimg, self.step_index = meta["nimg"], meta["step"]


def _lazy_adam(params: list[torch.nn.Parameter], lr: float, interval: int) -> torch.optim.Adam:
    """Adam(lr, betas (0, 0.99), eps 1e-8) corrected for a regulariser applied every ``interval`` steps."""
    ratio = interval / (interval + 1)
    return torch.optim.Adam(params, lr=lr * ratio, betas=(0.0, 0.99**ratio), eps=1e-8)


def _init_kwargs(module: torch.nn.Module) -> dict[str, Any]:
    kwargs = getattr(module, "init_kwargs", None)
    if kwargs is None:
        raise CheckpointError(f"{type(module).__name__} has no init_kwargs; it cannot be snapshotted")
    return json.loads(json.dumps(dict(kwargs)))


def _load_module(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str) -> None:
    own = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    try:
        module.load_state_dict(own, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"snapshot tensors {prefix}.* do not fit the network: {exc}") from exc


# ---------------------------------------------------------------------------------------------- snapshots
def _payload_hash(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def save_snapshot(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write a training snapshot atomically, with the SHA-256 of its tensors in the metadata."""
    meta = dict(meta, payload_sha256=_payload_hash(tensors))
    header = {
        "format": checkpoint.FORMAT,
        "format_version": str(checkpoint.FORMAT_VERSION),
        "networks": json.dumps(["G", "D", "G_ema"]),
        "class.G": "Generator",
        "class.D": "Discriminator",
        "class.G_ema": "Generator",
        "config.G": json.dumps(meta["G_kwargs"], sort_keys=True),
        "config.G_ema": json.dumps(meta["G_kwargs"], sort_keys=True),
        "config.D": json.dumps(meta["D_kwargs"], sort_keys=True),
        "extra": json.dumps({"kimg": meta["nimg"] / 1000, "training_snapshot": True}),
        TRAIN_STATE_KEY: json.dumps(meta),
    }
    write_safetensors_atomic(path, tensors, header)


def is_snapshot(path: str | Path) -> bool:
    """Whether ``path`` is a stylesurv training snapshot (read from its header only)."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception:
        return False
    try:
        return json.loads(meta.get(TRAIN_STATE_KEY, "{}")).get("format") == SNAPSHOT_FORMAT
    except ValueError:
        return False


def load_snapshot(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a training snapshot; a damaged or foreign file raises CheckpointError."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"snapshot {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get(TRAIN_STATE_KEY, "{}"))
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as exc:  # safetensors raises its own error type for truncated or garbled files
        raise CheckpointError(
            f"snapshot {path} is damaged ({exc}); delete it to resume from the previous snapshot"
        ) from exc
    if meta.get("format") != SNAPSHOT_FORMAT:
        raise CheckpointError(f"{path} is not a stylesurv training snapshot")
    if meta.get("version", 0) > SNAPSHOT_VERSION:
        raise CheckpointError(f"snapshot {path} has format version {meta['version']}; upgrade stylesurv")
    if _payload_hash(tensors) != meta.get("payload_sha256"):
        raise CheckpointError(
            f"snapshot {path} is damaged (its tensors do not match the recorded SHA-256); delete it to "
            f"resume from the previous snapshot"
        )
    return tensors, meta


def list_snapshots(out: str | Path) -> list[Path]:
    """The run's snapshots, oldest first."""
    folder = Path(out) / "snapshots"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _SNAPSHOT_NAME.match(p.name))


def snapshot_generator(path: str | Path, factory: NetworkFactory = default_factory) -> tuple[Any, Any, dict]:
    """(G_ema, D, metadata) rebuilt from a training snapshot."""
    tensors, meta = load_snapshot(path)
    G, D = factory(meta["G_kwargs"], meta["D_kwargs"])
    _load_module(G, tensors, "G_ema")
    _load_module(D, tensors, "D")
    return G.eval(), D.eval(), meta


# ------------------------------------------------------------------------------------------------ outputs
def save_grid(G: torch.nn.Module, path: str | Path, seeds: int = GRID_SEEDS, columns: int = 8) -> None:
    """A PNG grid of G's samples for seeds 0..seeds-1 (z = RandomState(seed).randn(z_dim), const noise)."""
    device = next(G.parameters()).device
    z = np.concatenate([np.random.RandomState(s).randn(1, G.z_dim) for s in range(seeds)])
    with torch.no_grad():
        z_t = torch.from_numpy(z).to(torch.float32).to(device)
        images = G(z_t, torch.zeros(seeds, G.c_dim, device=device), noise_mode="const")
    write_image_grid(images, path, columns)


def write_image_grid(images: torch.Tensor, path: str | Path, columns: int = 8) -> None:
    """Write float images [N, 3, R, R] in [-1, 1] as one PNG grid, atomically."""
    pixels = ((images.detach().cpu().float() + 1) * 127.5).clamp(0, 255).to(torch.uint8)
    n, c, h, w = pixels.shape
    rows = -(-n // columns)
    canvas = torch.zeros(rows * columns, c, h, w, dtype=torch.uint8)
    canvas[:n] = pixels
    canvas = canvas.view(rows, columns, c, h, w).permute(0, 3, 1, 4, 2).reshape(rows * h, columns * w, c)
    with atomic_path(path) as tmp:
        Image.fromarray(canvas.numpy()).save(tmp, format="PNG")


class _Stats:
    """Per-tick means of the step statistics, written to stats.jsonl (and TensorBoard when installed)."""

    def __init__(self, out: Path, nimg_resumed: int) -> None:
        self.path = out / "stats.jsonl"
        if self.path.is_file():  # drop lines of a run's future that a continuation will redo
            kept = [line for line in self.path.read_text().splitlines() if _line_nimg(line) <= nimg_resumed]
            write_text_atomic(self.path, "".join(line + "\n" for line in kept))
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.tensorboard = None
        if importlib.util.find_spec("tensorboard") is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(str(out / "tensorboard"))

    def add(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1

    def flush(self, fields: dict[str, Any]) -> dict[str, Any]:
        record = dict(fields, **{k: self.sums[k] / self.counts[k] for k in sorted(self.sums)})
        self.sums, self.counts = {}, {}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:
            for key, value in record.items():
                if isinstance(value, int | float):
                    self.tensorboard.add_scalar(key, value, global_step=int(record["nimg"]))
            self.tensorboard.flush()
        return record


def _line_nimg(line: str) -> int:
    try:
        return int(json.loads(line).get("nimg", 0))
    except ValueError:
        return 0


# ----------------------------------------------------------------------------------------------- the run
@dataclass
class RunResult:
    """Where a finished training call left things."""

    out: Path
    snapshot: Path  # the newest snapshot (RUN itself when none was written)
    nimg: int
    last_stats: dict[str, Any]
    trainer: Trainer


def _start(
    options: TrainConfig, dataset: ImageDataset, world: dist.World, factory: NetworkFactory
) -> Trainer:
    """A trainer for a continuation, a fine-tune or a fresh run, as ``options`` and RUN/snapshots say."""
    existing = list_snapshots(options.out)
    if options.resume and not Path(options.resume).is_file():
        raise InputError(f"{options.resume}: the checkpoint to resume or fine-tune from does not exist")
    if existing:
        if options.resume and options.resume != _started_from(Path(options.out)):
            raise InputError(
                f"{options.out} already holds snapshots of another run; to continue it start without a "
                f"checkpoint to resume from, to fine-tune {options.resume} choose a new output folder"
            )
        return _continue(existing[-1], options, dataset, world, factory)
    if options.resume and is_snapshot(options.resume) and not options.weights_only:
        return _continue(Path(options.resume), options, dataset, world, factory)
    _seed_global_rngs(options.seed)  # noise inputs and augmentation draw from the global generators
    if options.resume:
        return _finetune(options, dataset, world, factory)
    config = _configure(get_config(options.cfg, dataset.resolution), options)
    G, D = factory(config.generator_kwargs(), config.discriminator_kwargs())
    return Trainer(G, D, config, options, dataset, world)


def _started_from(out: Path) -> str | None:
    """The --resume a run folder was started with (from its options.json), so that re-running the same
    command continues the run."""
    try:
        return json.loads((out / "options.json").read_text())["options"]["resume"]
    except (OSError, ValueError, KeyError):
        return None


def _configure(config: TrainPreset, options: TrainConfig) -> TrainPreset:
    return config.replace(batch=options.batch, lr=options.lr, gamma=options.gamma, mirror=options.mirror)


def _continue(
    path: Path, options: TrainConfig, dataset: ImageDataset, world: dist.World, factory: NetworkFactory
) -> Trainer:
    tensors, meta = load_snapshot(path)
    stored = TrainConfig(**meta["options"])
    changed = [f for f in _SCHEDULE_FIELDS if getattr(options, f) != getattr(stored, f)]
    if changed:
        detail = ", ".join(f"{f}: {getattr(stored, f)!r} -> {getattr(options, f)!r}" for f in changed)
        raise InputError(
            f"continuing {path} with different training options ({detail}); give the same options, or "
            f"fine-tune from it with weights only (--weights-only) and a new output folder"
        )
    merged = dataclasses.replace(
        stored,
        **{
            f.name: getattr(options, f.name)
            for f in dataclasses.fields(options)
            if f.name not in _SCHEDULE_FIELDS
        },
    )
    G, D = factory(meta["G_kwargs"], meta["D_kwargs"])
    G_ema = copy.deepcopy(G)
    trainer = Trainer(G, D, TrainPreset(**meta["config"]), merged, dataset, world, G_ema=G_ema)
    trainer.load_state(tensors, meta)
    info(f"continuing from {path} at {trainer.nimg / 1000:.1f} kimg (ADA p {trainer.ada.p:.3f})")
    return trainer


def _seed_global_rngs(seed: int) -> None:
    """Seed torch's, numpy's and Python's global generators, so a new run is the same for the same seed."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _finetune(
    options: TrainConfig, dataset: ImageDataset, world: dist.World, factory: NetworkFactory
) -> Trainer:
    source = Path(options.resume or "")
    base = None
    if is_snapshot(source):
        tensors, meta = load_snapshot(source)
        G, D = factory(meta["G_kwargs"], meta["D_kwargs"])
        G_ema = copy.deepcopy(G)
        for prefix, module in (("G", G), ("D", D), ("G_ema", G_ema)):
            _load_module(module, tensors, prefix)
        base = meta["config"]
    else:
        nets = checkpoint.load_networks(source)
        if "G" not in nets and "G_ema" not in nets:
            raise CheckpointError(f"{source} holds no generator (it has {sorted(nets)})")
        G_ema = nets.get("G_ema", nets.get("G"))
        G = nets.get("G") or copy.deepcopy(G_ema)
        D = nets.get("D")
        if D is None:
            warn(f"{source} has no discriminator; D starts from random weights")
    if G.img_resolution != dataset.resolution:
        raise InputError(
            f"{source} makes {G.img_resolution} px images but the data are {dataset.resolution} px; align "
            f"the photos at {G.img_resolution} px"
        )
    config = (
        TrainPreset(**base)
        if base is not None and options.cfg == "auto"
        else get_config(options.cfg, dataset.resolution)
    )
    config = _configure(config, options)
    if D is None:
        torch.manual_seed(options.seed)
        _, D = factory(_init_kwargs(G), config.discriminator_kwargs())
    info(f"fine-tuning {source} ({G.img_resolution} px) with Freeze-D {options.freeze_d}")
    return Trainer(
        G.train().requires_grad_(True),
        D.train().requires_grad_(True),
        config,
        options,
        dataset,
        world,
        G_ema=G_ema,
        ada_kimg=options.ada_kimg if options.ada_kimg is not None else 100.0,
    )


def train(
    options: TrainConfig, factory: NetworkFactory = default_factory, names: Mapping[str, str] | None = None
) -> RunResult:
    """Train (or fine-tune, or continue) as ``options`` say; rank 0 writes RUN/{options,stats,grids,...}.
    Errors name the config's fields as ``names`` calls them (the command passes its flags)."""
    options.validate(names)
    if options.threads:
        torch.set_num_threads(options.threads)
    world = dist.init_world(options.device)
    if not world.is_main:
        set_verbosity(0)
    try:
        return _train(options, world, factory)
    finally:
        dist.close_world()


def _train(options: TrainConfig, world: dist.World, factory: NetworkFactory) -> RunResult:
    out = Path(options.out)
    dataset = ImageDataset(options.data)
    trainer = _start(options, dataset, world, factory)
    options = trainer.options
    total = int(round(options.kimg * 1000))
    if world.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            out / "options.json",
            {
                "options": dataclasses.asdict(options),
                "config": trainer.config.to_dict(),
                "G_kwargs": _init_kwargs(trainer.G),
                "D_kwargs": _init_kwargs(trainer.D),
                "command": shlex.join(sys.argv),
                "world_size": world.size,
                "images": len(dataset),
                "ada_kimg": trainer.ada.ada_kimg,
            },
        )
        reals = dataset.images(np.arange(min(GRID_SEEDS, len(dataset))))
        write_image_grid(to_float(reals), out / "reals.png")
    stats = _Stats(out, trainer.nimg) if world.is_main else None
    metrics = _metrics_hook(options, dataset, world)
    tick, tick_start_nimg = 0, trainer.nimg
    tick_start = last_snap = start = time.time()
    last_record: dict[str, Any] = {}
    snapshot = list_snapshots(out)[-1] if list_snapshots(out) else out
    columns = TextColumn("{task.fields[status]}")
    stop_requested = False
    with _stop_on_signal() as stop, make_progress(columns) as progress:
        task = progress.add_task("training (images)", total=total, completed=trainer.nimg, status="")
        while trainer.nimg < total and not stop_requested:
            values = trainer.step()
            if stats is not None:
                stats.add(values)
            progress.update(task, completed=trainer.nimg)
            stop_requested = _agreed(stop[0], world)
            if stop_requested:
                warn(f"stop requested: snapshot at {trainer.nimg / 1000:.3f} kimg, then exit")
            done = trainer.nimg >= total or stop_requested
            now = time.time()
            tick_due = done or trainer.nimg >= tick_start_nimg + options.tick_kimg * 1000
            want_snap = done or (tick_due and (tick + 1) % options.snap == 0)
            want_snap |= options.snap_minutes is not None and now - last_snap >= options.snap_minutes * 60
            if tick_due:
                tick += 1
                sec_per_kimg = (now - tick_start) / max((trainer.nimg - tick_start_nimg) / 1000, 1e-9)
                if stats is not None:
                    last_record = stats.flush(
                        {
                            "nimg": trainer.nimg,
                            "kimg": trainer.nimg / 1000,
                            "tick": tick,
                            "sec_per_kimg": sec_per_kimg,
                            "sec_total": now - start,
                            "ada_p": trainer.ada.p,
                            "ada_rt": trainer.ada.last_rt if math.isfinite(trainer.ada.last_rt) else None,
                            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                        }
                    )
                    eta = (total - trainer.nimg) / 1000 * sec_per_kimg
                    status = (
                        f"{sec_per_kimg:.1f} s/kimg  G {last_record.get('loss_G', 0):.3f}  "
                        f"D {last_record.get('loss_D', 0):.3f}  p {trainer.ada.p:.3f}"
                    )
                    progress.update(task, status=status)
                    info(f"kimg {trainer.nimg / 1000:.1f}  {status}  eta {eta / 3600:.1f} h")
                tick_start, tick_start_nimg = time.time(), trainer.nimg
            if want_snap and world.is_main:
                snap_start = time.time()
                snapshot = _write_snapshot(trainer, out, options.keep, last_record)
                if metrics is not None:
                    metrics(trainer.G_ema, trainer.nimg)
                last_snap = time.time()
                tick_start += last_snap - snap_start  # sec/kimg counts training only
    dist.barrier()
    return RunResult(out=out, snapshot=snapshot, nimg=trainer.nimg, last_stats=last_record, trainer=trainer)


@contextlib.contextmanager
def _stop_on_signal() -> Iterator[list[bool]]:
    """A first SIGTERM or Ctrl-C asks the loop to snapshot and stop after this minibatch; a second one
    acts as usual (the previous handlers are back in place by then)."""
    requested = [False]
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum: int, frame: Any) -> None:
        requested[0] = True
        for sig, old in previous.items():
            signal.signal(sig, old)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield requested
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _agreed(flag: bool, world: dist.World) -> bool:
    """True on every process as soon as one process has the flag (so that all stop at the same step)."""
    if world.size <= 1:
        return flag
    return bool(dist.all_sum(torch.tensor([float(flag)], dtype=torch.float64))[0] > 0)


def _write_snapshot(trainer: Trainer, out: Path, keep: int, last_stats: dict[str, Any]) -> Path:
    tensors, meta = trainer.state()
    meta["stats"] = last_stats
    meta["command"] = shlex.join(sys.argv)
    meta["world_size"] = trainer.world.size
    path = out / "snapshots" / f"snapshot-{trainer.nimg:09d}.safetensors"
    save_snapshot(path, tensors, meta)
    save_grid(trainer.G_ema, out / "grids" / f"fakes-{trainer.nimg:09d}.png")
    for old in list_snapshots(out)[: -max(keep, 2)]:
        old.unlink(missing_ok=True)
    info(f"snapshot {path}")
    return path


def _metrics_hook(
    options: TrainConfig, dataset: ImageDataset, world: dist.World
) -> Callable[[torch.nn.Module, int], None] | None:
    """FID/KID of G_ema against the data at each snapshot, appended to RUN/metrics.jsonl (rank 0 only)."""
    if not options.metrics_net or not world.is_main:
        return None
    from stylesurv.gan.fid import FeatureNetwork, dataset_features, fid_kid_of_generator

    net = FeatureNetwork(options.metrics_net)
    real = dataset_features(net, dataset, options.metrics_n, seed=options.seed)

    def hook(G: torch.nn.Module, nimg: int) -> None:
        result = fid_kid_of_generator(net, G, real, options.metrics_n, seed=options.seed)
        with (Path(options.out) / "metrics.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps({"nimg": nimg, "kimg": nimg / 1000, **result}) + "\n")
        info(f"FID {result['fid']:.2f}  KID {result['kid']:.4f}")

    return hook


# --------------------------------------------------------------------------------------------------- export
def export_asset(
    snapshot: str | Path, out: str | Path, half: bool = True, grid: str | Path | None = None
) -> list[Path]:
    """Write PREFIX.safetensors (G_ema and D, native checkpoint) and PREFIX.json from a training snapshot.

    The JSON holds the configuration, the exact training command, kimg, the last stats line and hashes, so
    the shipped generator documents how it was made.  ``half`` stores float16 weights (loaded back as
    float32).  ``grid`` also writes the fixed-seed sample grid as a PNG.
    """
    tensors, meta = load_snapshot(snapshot)
    G, D = default_factory(meta["G_kwargs"], meta["D_kwargs"])
    _load_module(G, tensors, "G_ema")
    _load_module(D, tensors, "D")
    out = Path(out)
    weights, card = out.with_name(out.name + ".safetensors"), out.with_name(out.name + ".json")
    if grid is not None:
        save_grid(G.eval(), grid)
    extra = {"kimg": meta["nimg"] / 1000, "source_snapshot": Path(snapshot).name}
    dtype = torch.float16 if half else torch.float32
    checkpoint.save_networks(
        weights, G_ema=copy.deepcopy(G).to(dtype), D=copy.deepcopy(D).to(dtype), extra_meta=extra
    )
    write_json_atomic(
        card,
        {
            "weights": weights.name,
            "sha256": sha256_file(weights),
            "dtype": str(dtype).removeprefix("torch."),
            "kimg": meta["nimg"] / 1000,
            "command": meta.get("command", ""),
            "world_size": meta.get("world_size", 1),
            "G_kwargs": meta["G_kwargs"],
            "D_kwargs": meta["D_kwargs"],
            "config": meta["config"],
            "options": meta["options"],
            "ada_p": meta["ada"]["p"],
            "last_stats": meta.get("stats", {}),
            "G_params": sum(p.numel() for p in G.parameters()),
            "D_params": sum(p.numel() for p in D.parameters()),
            "source_snapshot": Path(snapshot).name,
            "source_sha256": sha256_file(snapshot),
        },
    )
    return [weights, card] + ([Path(grid)] if grid is not None else [])
