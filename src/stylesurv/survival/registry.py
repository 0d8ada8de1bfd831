"""The model registry: each model kind (the ``kind`` a model exports and a bundle stores) with the class that
fits it, the function that restores it, and what it can do.

Everything that asks "which kinds are there, and what can this one do" reads it: :class:`ModelFactory`
(fresh models for each CV fold), :func:`restore_model` (a bundle's model from its export), the choices of
``stylesurv fit --model``, the default PCA of the codes per kind and the kinds that can be adjusted for
clinical covariates jointly.  It imports every module that defines a model (``models``, ``cnn``), so
those modules need not import each other.

Kinds:

- fitted on latent codes: ``coxnet``, ``coxph`` (linear, can be adjusted jointly), ``deepsurv``, ``rsf``,
  ``gbsa``;
- fitted on aligned photos: ``cnn``;
- fitted on clinical covariates alone: ``clinical`` (a ridge Cox model);
- restore-only: ``linear`` (a bare linear Cox model) and ``fusion`` (late fusion, which ModelFactory builds
  from an image kind with ``clinical_kind="fusion"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

from stylesurv.core.errors import InputError
from stylesurv.survival.cnn import CoxCNN
from stylesurv.survival.models import (
    Arrays,
    CoxNet,
    CoxPH,
    DeepSurv,
    GradientBoostedCox,
    LateFusion,
    LinearCox,
    RandomSurvivalForest,
    SurvivalModel,
)

Inputs = Literal["latent", "image", "clinical", "any"]
Restore = Callable[[dict[str, Any], Arrays], SurvivalModel]


@dataclass(frozen=True)
class ModelKind:
    """One model kind and its properties."""

    name: str
    restore: Restore  # rebuilds a fitted model of this kind from (config, arrays) of its export
    model: type[SurvivalModel] | None = None  # the class that fits it; None: restore-only
    inputs: Inputs = "any"  # what it is fitted on: latent codes, aligned photos, clinical covariates
    linear: bool = False  # risk linear in the features (a latent direction); fusion: as its image model
    joint: bool = False  # can take clinical covariates as unpenalised adjusters in the same model
    default_pca: int | None = None  # principal components of the codes by default (None: no PCA)
    selectable: bool = False  # one of ``stylesurv fit --model``'s choices
    named: bool = False  # its constructor takes ``feature_names`` (for its summary table)

    def new(
        self, seed: int, feature_names: Sequence[str] = (), options: Mapping[str, Any] | None = None
    ) -> SurvivalModel:
        """A fresh, unfitted model of this kind; ``options`` override its constructor defaults."""
        if self.model is None:
            raise ValueError(f"{self.name!r} models are only restored, not fitted directly")
        kwargs = {"seed": seed, **(options or {})}
        if self.named:
            kwargs["feature_names"] = list(feature_names)
        model = self.model(**kwargs)
        if model.kind != self.name:  # a kind fitted by another kind's class (clinical: CoxPH)
            model.kind = self.name
        return model


def _restore_fusion(config: dict[str, Any], arrays: Arrays) -> SurvivalModel:
    return LateFusion.restore(config, arrays, restore_model)


def _entries() -> dict[str, ModelKind]:
    kinds = [
        ModelKind("coxnet", LinearCox.restore, CoxNet, "latent", linear=True, joint=True, selectable=True),
        ModelKind(
            "coxph",
            LinearCox.restore,
            CoxPH,
            "latent",
            linear=True,
            joint=True,
            default_pca=16,
            selectable=True,
            named=True,
        ),
        ModelKind("deepsurv", DeepSurv.restore, DeepSurv, "latent", default_pca=32, selectable=True),
        ModelKind(
            "rsf",
            RandomSurvivalForest.restore,
            RandomSurvivalForest,
            "latent",
            default_pca=16,
            selectable=True,
        ),
        ModelKind(
            "gbsa", GradientBoostedCox.restore, GradientBoostedCox, "latent", default_pca=16, selectable=True
        ),
        ModelKind("cnn", CoxCNN.restore, CoxCNN, "image", selectable=True),
        ModelKind("clinical", LinearCox.restore, CoxPH, "clinical", linear=True, selectable=True, named=True),
        ModelKind("linear", LinearCox.restore, linear=True),
        ModelKind("fusion", _restore_fusion),
    ]
    return {kind.name: kind for kind in kinds}


KINDS: Mapping[str, ModelKind] = MappingProxyType(_entries())
FIT_KINDS = tuple(name for name, kind in KINDS.items() if kind.selectable)  # `stylesurv fit --model`
LATENT_KINDS = tuple(name for name, kind in KINDS.items() if kind.inputs == "latent")  # fitted on codes
JOINT_KINDS = tuple(name for name, kind in KINDS.items() if kind.joint)  # adjustable for covariates jointly


def model_kind(name: str) -> ModelKind:
    """The registry entry of ``name``; a ValueError for an unknown kind."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown model kind {name!r}") from None


def restore_model(config: dict[str, Any], arrays: Arrays) -> SurvivalModel:
    """Rebuild a fitted model from :meth:`SurvivalModel.export` output (no code is executed from data)."""
    kind = KINDS.get(config["kind"])
    if kind is None:
        raise ValueError(f"unknown model kind {config['kind']!r} in bundle")
    return kind.restore(config, arrays)


@dataclass(frozen=True)
class ModelFactory:
    """Builds a fresh, unfitted model of ``kind`` for one training fold.

    ``clinical_kind``: None (image features only), "fusion" (image model + clinical late fusion), "joint"
    (a linear Cox model on image features and clinical covariates together, the covariates unpenalised, so
    the image coefficients are adjusted for them) or "clinical" (Cox on clinical covariates alone; ``kind``
    is ignored).  ``options`` override constructor defaults of the image model.
    """

    kind: str
    clinical_kind: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __call__(self, seed: int, n_image: int, feature_names: Sequence[str]) -> SurvivalModel:
        if self.clinical_kind == "clinical":
            return KINDS["clinical"].new(seed, feature_names)
        if self.clinical_kind == "fusion":
            return LateFusion(
                lambda s: self.image(s, feature_names[:n_image]),
                n_image=n_image,
                seed=seed,
                clinical_names=feature_names[n_image:],
            )
        if self.clinical_kind == "joint":
            kind = KINDS.get(self.kind)
            if kind is None or not kind.joint:
                raise InputError(
                    f"adjusting for clinical covariates needs a linear Cox model ({', '.join(JOINT_KINDS)}), "
                    f"not {self.kind!r}; use late fusion for it"
                )
            unpenalized = len(feature_names) - n_image
            adjusted = replace(self, clinical_kind=None, options={**self.options, "unpenalized": unpenalized})
            return adjusted.image(seed, feature_names)
        return self.image(seed, feature_names)

    def image(self, seed: int, feature_names: Sequence[str]) -> SurvivalModel:
        """A fresh model of ``kind`` alone (no clinical part)."""
        return model_kind(self.kind).new(seed, feature_names, self.options)
