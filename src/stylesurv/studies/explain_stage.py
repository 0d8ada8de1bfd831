"""The explain stage, once: what `stylesurv explain` and the pipeline's explain stage both run.

Given loaded objects (the bundle, the generator, the codes, the outcomes), it takes the style view when the
model was fitted on style codes, finds (or takes) the face subspace, runs the held-out refit studies that
the inputs allow (inside and outside the face subspace; without nuisance directions when asked), and writes
every explain output through :func:`stylesurv.explain.outputs.explain_run`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from stylesurv.core.errors import InputError
from stylesurv.core.latents import Latents
from stylesurv.explain.config import NUISANCE_SOURCES, ExplainConfig
from stylesurv.explain.outputs import explain_run, find_face_subspace
from stylesurv.explain.result import ExplainResult, FaceSubspaceRefit, NuisanceRemoval
from stylesurv.gan.face_subspace import FaceSubspace
from stylesurv.gan.render import style_space_view
from stylesurv.studies.refit import (
    face_share_meter,
    face_subspace_evaluation,
    remove_nuisance_evaluation,
)
from stylesurv.survival.bundle import SurvivalBundle


@dataclass
class ExplainInputs:
    """Everything the explain stage reads, loaded once by its caller.

    ``outcomes`` (the cohort's clinical table) enables the refit studies; ``subspace`` is a face subspace
    found earlier in the same codes (else it is found here when ``aligned`` has masks); ``swapped`` holds
    the counterfactual codes (the same photos with background and clothing recoloured) for
    ``remove_nuisance`` "counterfactual".  ``remove_nuisance``: "" off, "auto" (the truth when there is
    one, else the photos), or one of NUISANCE_SOURCES.
    """

    bundle: SurvivalBundle
    generator: Any  # the generator the codes were embedded with
    latents: Latents
    paths: dict[str, str]  # bundle, generator, latents as given, recorded in summary.json
    aligned: Path | None = None
    truth: Path | None = None
    outcomes: pd.DataFrame | None = None
    subspace: FaceSubspace | None = None
    swapped: Latents | None = None
    remove_nuisance: str = ""

    def check(self) -> None:
        """An InputError naming what is missing for the studies asked for."""
        choices = ("", "auto", *NUISANCE_SOURCES)
        if self.remove_nuisance not in choices:
            raise InputError(
                f"remove_nuisance must be one of {', '.join(map(repr, choices))}, "
                f"got {self.remove_nuisance!r}"
            )
        if not self.remove_nuisance:
            return
        if self.outcomes is None:
            raise InputError("removing nuisance directions refits the model: it needs the cohort's outcomes")
        if self.remove_nuisance == "counterfactual" and self.swapped is None:
            raise InputError("counterfactual nuisance directions need the codes of the recoloured photos")
        if self.remove_nuisance == "auto" and self.aligned is None and self.truth is None:
            raise InputError("removing nuisance directions needs the aligned photos or a synthetic truth.csv")


def explain_stage(inputs: ExplainInputs, options: ExplainConfig, out: str | Path) -> ExplainResult:
    """Run every explain step the inputs allow and write the outputs into ``out`` (replaced atomically);
    return the result that out/summary.json holds."""
    inputs.check()
    model, codes, net, swapped = inputs.bundle, inputs.latents, inputs.generator, inputs.swapped
    if model.spec.space == "styles":  # edits, probes and the face subspace on style codes
        codes, net = style_space_view(codes, inputs.generator)
        if swapped is not None:
            swapped = style_space_view(swapped, inputs.generator)[0]
    shape = tuple(model.latent_direction().shape)
    subspace = inputs.subspace
    if subspace is None and inputs.aligned is not None:
        subspace = find_face_subspace(net, codes, shape, inputs.aligned, options)
    face_refit = removal = None
    if subspace is not None and inputs.outcomes is not None:
        assert inputs.aligned is not None  # a subspace comes with the masks
        meter = face_share_meter(net, codes, shape, inputs.aligned, options)
        evaluation = face_subspace_evaluation(
            model, codes, inputs.outcomes, subspace, inputs.truth, seed=options.seed, meter=meter
        )
        face_refit = FaceSubspaceRefit.from_json(evaluation)
    if inputs.remove_nuisance:
        assert inputs.outcomes is not None  # check() asked for them
        source = None if inputs.remove_nuisance == "auto" else inputs.remove_nuisance
        evaluation = remove_nuisance_evaluation(
            model,
            codes,
            inputs.outcomes,
            inputs.aligned,
            inputs.truth,
            seed=options.seed,
            source=source,
            swapped=swapped,
        )
        removal = NuisanceRemoval.from_json(evaluation)
    return explain_run(
        model,
        net,
        codes,
        out,
        aligned_dir=inputs.aligned,
        truth_csv=inputs.truth,
        options=options,
        inputs=inputs.paths,
        subspace=subspace,
        face_subspace_refit=face_refit,
        remove_nuisance=removal,
    )
