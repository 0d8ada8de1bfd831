"""What an explain run found, typed: :class:`ExplainResult` is what summary.json holds.

``to_json`` writes the summary's layout (the same keys and values as before this module existed, so older
run folders still read); ``from_json`` reads one back with an InputError naming the file and the key of
whatever is missing or of the wrong kind; ``table`` gives the headline rows the CLI and the report show.
Parts a run may lack (no masks, no truth, no outcomes, or a run from before the part existed) are None.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stylesurv.core.errors import InputError
from stylesurv.explain.config import ExplainConfig

SUMMARY_FILE = "summary.json"
Shares = dict[str, float]  # mask region (or factor) -> number


# ------------------------------------------------------------------------------------------------ reading
class _Fields:
    """One JSON object of a summary; every getter raises an InputError naming the file and the key."""

    def __init__(self, doc: object, source: str, path: str = "") -> None:
        if not isinstance(doc, Mapping):
            raise self._error(source, path or "the summary", "is not a JSON object")
        self.doc, self.source, self.path = doc, source, path

    @staticmethod
    def _error(source: str, name: str, problem: str) -> InputError:
        return InputError(f"{source}: {name!r} {problem}; re-run `stylesurv explain` to rewrite it")

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        """Whether ``key`` is there and not null."""
        return self.doc.get(key) is not None

    def value(self, key: str) -> Any:
        if key not in self.doc:
            raise self._error(self.source, self.name(key), "is missing")
        return self.doc[key]

    def wrong(self, key: str, kind: str) -> InputError:
        return self._error(self.source, self.name(key), f"is not {kind} (got {self.doc.get(key)!r:.60})")

    def number(self, key: str) -> float:
        value = self.value(key)
        if not _is_number(value):
            raise self.wrong(key, "a number")
        return float(value)

    def optional_number(self, key: str) -> float | None:
        return self.number(key) if self.has(key) else None

    def integer(self, key: str) -> int:
        value = self.value(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.wrong(key, "an integer")
        return value

    def text(self, key: str) -> str:
        value = self.value(key)
        if not isinstance(value, str):
            raise self.wrong(key, "a string")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.value(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.wrong(key, "a list of strings")
        return tuple(value)

    def numbers(self, key: str) -> tuple[float, ...]:
        found = self.value(key)
        if not isinstance(found, list) or not all(_is_number(v) for v in found):
            raise self.wrong(key, "a list of numbers")
        return tuple(float(v) for v in found)

    def integers(self, key: str) -> tuple[int, ...]:
        found = self.value(key)
        if not isinstance(found, list) or not all(_is_number(v) and isinstance(v, int) for v in found):
            raise self.wrong(key, "a list of integers")
        return tuple(found)

    def object(self, key: str) -> _Fields:
        return _Fields(self.value(key), self.source, self.name(key))

    def optional_object(self, key: str) -> _Fields | None:
        return self.object(key) if self.has(key) else None

    def mapping(self, key: str) -> dict[str, _Fields]:
        """An object of objects, each read as fields."""
        found = self.object(key)
        return {str(k): found.object(k) for k in found.doc}

    def shares(self, key: str) -> Shares:
        """An object of numbers."""
        found = self.object(key)
        return {str(k): found.number(k) for k in found.doc}

    def optional_shares(self, key: str) -> Shares | None:
        return self.shares(key) if self.has(key) else None

    def objects(self, key: str) -> list[_Fields]:
        found = self.value(key)
        if not isinstance(found, list):
            raise self.wrong(key, "a list")
        return [_Fields(item, self.source, f"{self.name(key)}[{i}]") for i, item in enumerate(found)]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _optional(doc: dict[str, Any], **parts: Any) -> dict[str, Any]:
    """``doc`` with each part that is not None added, as JSON (a mapping as a copy, so that editing the
    JSON leaves the result as it was)."""
    for key, part in parts.items():
        if isinstance(part, dict):
            doc[key] = dict(part)
        elif part is not None:
            doc[key] = part.to_json() if hasattr(part, "to_json") else part
    return doc


# ------------------------------------------------------------------------------------------------ parts
@dataclass(frozen=True)
class DirectionSummary:
    """A health direction's shape, its attribute's cohort statistics and (W+) each layer group's share."""

    shape: tuple[int, ...]
    center: float
    scale: float  # latent units per attribute SD
    group_weights: Shares

    def to_json(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "center": self.center,
            "scale": self.scale,
            "group_weights": dict(self.group_weights),
        }

    @classmethod
    def read(cls, f: _Fields) -> DirectionSummary:
        return cls(f.integers("shape"), f.number("center"), f.number("scale"), f.shares("group_weights"))


@dataclass(frozen=True)
class RegionShares:
    """Where one edit changes the image: mean energy share per mask region, and inside the face with its
    contour margin."""

    health: Shares
    face_with_margin: float

    def to_json(self) -> dict[str, Any]:
        return {"health": dict(self.health), "face_with_margin": self.face_with_margin}

    @classmethod
    def read(cls, f: _Fields) -> RegionShares:
        return cls(f.shares("health"), f.number("face_with_margin"))


@dataclass(frozen=True)
class MarginShares:
    """The face mask widened by the contour margin: its shares for d and random directions, and its area."""

    definition: str
    health: float
    random_mean: float
    random_sd: float
    area: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def read(cls, f: _Fields) -> MarginShares:
        numbers = [f.number(k) for k in ("health", "random_mean", "random_sd", "area")]
        return cls(f.text("definition"), *numbers)


@dataclass(frozen=True)
class GroupEdit:
    """One W+ layer group's part of the edit: its share of |d|^2 and of the change energy, and its shares."""

    weight: float
    energy_share: float
    shares: RegionShares

    def to_json(self) -> dict[str, Any]:
        return {"weight": self.weight, "energy_share": self.energy_share, **self.shares.to_json()}

    @classmethod
    def read(cls, f: _Fields) -> GroupEdit:
        return cls(f.number("weight"), f.number("energy_share"), RegionShares.read(f))


@dataclass(frozen=True)
class AttributionSummary:
    """Where a step along d changes the image, next to random directions and the regions' areas."""

    regions: tuple[str, ...]
    health: Shares
    random_mean: Shares
    random_sd: Shares
    area: Shares
    step_sd: float
    n_random: int
    n_patients: int
    n_fallback_masks: int
    face_margin_px: int | None = None  # with face_with_margin (runs before it have neither)
    face_with_margin: MarginShares | None = None
    groups: dict[str, GroupEdit] | None = None  # W+ codes only

    def to_json(self) -> dict[str, Any]:
        doc = {
            "regions": list(self.regions),
            "health": dict(self.health),
            "random_mean": dict(self.random_mean),
            "random_sd": dict(self.random_sd),
            "area": dict(self.area),
            "step_sd": self.step_sd,
            "n_random": self.n_random,
            "n_patients": self.n_patients,
            "n_fallback_masks": self.n_fallback_masks,
        }
        if self.groups is not None:
            doc["groups"] = {name: group.to_json() for name, group in self.groups.items()}
        return _optional(doc, face_margin_px=self.face_margin_px, face_with_margin=self.face_with_margin)

    @classmethod
    def read(cls, f: _Fields) -> AttributionSummary:
        margin, groups = f.optional_object("face_with_margin"), f.has("groups")
        return cls(
            regions=f.texts("regions"),
            health=f.shares("health"),
            random_mean=f.shares("random_mean"),
            random_sd=f.shares("random_sd"),
            area=f.shares("area"),
            step_sd=f.number("step_sd"),
            n_random=f.integer("n_random"),
            n_patients=f.integer("n_patients"),
            n_fallback_masks=f.integer("n_fallback_masks"),
            face_margin_px=f.integer("face_margin_px") if margin is not None else None,
            face_with_margin=MarginShares.read(margin) if margin is not None else None,
            groups={k: GroupEdit.read(g) for k, g in f.mapping("groups").items()} if groups else None,
        )


@dataclass(frozen=True)
class PatternSummary:
    """The covariance-weighted (pattern) direction next to d."""

    direction: DirectionSummary
    cosine_with_d: float
    definition: str
    truth_correlations: Shares | None = None  # with a synthetic world's truth
    attribution: RegionShares | None = None  # with masks

    def to_json(self) -> dict[str, Any]:
        doc = {**self.direction.to_json(), "cosine_with_d": self.cosine_with_d, "definition": self.definition}
        return _optional(doc, truth_correlations=self.truth_correlations, attribution=self.attribution)

    @classmethod
    def read(cls, f: _Fields) -> PatternSummary:
        own = f.optional_object("attribution")
        return cls(
            DirectionSummary.read(f),
            f.number("cosine_with_d"),
            f.text("definition"),
            f.optional_shares("truth_correlations"),
            RegionShares.read(own) if own is not None else None,
        )


@dataclass(frozen=True)
class ProbeRow:
    """One nuisance probe: where its attribute came from, its CV R^2 and its cosine with d."""

    source: str  # "photo" (measured in the aligned photo) or "truth" (the synthetic world's factor)
    name: str
    r2_cv: float
    cosine: float
    n: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def read(cls, f: _Fields) -> ProbeRow:
        return cls(f.text("source"), f.text("name"), f.number("r2_cv"), f.number("cosine"), f.integer("n"))


@dataclass(frozen=True)
class Probes:
    """The nuisance probes of a run (``source``: their sources joined, e.g. "photo and truth")."""

    source: str
    items: tuple[ProbeRow, ...]

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "items": [item.to_json() for item in self.items]}

    @classmethod
    def read(cls, f: _Fields) -> Probes:
        return cls(f.text("source"), tuple(ProbeRow.read(item) for item in f.objects("items")))


@dataclass(frozen=True)
class OrthogonalSummary:
    """d with the nuisance probes' span projected out: how much of d that removed, and where the rest acts."""

    definition: str
    min_r2: float
    n_directions: int
    removed_share: float
    cosine_with_d: float
    attribution: RegionShares | None = None  # with masks

    def to_json(self) -> dict[str, Any]:
        doc = {k: v for k, v in dataclasses.asdict(self).items() if k != "attribution"}
        return _optional(doc, attribution=self.attribution)

    @classmethod
    def read(cls, f: _Fields) -> OrthogonalSummary:
        own = f.optional_object("attribution")
        numbers = (f.number("min_r2"), f.integer("n_directions"), f.number("removed_share"))
        return cls(
            f.text("definition"),
            *numbers,
            f.number("cosine_with_d"),
            RegionShares.read(own) if own is not None else None,
        )


@dataclass(frozen=True)
class FaceSubspaceSummary:
    """The face subspace's spectrum and the face-local direction (d projected onto it)."""

    dim: int
    threshold: float
    n_components: int
    n_patients: int
    variance_share: float
    shares: tuple[float, ...]
    cosine_with_d: float
    definition: str
    attribution: RegionShares | None = None  # the face-local direction's shares (None when it is empty)

    def to_json(self) -> dict[str, Any]:
        doc = {k: v for k, v in dataclasses.asdict(self).items() if k != "attribution"}
        return _optional({**doc, "shares": list(self.shares)}, attribution=self.attribution)

    @classmethod
    def read(cls, f: _Fields) -> FaceSubspaceSummary:
        own = f.optional_object("attribution")
        return cls(
            dim=f.integer("dim"),
            threshold=f.number("threshold"),
            n_components=f.integer("n_components"),
            n_patients=f.integer("n_patients"),
            variance_share=f.number("variance_share"),
            shares=f.numbers("shares"),
            cosine_with_d=f.number("cosine_with_d"),
            definition=f.text("definition"),
            attribution=RegionShares.read(own) if own is not None else None,
        )


@dataclass(frozen=True)
class RefitScore:
    """One held-out refit: Harrell's C, that of the model's latent part alone, r of its health attribute
    with the true facial risk, and the measured face shares of its direction (None: not measured)."""

    c_index: float
    c_index_latent: float | None = None
    r_lp_face: float | None = None
    face_share: float | None = None
    face_share_with_margin: float | None = None

    def to_json(self, label: str, latent_key: str) -> dict[str, float]:
        """Its numbers under studies.refit's keys (``c_index_<label>``, ``<latent_key>_<label>``, ...)."""
        suffix = f"_{label}" if label else ""
        keys = {"c_index_latent": latent_key}
        return {
            f"{keys.get(name, name)}{suffix}": value
            for name, value in dataclasses.asdict(self).items()
            if value is not None
        }

    @classmethod
    def read(cls, f: _Fields, label: str, latent_key: str) -> RefitScore:
        suffix = f"_{label}" if label else ""
        optional = (latent_key, "r_lp_face", "face_share", "face_share_with_margin")
        return cls(f.number(f"c_index{suffix}"), *(f.optional_number(f"{k}{suffix}") for k in optional))


@dataclass(frozen=True)
class Refit:
    """Which model was refitted on which split (the part every held-out evaluation shares)."""

    model: str
    split: str  # how the held-out patients were chosen
    n_train: int
    n_test: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def read(cls, f: _Fields) -> Refit:
        return cls(f.text("model"), f.text("split"), f.integer("n_train"), f.integer("n_test"))


@dataclass(frozen=True)
class NuisanceRemoval:
    """The model refitted on plain codes and on codes without the nuisance directions (held out)."""

    refit: Refit
    nuisance_source: str
    nuisances: tuple[str, ...]
    n_directions: int
    plain: RefitScore
    removed: RefitScore

    def to_json(self) -> dict[str, Any]:
        return {
            **self.refit.to_json(),
            "nuisance_source": self.nuisance_source,
            "nuisances": list(self.nuisances),
            "n_directions": self.n_directions,
            **self.plain.to_json("plain", "c_index_face"),
            **self.removed.to_json("removed", "c_index_face"),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], source: str = SUMMARY_FILE) -> NuisanceRemoval:
        """What :func:`stylesurv.studies.refit.remove_nuisance_evaluation` returns, typed."""
        return cls.read(_Fields(doc, source, "remove_nuisance"))

    @classmethod
    def read(cls, f: _Fields) -> NuisanceRemoval:
        return cls(
            Refit.read(f),
            f.text("nuisance_source"),
            f.texts("nuisances"),
            f.integer("n_directions"),
            RefitScore.read(f, "plain", "c_index_face"),
            RefitScore.read(f, "removed", "c_index_face"),
        )


@dataclass(frozen=True)
class CurvePoint:
    """The model refitted inside the face subspace cut at one threshold."""

    threshold: float
    dim: int
    score: RefitScore

    def to_json(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "dim": self.dim, **self.score.to_json("", "c_index_latent")}

    @classmethod
    def read(cls, f: _Fields) -> CurvePoint:
        return cls(f.number("threshold"), f.integer("dim"), RefitScore.read(f, "", "c_index_latent"))


@dataclass(frozen=True)
class FaceSubspaceRefit:
    """The model refitted on all of the codes, inside the face subspace and outside it (held out), and
    inside it at several thresholds (``curve``)."""

    refit: Refit
    dim: int
    whole: RefitScore  # all of the codes
    rest: RefitScore  # the codes without the face subspace
    face: RefitScore | None = None  # None when the subspace is empty
    curve: tuple[CurvePoint, ...] = ()

    def to_json(self) -> dict[str, Any]:
        face = self.face.to_json("face", "c_index_latent") if self.face is not None else {}
        return {
            **self.refit.to_json(),
            "dim": self.dim,
            **face,
            **self.whole.to_json("all", "c_index_latent"),
            **self.rest.to_json("rest", "c_index_latent"),
            "curve": [point.to_json() for point in self.curve],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], source: str = SUMMARY_FILE) -> FaceSubspaceRefit:
        """What :func:`stylesurv.studies.refit.face_subspace_evaluation` returns, typed."""
        return cls.read(_Fields(doc, source, "face_subspace_refit"))

    @classmethod
    def read(cls, f: _Fields) -> FaceSubspaceRefit:
        return cls(
            Refit.read(f),
            f.integer("dim"),
            RefitScore.read(f, "all", "c_index_latent"),
            RefitScore.read(f, "rest", "c_index_latent"),
            RefitScore.read(f, "face", "c_index_latent") if f.has("c_index_face") else None,
            tuple(CurvePoint.read(p) for p in f.objects("curve")) if f.has("curve") else (),
        )


@dataclass(frozen=True)
class FaceBound:
    """How a face-bound model was restricted: the face subspace's directions kept and its threshold."""

    dim: int
    threshold: float | None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def read(cls, f: _Fields) -> FaceBound:
        return cls(f.integer("dim"), f.optional_number("threshold"))


@dataclass(frozen=True)
class ExplainImages:
    """The image files of an explain folder, relative to it (recon: patient id -> its reconstruction)."""

    edit_mean: str
    edit_mean_gif: str
    edit_patients: str
    edit_patients_gif: str
    recon: dict[str, str]
    edit_pattern: str | None = None
    edit_face_local: str | None = None  # with a non-empty face-local direction

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def read(cls, f: _Fields) -> ExplainImages:
        recon = f.object("recon")
        names = ("edit_mean", "edit_mean_gif", "edit_patients", "edit_patients_gif")
        return cls(
            *(f.text(k) for k in names),
            recon={str(pid): recon.text(pid) for pid in recon.doc},
            edit_pattern=f.text("edit_pattern") if f.has("edit_pattern") else None,
            edit_face_local=f.text("edit_face_local") if f.has("edit_face_local") else None,
        )


# ------------------------------------------------------------------------------------------------- whole
@dataclass(frozen=True)
class ExplainResult:
    """Every number of an explain run, its inputs and options, and its image files (summary.json)."""

    inputs: dict[str, str]  # bundle, generator, latents as given
    options: ExplainConfig
    n_patients: int
    space: str  # the codes of the direction: "w", "wplus" or "styles"
    direction: DirectionSummary
    images: ExplainImages
    alphas: tuple[float, ...]  # attribute SDs of the edit grids' columns
    patients: tuple[str, ...]  # the edited patients
    model: str = ""
    adjusted_for: tuple[str, ...] = ()  # clinical covariates of a jointly fitted (adjusted) model
    face_bound: FaceBound | None = None
    pattern: PatternSummary | None = None
    truth_correlations: Shares | None = None  # health attribute vs the synthetic world's true factors
    probes: Probes | None = None
    nuisance_orthogonal: OrthogonalSummary | None = None
    face_subspace: FaceSubspaceSummary | None = None
    attribution: AttributionSummary | None = None  # None without masks
    face_subspace_refit: FaceSubspaceRefit | None = None  # with a face subspace and outcomes
    remove_nuisance: NuisanceRemoval | None = None  # when asked for

    def to_json(self) -> dict[str, Any]:
        """What summary.json holds."""
        doc = {
            "inputs": dict(self.inputs),
            "options": self.options.to_json(),
            "n_patients": self.n_patients,
            "model": self.model,
            "adjusted_for": list(self.adjusted_for),
            "face_bound": self.face_bound.to_json() if self.face_bound is not None else None,
            "space": self.space,
            "direction": self.direction.to_json(),
            "images": self.images.to_json(),
            "alphas": list(self.alphas),
            "patients": list(self.patients),
        }
        return _optional(
            doc,
            pattern=self.pattern,
            truth_correlations=self.truth_correlations,
            probes=self.probes,
            nuisance_orthogonal=self.nuisance_orthogonal,
            face_subspace=self.face_subspace,
            attribution=self.attribution,
            face_subspace_refit=self.face_subspace_refit,
            remove_nuisance=self.remove_nuisance,
        )

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], source: str = SUMMARY_FILE) -> ExplainResult:
        """The result that :meth:`to_json` wrote (``source`` names the file in errors); keys that runs
        before a part existed lack read as None, keys no part knows are ignored."""
        f = _Fields(doc, source)
        known = {field.name for field in dataclasses.fields(ExplainConfig)}
        options = f.object("options")
        inputs = f.object("inputs")

        def part(key: str, kind: Any) -> Any:
            found = f.optional_object(key)
            return kind.read(found) if found is not None else None

        return cls(
            inputs={str(k): inputs.text(k) for k in inputs.doc},
            options=ExplainConfig(**{k: v for k, v in options.doc.items() if k in known}),
            n_patients=f.integer("n_patients"),
            space=f.text("space"),
            direction=DirectionSummary.read(f.object("direction")),
            images=ExplainImages.read(f.object("images")),
            alphas=f.numbers("alphas"),
            patients=f.texts("patients"),
            model=f.text("model") if f.has("model") else "",
            adjusted_for=f.texts("adjusted_for") if f.has("adjusted_for") else (),
            face_bound=part("face_bound", FaceBound),
            pattern=part("pattern", PatternSummary),
            truth_correlations=f.optional_shares("truth_correlations"),
            probes=part("probes", Probes),
            nuisance_orthogonal=part("nuisance_orthogonal", OrthogonalSummary),
            face_subspace=part("face_subspace", FaceSubspaceSummary),
            attribution=part("attribution", AttributionSummary),
            face_subspace_refit=part("face_subspace_refit", FaceSubspaceRefit),
            remove_nuisance=part("remove_nuisance", NuisanceRemoval),
        )

    def table(self) -> list[tuple[str, str]]:
        """The headline as (measure, value) rows: what was explained and the numbers that say whether the
        model reads the face."""
        rows = [
            ("explained model", self.model or "–"),
            ("codes", f"{self.space}, {self.n_patients} patients"),
        ]
        if self.face_bound is not None:
            rows.append(("face-bound", f"fitted inside {self.face_bound.dim} face-subspace directions"))
        if self.adjusted_for:
            rows.append(("adjusted for", ", ".join(self.adjusted_for)))
        found = self.attribution
        if found is not None and "face" in found.health:
            baseline = f"{_text(found.random_mean.get('face'))} ± {_text(found.random_sd.get('face'))}"
            rows.append(
                ("face share of the edit along d", f"{_text(found.health['face'])} (random {baseline})")
            )
            wide = found.face_with_margin
            if wide is not None:
                text = f"{_text(wide.health)} (random {_text(wide.random_mean)})"
                rows.append(("face share, contour included", text))
        if self.truth_correlations and "lp_face" in self.truth_correlations:
            rows.append(("r(health attribute, true facial risk)", _text(self.truth_correlations["lp_face"])))
        if self.nuisance_orthogonal is not None:
            rows.append(("share of d along nuisance probes", _text(self.nuisance_orthogonal.removed_share)))
        sub = self.face_subspace
        if sub is not None:
            text = (
                f"{sub.dim} of {sub.n_components} directions; cosine of d with it {_text(sub.cosine_with_d)}"
            )
            rows.append(("face subspace", text))
        refit = self.face_subspace_refit
        if refit is not None:
            parts = (refit.whole, refit.face, refit.rest)
            text = " / ".join(_text(part.c_index if part is not None else None) for part in parts)
            rows.append(("held-out C: all codes / face subspace / rest", text))
        if self.remove_nuisance is not None:
            both = (self.remove_nuisance.plain, self.remove_nuisance.removed)
            rows.append(("held-out C: plain / nuisance removed", " / ".join(_text(b.c_index) for b in both)))
        return rows


def _text(value: float | None) -> str:
    """A number with three decimals; "–" for None and NaN."""
    return "–" if value is None or value != value else f"{value:.3f}"


def load_explain_result(folder: str | Path) -> ExplainResult:
    """The result in an explain folder's summary.json (an InputError naming the file when it is absent or
    malformed)."""
    path = Path(folder) / SUMMARY_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: not found; run `stylesurv explain`") from None
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); re-run the stage that wrote it") from None
    return ExplainResult.from_json(doc, str(path))
