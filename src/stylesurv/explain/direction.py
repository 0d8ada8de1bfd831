"""The health direction: the unit vector in latent space along which a survival model's risk falls fastest.

A Cox-family bundle gives the gradient of its risk score with respect to the latent code (for a linear
model on standardised PCA features this is the coefficient vector mapped back through both).  The health
direction is the negative gradient, normalised, so moving a code along it makes the model see a healthier
patient.  A patient's health attribute is the projection of its code on the direction, standardised over
the cohort (mean 0, SD 1; higher is healthier), as in Hagag et al. (MICCAI 2024).

Next to it, the covariance-weighted ("pattern") direction: Cov(code, risk) over the cohort.  A linear
model's weights (the gradient) also hold components that only cancel noise shared between code dimensions;
its activation pattern is the direction along which the cohort's codes actually change as the model's risk
changes (Haufe et al., NeuroImage 2014), so edits along it show what the faces of high- and low-risk
patients differ in, while edits along the gradient show what moves the model's score fastest.

For W+ codes [num_ws, w_dim] the direction is split into the layer groups of StyleGAN's style-mixing
figure (Karras et al. 2019): code index i styles resolution 2 ** (2 + i // 2); coarse 4-8 px, middle
16-32 px, fine 64 px and up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from stylesurv.core.errors import InputError
from stylesurv.core.latents import Latents
from stylesurv.explain.result import DirectionSummary

GROUP_RESOLUTIONS = {"coarse": (4, 8), "middle": (16, 32), "fine": (64, 1 << 20)}


class DirectionSource(Protocol):
    """Anything that gives the gradient of its risk score w.r.t. the latent code (a survival bundle)."""

    def latent_direction(self) -> np.ndarray: ...


def layer_resolution(index: int) -> int:
    """The image resolution (px) that W+ code ``index`` styles."""
    return 2 ** (2 + index // 2)


def layer_groups(num_ws: int) -> dict[str, np.ndarray]:
    """Indices of the W+ codes in each non-empty layer group (coarse, middle, fine)."""
    groups = {}
    for name, (low, high) in GROUP_RESOLUTIONS.items():
        idx = np.array([i for i in range(num_ws) if low <= layer_resolution(i) <= high], dtype=np.int64)
        if len(idx):
            groups[name] = idx
    return groups


def unit_direction_from_gradient(gradient: np.ndarray) -> np.ndarray:
    """The unit vector opposite to a risk gradient (toward lower risk), in the gradient's shape."""
    gradient = np.asarray(gradient, dtype=np.float64)
    norm = float(np.linalg.norm(gradient))
    if not np.isfinite(norm) or norm == 0.0:
        raise InputError(
            "the survival model's latent gradient is zero or not finite (every coefficient is zero?); "
            "there is no health direction to explain. Refit with a weaker penalty."
        )
    return -gradient / norm


def codes_in_space(latents: Latents, shape: tuple[int, ...]) -> np.ndarray:
    """The latent codes whose per-patient shape is a direction's ``shape`` ([w_dim] or [num_ws, w_dim])."""
    if len(shape) == 1:
        codes = latents.codes("w")
    elif latents.wplus is not None:
        codes = latents.wplus
    else:
        raise InputError("the survival model was fitted on W+ codes but the latents file holds only W codes")
    if codes.shape[1:] != shape:
        raise InputError(
            f"latent codes have shape {codes.shape[1:]} per patient but the model's direction has {shape}; "
            "use the latents the model was fitted on"
        )
    return np.asarray(codes, dtype=np.float64)


@dataclass(frozen=True)
class HealthDirection:
    """A unit health direction and the cohort statistics that standardise the attribute."""

    vector: np.ndarray  # [w_dim] or [num_ws, w_dim], unit Frobenius norm, toward lower risk
    center: float  # cohort mean of the raw projection
    scale: float  # cohort SD of the raw projection (latent units per attribute unit)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.vector.shape)

    def project(self, codes: np.ndarray) -> np.ndarray:
        """Raw projections of codes [N, *shape] on the direction."""
        codes = np.asarray(codes, dtype=np.float64)
        return codes.reshape(len(codes), -1) @ self.vector.reshape(-1)

    def attribute(self, codes: np.ndarray) -> np.ndarray:
        """Standardised health attribute of codes [N, *shape] (higher = healthier)."""
        return (self.project(codes) - self.center) / self.scale

    def offset(self, alpha: float) -> np.ndarray:
        """The latent offset that raises the health attribute by ``alpha`` cohort SDs."""
        return alpha * self.scale * self.vector

    def group_attributes(self, codes: np.ndarray) -> dict[str, np.ndarray]:
        """Per layer group (W+ only): projection on the group's part of d, standardised over ``codes``."""
        if self.vector.ndim != 2:
            return {}
        codes = np.asarray(codes, dtype=np.float64)
        out = {}
        for name, idx in layer_groups(self.vector.shape[0]).items():
            part = self.vector[idx]
            norm = np.linalg.norm(part)
            if norm == 0.0:
                continue
            proj = codes[:, idx].reshape(len(codes), -1) @ (part.reshape(-1) / norm)
            sd = proj.std()
            out[name] = (proj - proj.mean()) / sd if sd > 0 else np.zeros_like(proj)
        return out

    def group_weights(self) -> dict[str, float]:
        """Share of the direction's squared norm in each layer group (W+ only; sums to 1)."""
        if self.vector.ndim != 2:
            return {}
        return {
            name: float(np.sum(self.vector[idx] ** 2))
            for name, idx in layer_groups(self.vector.shape[0]).items()
        }

    def summary(self) -> DirectionSummary:
        """Its shape, the attribute's cohort statistics and the layer groups' weights (summary.json)."""
        return DirectionSummary(self.shape, self.center, self.scale, self.group_weights())


def health_direction(source: DirectionSource | np.ndarray, codes: np.ndarray) -> HealthDirection:
    """The health direction of a bundle (or of a given risk gradient), standardised over ``codes``."""
    gradient = source if isinstance(source, np.ndarray) else source.latent_direction()
    vector = unit_direction_from_gradient(np.asarray(gradient))
    codes = np.asarray(codes, dtype=np.float64)
    if codes.shape[1:] != vector.shape:
        raise InputError(
            f"codes of shape {codes.shape[1:]} do not match the direction's shape {vector.shape}"
        )
    proj = codes.reshape(len(codes), -1) @ vector.reshape(-1)
    scale = float(proj.std())
    if len(codes) < 2 or scale == 0.0:
        raise InputError(
            "need at least two patients with different codes to standardise the health attribute"
        )
    return HealthDirection(vector=vector, center=float(proj.mean()), scale=scale)


def pattern_direction(source: DirectionSource | np.ndarray, codes: np.ndarray) -> HealthDirection:
    """The covariance-weighted health direction -Cov(code, risk), unit length, standardised over ``codes``.

    For a linear risk ``g . code`` this is ``-Sigma g`` with Sigma the codes' covariance (Haufe et al. 2014).
    """
    gradient = source if isinstance(source, np.ndarray) else source.latent_direction()
    gradient = np.asarray(gradient, dtype=np.float64)
    codes = np.asarray(codes, dtype=np.float64)
    if codes.shape[1:] != gradient.shape:
        raise InputError(
            f"codes of shape {codes.shape[1:]} do not match the direction's shape {gradient.shape}"
        )
    flat = codes.reshape(len(codes), -1)
    centred = flat - flat.mean(axis=0)
    risk = centred @ gradient.reshape(-1)
    covariance = centred.T @ risk / max(len(codes) - 1, 1)
    return health_direction(covariance.reshape(gradient.shape), codes)
