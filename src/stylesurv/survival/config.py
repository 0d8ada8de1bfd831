"""The fit stage's one config: how a survival model is fitted and validated (the features it sees, the
nested CV, the permutation test).  Which model is fitted, and how it takes clinical covariates, are the
arguments of :func:`stylesurv.survival.bundle.fit_files`; a run's ``[fit]`` section adds the list of models
(`stylesurv.app.config.RunFitConfig`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from stylesurv.core.config import FieldNames
from stylesurv.core.errors import InputError
from stylesurv.survival.data import DEFAULT_WPLUS_REDUCE, WPLUS_REDUCTIONS
from stylesurv.survival.models import DEFAULT_L1_RATIO

FIT_SPACES = ("", "w", "wplus", "styles")  # "": the richest W space the latents hold


@dataclass(frozen=True)
class FitConfig:
    """How `stylesurv fit` and a run's fit stage fit one model."""

    clinical: tuple[str, ...] = ()  # clinical covariates (late/joint fusion, or the clinical model's inputs)
    # latent features: "" the richest W space the latents hold, "w", "wplus", or "styles" (the StyleSpace
    # channels the generator makes from the codes: health edits stay more on the face, gan/stylespace.py)
    space: str = ""
    wplus_reduce: str = DEFAULT_WPLUS_REDUCE  # W+ codes as features: groups (layer-group means) | flatten
    pca: int | None = None  # principal components of the codes; None: the model kind's default; 0: none
    l1_ratio: float = DEFAULT_L1_RATIO  # CoxNet's elastic-net mixing (1 lasso, near 0 ridge)
    folds: int = 5  # outer CV folds
    repeats: int = 1  # outer CV repeats
    permutations: int = 20  # outcome-shuffled reruns of the whole CV (permutation test)
    auc_times: tuple[float, ...] = ()  # days of the time-dependent AUC; empty: quartiles of event times
    tau: float | None = None  # Uno's C truncation time in days; None: the 80th percentile
    face_threshold: float | None = None  # face-bound models: face-share cut of the subspace; None: its own
    seed: int = 0  # every split and model (in a run: the run's seed)

    def validate(self, names: Mapping[str, str] | None = None) -> FitConfig:
        """Self, or an InputError naming the first bad field (``fit.<field>``, or as ``names`` calls it)."""
        name = FieldNames("fit", names)
        if self.space not in FIT_SPACES:
            choices = ", ".join(repr(s) for s in FIT_SPACES)
            raise InputError(f"{name('space')} must be one of {choices}, got {self.space!r}")
        if self.wplus_reduce not in WPLUS_REDUCTIONS:
            choices = ", ".join(WPLUS_REDUCTIONS)
            raise InputError(f"{name('wplus_reduce')} must be one of {choices}, got {self.wplus_reduce!r}")
        if self.pca is not None and self.pca < 0:
            raise InputError(f"{name('pca')} must be >= 0 (0: no PCA), got {self.pca}")
        if not 0.0 < self.l1_ratio <= 1.0:
            raise InputError(
                f"{name('l1_ratio')} must be in (0, 1] (1 lasso, near 0 ridge), got {self.l1_ratio}"
            )
        if self.folds < 2 or self.repeats < 1 or self.permutations < 0:
            raise InputError(
                f"{name('folds')} must be >= 2, {name('repeats')} >= 1 and {name('permutations')} >= 0, got "
                f"{self.folds}, {self.repeats} and {self.permutations}"
            )
        if self.tau is not None and not self.tau > 0:
            raise InputError(f"{name('tau')} must be a positive number of days, got {self.tau}")
        if any(not t > 0 for t in self.auc_times):
            raise InputError(
                f"{name('auc_times')} must be positive numbers of days, got {list(self.auc_times)}"
            )
        if self.face_threshold is not None and not 0.0 < self.face_threshold < 1.0:
            raise InputError(f"{name('face_threshold')} must lie between 0 and 1, got {self.face_threshold}")
        return self
