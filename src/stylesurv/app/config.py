"""Typed configuration of a whole run, loaded from TOML; CLI flags override single fields."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stylesurv.core.errors import InputError
from stylesurv.explain.config import ExplainConfig


@dataclass
class AlignConfig:
    resolution: int = 64  # output side R in pixels (power of two, 32-1024)
    landmarks: str | None = None  # CSV of given 68-point landmarks instead of the detector


@dataclass
class FinetuneConfig:
    kimg: float = 0.0  # thousands of real images shown while fine-tuning; 0 skips fine-tuning
    batch: int = 16
    freeze_d: int = 4  # number of D's first layers kept frozen (Freeze-D)
    aug: str = "ada"  # ada | fixed | none


@dataclass
class EmbedConfig:
    space: str = "wplus"  # w | wplus
    steps: int = 100  # refinement steps after the encoder's initial guess
    batch: int = 32


@dataclass
class FitConfig:
    # survival models to cross-validate; "fusion" = fusion_model's out-of-fold image score + clinical
    # covariates (late fusion), "adjusted" = fusion_model (coxnet or coxph) on the codes and the unpenalised
    # clinical covariates together (its health direction is adjusted for them; explain prefers it),
    # "clinical" = clinical covariates only
    models: list[str] = field(
        default_factory=lambda: ["coxnet", "deepsurv", "fusion", "adjusted", "adjusted_face", "clinical"]
    )
    clinical: list[str] = field(default_factory=list)  # covariates (fusion, adjusted, clinical)
    fusion_model: str = "coxnet"
    l1_ratio: float = 0.1  # CoxNet's elastic-net mixing (1 lasso, near 0 ridge); survival.models explains
    folds: int = 5
    repeats: int = 1
    permutations: int = 20  # outcome-shuffled CV reruns of the permutation test
    wplus_reduce: str = "groups"  # W+ codes as features: groups (layer-group means) | flatten
    # latent features: "styles" = the StyleSpace channels the run's generator makes from the embedded codes
    # (gan/stylespace.py: on the synthetic world, edits along the health direction stay twice as much on
    # the face as in W+, at the same or better C-index: bench/bench_explain.py); "" = the embedded codes
    space: str = "styles"
    # face-bound models (entries of `models` ending in "_face", e.g. "adjusted_face"): the same model fitted
    # on codes kept to the face subspace at this threshold (explain.localize; found without outcomes)
    face_threshold: float = 0.5


@dataclass
class RunConfig:
    """Everything that determines a run's results; its hash keys the stage cache."""

    cohort: str = ""  # cohort folder: clinical.csv + photos/
    generator: str = ""  # generator checkpoint (native, NVIDIA .pkl or rosinality .pt)
    encoder: str = (
        ""  # encoder folder for the generator; empty: train one (encoder_steps) or start from w_avg
    )
    encoder_steps: int = 2000  # steps of encoder training when no encoder is given; 0: no encoder
    out: str = "runs/run"  # run folder
    seed: int = 0
    align: AlignConfig = field(default_factory=AlignConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    explain: ExplainConfig = field(default_factory=ExplainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InputError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(known)}")
    kwargs = {}
    for name, value in data.items():
        sub = known[name].default_factory if known[name].default_factory is not dataclasses.MISSING else None
        if isinstance(value, dict) and sub is not None and dataclasses.is_dataclass(sub()):
            kwargs[name] = _from_dict(type(sub()), value, f"{where} [{name}]")
        else:
            kwargs[name] = value
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any], where: str = "config") -> RunConfig:
    """A RunConfig from a plain dict (a manifest's "config"), checking every key."""
    return _from_dict(RunConfig, data, where)


def load_config(path: str | Path) -> RunConfig:
    """Read a run config from TOML; unknown keys are an error that names them."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    return _from_dict(RunConfig, data, str(path))
