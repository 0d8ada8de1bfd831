"""A whole run's configuration, loaded from TOML: the run's inputs, then one section per stage.

Each section is that stage's own config (`faces.folder.AlignConfig`, `gan.train.TrainConfig`,
`invert.embed.EmbedConfig`, `survival.config.FitConfig` with the run's list of models, and
`explain.config.ExplainConfig`); the CLI's flags override single fields.  Where a run's defaults differ
from the stage command's (fine-tuning is short and freezes D's first layers, fits are on style codes) the
run starts from the named presets below, so a section lists only what it changes.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stylesurv.core.config import FieldNames, from_dict, to_dict
from stylesurv.core.errors import InputError
from stylesurv.explain.config import ExplainConfig
from stylesurv.faces.folder import AlignConfig
from stylesurv.gan.train import TrainConfig
from stylesurv.invert.embed import EmbedConfig
from stylesurv.survival.config import FitConfig

# The models a run fits by default; "fusion" = fusion_model's out-of-fold image score + clinical covariates
# (late fusion), "adjusted" = fusion_model (coxnet or coxph) on the codes and the unpenalised clinical
# covariates together (joint: its health direction is adjusted for them; explain prefers it), "clinical" =
# the clinical covariates alone; a "_face" suffix fits the model on codes kept to the face subspace.
DEFAULT_MODELS = ("coxnet", "deepsurv", "fusion", "adjusted", "adjusted_face", "clinical")
FINETUNE_SET_BY_RUN = ("data", "out", "resume")  # the run fine-tunes its generator on its aligned photos


@dataclass(frozen=True)
class RunFitConfig(FitConfig):
    """The fit stage of a run: how every model is fitted (FitConfig) and which models."""

    models: tuple[str, ...] = DEFAULT_MODELS
    fusion_model: str = "coxnet"  # the image model of "fusion" and "adjusted"


FINETUNE_DEFAULTS = TrainConfig(kimg=0.0, batch=16, freeze_d=4, snap_minutes=1.0)  # kimg 0 skips the stage
FIT_DEFAULTS = RunFitConfig(space="styles", face_threshold=0.5)


@dataclass
class RunConfig:
    """Everything that determines a run's results; each stage's key hashes its section and its inputs."""

    cohort: str = ""  # cohort folder: clinical.csv + photos/
    generator: str = ""  # generator checkpoint (native, NVIDIA .pkl or rosinality .pt)
    encoder: str = ""  # encoder folder for the generator; empty: train one (encoder_steps) or start at w_avg
    encoder_steps: int = 2000  # steps of encoder training when no encoder is given; 0: no encoder
    landmarks: str = ""  # CSV of given 68-point landmarks (photo pixels) instead of the face detector
    out: str = "runs/run"  # run folder
    seed: int = 0  # every stage's seed (it replaces the sections' own)
    align: AlignConfig = field(default_factory=AlignConfig)
    finetune: TrainConfig = field(default_factory=lambda: FINETUNE_DEFAULTS)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    fit: RunFitConfig = field(default_factory=lambda: FIT_DEFAULTS)
    explain: ExplainConfig = field(default_factory=ExplainConfig)

    def validate(self, names: Mapping[str, str] | None = None) -> RunConfig:
        """Self, or an InputError naming the first bad setting (as the TOML spells it, or ``names``)."""
        name = FieldNames("", names)
        set_here = [
            f for f in FINETUNE_SET_BY_RUN if getattr(self.finetune, f) != getattr(FINETUNE_DEFAULTS, f)
        ]
        if set_here:
            raise InputError(f"finetune.{set_here[0]} is set by the run (its aligned photos and generator)")
        if self.align.resolution:  # 0: the generator's, known once it is read
            self.align.validate(_section(names, "align"))
        self.finetune.validate(_section(names, "finetune"))
        self.embed.validate(_section(names, "embed"))
        self.fit.validate(_section(names, "fit"))
        self.explain.validate(_section(names, "explain"))
        if self.seed < 0:
            raise InputError(f"{name('seed')} must not be negative, got {self.seed}")
        if self.encoder_steps < 0:
            raise InputError(f"{name('encoder_steps')} must not be negative, got {self.encoder_steps}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def _section(names: Mapping[str, str] | None, section: str) -> dict[str, str]:
    """The flags of one section's fields, from a map of ``section.field`` -> flag."""
    prefix = section + "."
    return {key[len(prefix) :]: flag for key, flag in (names or {}).items() if key.startswith(prefix)}


def config_from_dict(data: Mapping[str, Any], where: str = "config") -> RunConfig:
    """A RunConfig from plain data (a TOML file, a manifest's "config"), checking every key; each section
    starts from the run's defaults for it."""
    presets = {"finetune": FINETUNE_DEFAULTS, "fit": FIT_DEFAULTS}
    sections = {f.name for f in dataclasses.fields(RunConfig) if f.default_factory is not dataclasses.MISSING}
    top = {key: value for key, value in data.items() if key not in sections}
    config = from_dict(RunConfig, top, where)
    for section in sections & set(data):
        base = presets.get(section, getattr(config, section))
        parsed = from_dict(type(base), data[section], where, section)
        given = {key: getattr(parsed, key) for key in data[section]}
        setattr(config, section, dataclasses.replace(base, **given))
    return config


def load_config(path: str | Path) -> RunConfig:
    """Read a run config from TOML; unknown keys and bad values are an error that names them."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    config = config_from_dict(data, str(path))
    try:
        return config.validate()
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def to_toml(config: RunConfig) -> str:
    """The TOML text of ``config`` (None values, which TOML cannot hold, are left out: they are defaults)."""
    lines: list[str] = []

    def emit(table: Mapping[str, Any], header: str) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping) and v is not None}
        if header:
            lines.append(f"\n[{header}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in scalars.items())
        for key, value in table.items():
            if isinstance(value, Mapping):
                emit(value, f"{header}.{key}" if header else key)

    emit(config.to_dict(), "")
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")
