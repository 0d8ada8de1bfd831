"""The explain stage's one config: the `[explain]` section of a run's TOML, the defaults of `stylesurv
explain`'s flags, and the options every explain function reads."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stylesurv.core.errors import InputError
from stylesurv.gan.face_subspace import DEFAULT_COMPONENTS, DEFAULT_PATIENTS, DEFAULT_THRESHOLD

NUISANCE_SOURCES = ("truth", "photo", "counterfactual")  # where nuisance directions can come from


@dataclass
class ExplainConfig:
    """What the explain stage does (defaults suit a 64 px cohort on a CPU)."""

    # bundle whose health direction a run explains (e.g. "coxnet"); "" = the first fitted of
    # app.pipeline.PRIMARY_MODELS (face-bound, then adjusted, then latent-only Cox models)
    model: str = ""
    max_sd: float = 3.0  # edits span -max_sd .. +max_sd attribute SDs
    steps: int = 7  # columns of the edit grids (odd, so a = 0 is one of them)
    patients: list[str] = field(default_factory=list)  # edited patients; empty: spread over the attribute
    n_patients: int = 4  # how many patients to edit when none are named
    attribution_patients: int = 64  # patients whose image change is measured (seeded sample)
    random_directions: int = 8  # random directions of the attribution baseline
    step_sd: float = 1.0  # attribution step, in attribute SDs
    batch: int = 16
    gif_scale: int = 2  # GIF pixels per image pixel
    face_components: int = DEFAULT_COMPONENTS  # principal directions searched for the face subspace
    face_patients: int = DEFAULT_PATIENTS  # patients whose Jacobians define the face subspace
    face_threshold: float = DEFAULT_THRESHOLD  # face share a direction needs to be in the face subspace
    # refit the explained model without nuisance directions and report the held-out C-index with and without:
    # "" (off), "photo" (probes of colours and pose measured in the photos), "truth" (a synthetic world's
    # truth.csv), "counterfactual" (re-embed photos with background and clothing recoloured:
    # studies.counterfactual)
    remove_nuisance: str = ""
    counterfactual_patients: int = 200  # patients re-embedded for "counterfactual"
    seed: int = 0  # in a run, the run's seed

    def validate(self, names: Mapping[str, str] | None = None) -> ExplainConfig:
        """Self, or an InputError naming the first bad field as ``names`` calls it (default
        ``explain.<field>``; the CLI passes its flags)."""

        def name(field_name: str) -> str:
            return (names or {}).get(field_name, f"explain.{field_name}")

        choices = ("", *NUISANCE_SOURCES)
        if self.remove_nuisance not in choices:
            raise InputError(
                f"{name('remove_nuisance')} must be one of {', '.join(map(repr, choices))}, "
                f"got {self.remove_nuisance!r}"
            )
        if not 0.0 < self.face_threshold < 1.0 or self.face_patients < 1:
            raise InputError(
                f"{name('face_threshold')} must lie between 0 and 1 and {name('face_patients')} be at least "
                f"1, got {self.face_threshold} and {self.face_patients}"
            )
        if self.steps < 3 or self.steps % 2 == 0:
            raise InputError(
                f"{name('steps')} must be odd and at least 3 (so that a = 0 is a column), got {self.steps}"
            )
        if not self.max_sd > 0:
            raise InputError(f"{name('max_sd')} must be positive, got {self.max_sd}")
        for count in ("n_patients", "attribution_patients", "batch", "gif_scale", "face_components"):
            if getattr(self, count) < 1:
                raise InputError(f"{name(count)} must be at least 1, got {getattr(self, count)}")
        if self.random_directions < 0 or self.counterfactual_patients < 1 or not self.step_sd > 0:
            raise InputError(
                f"{name('random_directions')} must be >= 0, {name('counterfactual_patients')} >= 1 and "
                f"{name('step_sd')} > 0"
            )
        return self

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
