"""Embed an aligned folder into the latent space: resumable, and sharded across processes under torchrun.

The usable patients (qc.csv) are split, in sorted order, into chunks of ``batch`` images.  Each chunk is
encoded (if an encoder is given), refined by the batched projector and measured; its result is written
atomically as ``chunk_<i>.npz`` into a work folder next to the output (``.<out name>.work/``).  A restart
with the same inputs and settings skips the chunks already there; under torchrun, rank r embeds chunks
r, r + world, ... and rank 0 merges them once all are done.  Each image's randomness comes from a seed
derived from the run seed and its pixels, so the merged file is the same whether the run was
interrupted or sharded.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from stylesurv.core import aligned
from stylesurv.core.aligned import FACE_LABEL, LANDMARKS_FILE, mask_file, photo_file, read_mask, read_photo
from stylesurv.core.atomic import write_bytes_atomic, write_json_atomic
from stylesurv.core.config import FieldNames
from stylesurv.core.console import make_progress, warn
from stylesurv.core.errors import InputError
from stylesurv.core.hashing import hash_config, sha256_file
from stylesurv.core.latents import Latents, load_latents, save_latents
from stylesurv.gan.dist import World, barrier, init_world
from stylesurv.gan.stylespace import styles_from_codes
from stylesurv.invert.encoder import Encoder, check_encoder_matches
from stylesurv.invert.losses import LossWeights, LpipsVgg16, ReconstructionLoss
from stylesurv.invert.metrics import IDENTITY_MIN_RESOLUTION, identity_similarity, reconstruction_metrics
from stylesurv.invert.project import SPACES, ProjectConfig, project, w_std_estimate


@dataclass(frozen=True)
class EmbedConfig:
    """What `embed_folder` does; everything here enters the resume key."""

    project: ProjectConfig = field(default_factory=ProjectConfig)
    losses: LossWeights = field(default_factory=LossWeights)
    batch: int = (
        0  # images per chunk (and per optimisation batch); 0: auto_batch (the codes do not depend on it)
    )
    seed: int = 0  # run seed; image i's seed is derived from it and its pixels (in a run: the run's)
    use_masks: bool = True  # weight the loss by masks/<pid>.png and report face metrics when present
    identity: bool = True  # dlib identity similarity when R >= 150 and landmarks.csv is present

    def validate(self, names: Mapping[str, str] | None = None) -> EmbedConfig:
        """Self, or an InputError naming the first bad field (``embed.project.steps``; or as ``names``)."""
        name = FieldNames("embed", names)
        if self.project.space not in SPACES:
            raise InputError(
                f"{name('project.space')} must be one of {', '.join(SPACES)}, not {self.project.space!r}"
            )
        if self.project.steps < 0:
            raise InputError(f"{name('project.steps')} must not be negative, got {self.project.steps}")
        if self.batch < 0:
            raise InputError(f"{name('batch')} must not be negative (0: auto), got {self.batch}")
        return self

    def for_generator(self, generator: nn.Module) -> EmbedConfig:
        """Self with an "auto" batch (0) sized for ``generator`` on its device (:func:`auto_batch`)."""
        return self if self.batch else replace(self, batch=auto_batch(generator, self.losses))

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project.to_dict(),
            "losses": self.losses.to_dict(),
            "batch": self.batch,
            "seed": self.seed,
            "use_masks": self.use_masks,
            "identity": self.identity,
        }


@dataclass
class Networks:
    """The networks an embedding uses, with the content hashes that identify them in the output."""

    generator: nn.Module
    generator_sha256: str
    encoder: Encoder | None = None
    encoder_sha256: str | None = None  # invert.encoder.encoder_identity(folder)
    discriminator: nn.Module | None = None
    discriminator_sha256: str | None = None
    lpips: LpipsVgg16 | None = None
    lpips_sha256: str | None = None


# ---------------------------------------------------------------------------------------------- inputs
def usable_patients(aligned_dir: str | Path) -> list[str]:
    """Sorted patient ids to embed: the aligned folder's usable patients (`core.aligned.usable_patients`);
    a folder without qc.csv counts as a plain folder of aligned photos and gives every ``<pid>.png``."""
    pids = sorted(aligned.usable_patients(aligned_dir, plain=True))
    if not pids:
        raise InputError(
            f"{aligned_dir} holds no usable aligned photos (<patient_id>.png, qc.csv usable 1); align the "
            "photos first: `stylesurv align COHORT --out ALIGNED --generator G`"
        )
    return pids


def _read_photo(path: Path, resolution: int) -> np.ndarray:
    array = read_photo(path)
    if array.shape[:2] != (resolution, resolution):
        raise InputError(
            f"{path} is {array.shape[1]}x{array.shape[0]} but the generator makes {resolution}x{resolution} "
            f"images; align the photos at the generator's resolution "
            f"(align.resolution 0, or --resolution {resolution})"
        )
    return array


def load_batch(
    aligned_dir: Path, pids: list[str], resolution: int, use_masks: bool
) -> tuple[torch.Tensor, torch.Tensor | None, np.ndarray]:
    """Images [N, 3, R, R] in [-1, 1], face masks [N, 1, R, R] (None without masks/) and which have a mask."""
    photos = []
    for pid in pids:
        path = photo_file(aligned_dir, pid)
        if path is None:
            raise InputError(f"{aligned_dir}: no aligned photo {pid}.png; re-run `stylesurv align`")
        photos.append(_read_photo(path, resolution))
    tensor = torch.from_numpy(np.stack(photos)).permute(0, 3, 1, 2).float() / 127.5 - 1
    masks = [mask_file(aligned_dir, pid) if use_masks else None for pid in pids]
    has_mask = np.array([path is not None for path in masks])
    if not has_mask.any():
        return tensor, None, has_mask
    faces = np.ones((len(pids), resolution, resolution), dtype=np.float32)  # no mask: the whole image counts
    for i, path in enumerate(masks):
        if path is not None:
            faces[i] = read_mask(path, resolution) == FACE_LABEL
    return tensor, torch.from_numpy(faces)[:, None], has_mask


def image_seed(seed: int, image: torch.Tensor) -> int:
    """A 63-bit seed for one image [3, R, R] in [-1, 1] from the run seed and its pixels (as 8-bit values):
    the same pixels get the same draws under any file name, in any batch, chunk or rank."""
    pixels = ((image.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    digest = hashlib.sha256(f"{seed}:{tuple(pixels.shape)}:".encode() + pixels.numpy().tobytes()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


CPU_BATCH = 16  # on CPU larger batches barely raise throughput; 16 keeps chunks (resume points) small
MAX_BATCH = 256


def auto_batch(generator: nn.Module, losses: LossWeights, memory_fraction: float = 0.5) -> int:
    """Images per batch: 16 on CPU; on CUDA as many as fit in ``memory_fraction`` of the free memory.

    The GPU cost per image is measured from one forward and backward pass of the loss at batch 2.
    """
    device = generator.mapping.w_avg.device
    if device.type != "cuda":
        return CPU_BATCH
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    ws = generator.mapping.w_avg.detach().expand(2, generator.num_ws, -1).clone().requires_grad_(True)
    loss = ReconstructionLoss(LossWeights(mse=losses.mse, l1=losses.l1, ssim=losses.ssim))
    loss.set_target(torch.zeros(2, 3, generator.img_resolution, generator.img_resolution, device=device))
    loss(generator.synthesis(ws, noise_mode="const")).sum().backward()
    per_image = max((torch.cuda.max_memory_allocated(device) - before) / 2, 1)
    free, _ = torch.cuda.mem_get_info(device)
    return int(max(1, min(MAX_BATCH, memory_fraction * free // per_image)))


# ---------------------------------------------------------------------------------------------- one chunk
def embed_batch(
    networks: Networks,
    images: torch.Tensor,
    faces: torch.Tensor | None,
    has_mask: np.ndarray,
    pids: list[str],
    config: EmbedConfig,
    w_std: float,
    landmarks: dict[str, np.ndarray] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> tuple[Latents, torch.Tensor]:
    """Codes, metrics and reconstructions of one batch of aligned images."""
    G = networks.generator
    device = G.mapping.w_avg.device
    images = images.to(device)
    faces = None if faces is None else faces.to(device)
    loss = ReconstructionLoss(config.losses, networks.discriminator, networks.lpips).to(device)
    loss.set_target(images, faces)
    init = None
    if networks.encoder is not None:
        with torch.no_grad():
            w_enc, ws_enc = networks.encoder(images)
        init = w_enc if config.project.space == "w" else ws_enc
    seeds = [image_seed(config.seed, image) for image in images]
    result = project(G, loss, len(pids), seeds, config.project, init=init, w_std=w_std, on_step=on_step)
    metrics = reconstruction_metrics(images, result.images, faces)
    if faces is not None:
        for name in ("mse_face", "psnr_face", "ssim_face"):
            metrics[name] = np.where(has_mask, metrics[name], np.nan)
    if landmarks is not None:
        marks = [landmarks.get(pid) for pid in pids]
        metrics["id_sim"] = identity_similarity(images, result.images, marks)
    codes = result.ws.detach().cpu().numpy()
    latents = Latents(
        patient_id=np.array(pids),
        w=codes.mean(axis=1),
        wplus=codes if config.project.space == "wplus" else None,
        styles=styles_from_codes(G, codes),
        metrics=metrics,
    )
    return latents, result.images.detach().cpu()


def _save_reconstructions(folder: Path, pids: list[str], images: torch.Tensor) -> None:
    pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for pid, array in zip(pids, pixels, strict=True):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        write_bytes_atomic(folder / f"{pid}.png", buffer.getvalue())


# ---------------------------------------------------------------------------------------------- the driver
def _identity_model_available() -> bool:
    """Whether dlib and its face descriptor model are installed; warns and returns False if not."""
    import importlib.util

    from stylesurv.faces.detect import FACE_RECOGNITION, model_path

    if importlib.util.find_spec("dlib") is None:
        warn("identity similarity skipped: dlib is not installed (pip install dlib-bin)")
        return False
    try:
        model_path(FACE_RECOGNITION)
    except InputError as exc:
        warn(f"identity similarity skipped: {exc}")
        return False
    return True


def work_folder(out: Path) -> Path:
    """Where finished chunks wait until the merge: a hidden folder beside the output file."""
    return out.parent / f".{out.name}.work"


def _plan_key(aligned_dir: Path, pids: list[str], networks: Networks, config: EmbedConfig) -> str:
    files = {pid: sha256_file(aligned_dir / f"{pid}.png") for pid in pids}
    masks = {pid: sha256_file(p) for pid in pids if (p := mask_file(aligned_dir, pid)) is not None}
    landmarks = aligned_dir / LANDMARKS_FILE
    return hash_config(
        {
            "config": config.to_dict(),
            "images": files,
            "masks": masks if config.use_masks else {},
            "landmarks": sha256_file(landmarks) if landmarks.is_file() else None,
            "generator": networks.generator_sha256,
            "encoder": networks.encoder_sha256,
            "discriminator": networks.discriminator_sha256,
            "lpips": networks.lpips_sha256,
        }
    )


def _prepare_work(work: Path, key: str) -> None:
    """Keep the chunks of an interrupted run with the same key; clear anything else."""
    plan = work / "plan.json"
    if work.is_dir():
        try:
            same = json.loads(plan.read_text())["key"] == key
        except (OSError, ValueError, KeyError):
            same = False
        if same:
            return
        warn(f"{work}: left by a run with other inputs or settings; starting afresh")
        shutil.rmtree(work)
    work.mkdir(parents=True)
    write_json_atomic(plan, {"key": key})


def embed_folder(
    aligned_dir: str | Path,
    networks: Networks,
    out: str | Path,
    config: EmbedConfig,
    reconstructions: str | Path | None = None,
    world: World | None = None,
) -> Latents | None:
    """Embed the usable photos of ``aligned_dir`` and write the latents file ``out``.

    Returns the merged latents on rank 0 and None on other ranks.  ``reconstructions``: a folder that
    receives ``<pid>.png`` renderings of the codes.
    """
    aligned_dir, out = Path(aligned_dir), Path(out)
    world = world or init_world()
    G = networks.generator.to(world.device).eval().requires_grad_(False)
    for module in (networks.encoder, networks.discriminator, networks.lpips):
        if module is not None:
            module.to(world.device).eval().requires_grad_(False)
    if networks.encoder is not None:
        check_encoder_matches(networks.encoder, G, "--encoder")
    config.validate()
    config = config.for_generator(G)
    pids = usable_patients(aligned_dir)
    landmarks = None
    if config.identity and G.img_resolution >= IDENTITY_MIN_RESOLUTION:
        landmarks = aligned.read_landmarks(aligned_dir) or None
        if landmarks is not None and not _identity_model_available():
            landmarks = None
    work = work_folder(out)
    key = _plan_key(aligned_dir, pids, networks, config)
    if world.is_main:
        _prepare_work(work, key)
    barrier()
    chunks = [pids[i : i + config.batch] for i in range(0, len(pids), config.batch)]
    mine = [i for i in range(len(chunks)) if i % world.size == world.rank]
    todo = [i for i in mine if not (work / f"chunk_{i:06d}.npz").is_file()]
    w_std = w_std_estimate(G, config.project.w_avg_samples)
    steps_per_chunk = max(config.project.steps, 1)
    with make_progress() as progress:
        task = progress.add_task(f"embedding (rank {world.rank})", total=len(todo) * steps_per_chunk)
        for i in todo:
            images, faces, has_mask = load_batch(aligned_dir, chunks[i], G.img_resolution, config.use_masks)
            latents, recon = embed_batch(
                networks, images, faces, has_mask, chunks[i], config, w_std, landmarks,
                on_step=lambda _step: progress.advance(task),
            )  # fmt: skip
            if config.project.steps == 0:
                progress.advance(task)
            if reconstructions is not None:
                _save_reconstructions(Path(reconstructions), chunks[i], recon)
            save_latents(work / f"chunk_{i:06d}.npz", latents)
    barrier()
    if not world.is_main:
        return None
    merged = _merge([load_latents(work / f"chunk_{i:06d}.npz") for i in range(len(chunks))])
    merged.meta = {
        "space": config.project.space,
        "generator_sha256": networks.generator_sha256,
        "encoder_sha256": networks.encoder_sha256,
        "discriminator_sha256": networks.discriminator_sha256,
        "lpips_sha256": networks.lpips_sha256,
        "resolution": int(G.img_resolution),
        "num_ws": int(G.num_ws),
        "w_dim": int(G.w_dim),
        "config": config.to_dict(),
    }
    save_latents(out, merged)
    shutil.rmtree(work, ignore_errors=True)
    return merged


def _merge(parts: list[Latents]) -> Latents:
    names = sorted(set().union(*(p.metrics for p in parts)))
    n = [len(p) for p in parts]
    metrics = {
        name: np.concatenate([p.metrics.get(name, np.full(k, np.nan)) for p, k in zip(parts, n, strict=True)])
        for name in names
    }
    has_wplus = parts[0].wplus is not None
    has_styles = all(p.styles is not None for p in parts)  # parts embedded before styles were kept: none
    return Latents(
        patient_id=np.concatenate([p.patient_id for p in parts]),
        w=np.concatenate([p.w for p in parts]),
        wplus=np.concatenate([p.wplus for p in parts]) if has_wplus else None,
        styles=np.concatenate([p.styles for p in parts]) if has_styles else None,  # type: ignore[misc]
        metrics=metrics,
    )
