"""The latents file: one NPZ per run with every patient's code and reconstruction metrics.

Layout (all arrays share the first axis N, in the order of ``patient_id``):

- ``patient_id``  [N] unicode strings
- ``w``           [N, w_dim] float32, present for space "w" (and as the layer mean for "wplus")
- ``wplus``       [N, num_ws, w_dim] float32, present for space "wplus"
- ``styles``      [N, D] float32, the StyleSpace codes of the rendered codes (gan/stylespace.py), optional
- ``metric_<name>`` [N] float32 per-patient reconstruction metrics (mse, psnr, ssim, psnr_face, id_sim, ...)
- ``meta``        0-d unicode JSON: space, generator sha256, steps, seed, format version, ...

NPZ is read with ``allow_pickle=False``, so a latents file cannot carry code.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stylesurv.core.atomic import write_bytes_atomic
from stylesurv.core.errors import InputError

FORMAT_VERSION = 1


@dataclass
class Latents:
    """Latent codes of a cohort, with per-patient reconstruction metrics and provenance."""

    patient_id: np.ndarray  # [N] str
    w: np.ndarray | None = None  # [N, w_dim]
    wplus: np.ndarray | None = None  # [N, num_ws, w_dim]
    styles: np.ndarray | None = None  # [N, D] per-channel styles of the generator that embedded them
    metrics: dict[str, np.ndarray] = field(default_factory=dict)  # name -> [N]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.patient_id = np.asarray(self.patient_id, dtype=str)
        n = len(self.patient_id)
        if self.w is None and self.wplus is None:
            raise ValueError("Latents need w, wplus or both")
        if self.w is None:
            self.w = self.wplus.mean(axis=1)  # type: ignore[union-attr]
        fields = [("w", self.w), ("wplus", self.wplus), ("styles", self.styles), *self.metrics.items()]
        for name, arr in fields:
            if arr is not None and len(arr) != n:
                raise ValueError(f"latents field {name!r} has {len(arr)} rows for {n} patients")
        if len(set(self.patient_id.tolist())) != n:
            raise ValueError("duplicate patient ids in latents")

    def __len__(self) -> int:
        return len(self.patient_id)

    @property
    def space(self) -> str:
        return "wplus" if self.wplus is not None else "w"

    def codes(self, space: str | None = None) -> np.ndarray:
        """Codes in ``space`` ("w" [N, w_dim], "wplus" [N, num_ws, w_dim] or "styles" [N, D]); default: the
        richest W code present."""
        space = space or self.space
        if space == "styles":
            if self.styles is None:
                raise InputError(
                    "these latents hold no style codes; re-embed them (`stylesurv embed` writes them) or "
                    "pass the generator that embedded them (--generator) so that they can be computed"
                )
            return self.styles
        arr = self.wplus if space == "wplus" else self.w
        if arr is None:
            raise InputError(f"these latents hold no {space!r} codes; re-embed with --space {space}")
        return arr

    def subset(self, ids: list[str] | np.ndarray) -> Latents:
        """The latents of the given patients, in the given order."""
        index = {pid: i for i, pid in enumerate(self.patient_id.tolist())}
        missing = [pid for pid in ids if pid not in index]
        if missing:
            raise InputError(f"no latent code for patient(s) {', '.join(map(str, missing[:5]))}")
        rows = np.array([index[pid] for pid in ids], dtype=np.int64)
        return Latents(
            patient_id=self.patient_id[rows],
            w=None if self.w is None else self.w[rows],
            wplus=None if self.wplus is None else self.wplus[rows],
            styles=None if self.styles is None else self.styles[rows],
            metrics={k: v[rows] for k, v in self.metrics.items()},
            meta=dict(self.meta),
        )


def save_latents(path: str | os.PathLike[str], latents: Latents) -> None:
    """Write ``latents`` as NPZ, atomically."""
    arrays: dict[str, np.ndarray] = {"patient_id": latents.patient_id.astype(str)}
    if latents.w is not None:
        arrays["w"] = np.asarray(latents.w, dtype=np.float32)
    if latents.wplus is not None:
        arrays["wplus"] = np.asarray(latents.wplus, dtype=np.float32)
    if latents.styles is not None:
        arrays["styles"] = np.asarray(latents.styles, dtype=np.float32)
    for name, values in latents.metrics.items():
        arrays[f"metric_{name}"] = np.asarray(values, dtype=np.float32)
    meta = {**latents.meta, "format_version": FORMAT_VERSION}
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


def load_latents(path: str | os.PathLike[str]) -> Latents:
    """Read a latents NPZ written by :func:`save_latents` (never unpickles)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise InputError(f"{path}: latents file not found; run `stylesurv embed` first") from None
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a readable latents NPZ ({exc})") from None
    if "patient_id" not in arrays:
        raise InputError(f"{path}: not a stylesurv latents file (no patient_id array)")
    meta = json.loads(str(arrays.pop("meta"))) if "meta" in arrays else {}
    metrics = {k.removeprefix("metric_"): v for k, v in arrays.items() if k.startswith("metric_")}
    return Latents(
        patient_id=arrays["patient_id"],
        w=arrays.get("w"),
        wplus=arrays.get("wplus"),
        styles=arrays.get("styles"),
        metrics=metrics,
        meta=meta,
    )
