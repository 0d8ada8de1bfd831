"""Survival data and features: join latents with the cohort table, and turn codes + covariates into a matrix.

Everything learned from data (standardisation, PCA, imputation, category levels) lives in a
:class:`FeaturePipeline` that is fitted on a training fold only and then applied to held-out patients, so
no statistic of a test patient ever reaches the model.  Every step is linear in the latent code, so a linear
Cox model on the features maps back to one latent direction (:meth:`FeaturePipeline.latent_gradient`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stylesurv.core.console import warn
from stylesurv.core.errors import InputError
from stylesurv.core.latents import Latents

LATENT_SPACES = ("w", "wplus", "styles")  # codes: W, W+, or the StyleSpace channels (gan/stylespace.py)
SPACES = (*LATENT_SPACES, "none", "image")  # "none": clinical covariates only; "image": aligned photos (CNN)
WPLUS_REDUCTIONS = ("flatten", "groups")
MISSING_LEVEL = "(missing)"


# ------------------------------------------------------------------------------------------------ cohort
@dataclass
class SurvivalData:
    """Patients with outcomes, their latent codes (or photos) and clinical covariates, row-aligned."""

    patient_id: np.ndarray  # [N] str
    time: np.ndarray  # [N] float days > 0
    event: np.ndarray  # [N] bool, True = death observed
    codes: np.ndarray | None = None  # [N, w_dim] (space w) or [N, num_ws, w_dim] (space wplus)
    clinical: pd.DataFrame = field(default_factory=pd.DataFrame)  # [N rows] covariate columns
    images: np.ndarray | None = None  # [N, 3, R, R] float32 in [-1, 1], for the CNN baseline

    def __post_init__(self) -> None:
        self.patient_id = np.asarray(self.patient_id, dtype=str)
        self.time = np.asarray(self.time, dtype=np.float64)
        self.event = np.asarray(self.event, dtype=bool)
        n = len(self.patient_id)
        if len(self.clinical.columns) == 0:
            self.clinical = pd.DataFrame(index=range(n))  # no covariates, but one row per patient
        self.clinical = self.clinical.reset_index(drop=True)
        for name, arr in [("time", self.time), ("event", self.event), ("codes", self.codes),
                          ("clinical", self.clinical), ("images", self.images)]:  # fmt: skip
            if arr is not None and len(arr) != n:
                raise ValueError(f"survival data field {name!r} has {len(arr)} rows for {n} patients")

    def __len__(self) -> int:
        return len(self.patient_id)

    @property
    def y(self) -> np.ndarray:
        """Outcomes as scikit-survival's structured array (fields ``event`` bool, ``time`` float)."""
        return make_y(self.time, self.event)

    def subset(self, rows: np.ndarray) -> SurvivalData:
        """The patients at positions ``rows`` (integer index), in that order."""
        rows = np.asarray(rows)
        return SurvivalData(
            patient_id=self.patient_id[rows],
            time=self.time[rows],
            event=self.event[rows],
            codes=None if self.codes is None else self.codes[rows],
            clinical=self.clinical.iloc[rows].reset_index(drop=True),
            images=None if self.images is None else self.images[rows],
        )

    def with_outcomes(self, time: np.ndarray, event: np.ndarray) -> SurvivalData:
        """The same patients and features with other outcomes (used by the permutation test)."""
        return dataclasses.replace(self, time=np.asarray(time), event=np.asarray(event))


def make_y(time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """scikit-survival's structured outcome array from times and event indicators."""
    y = np.empty(len(time), dtype=[("event", bool), ("time", np.float64)])
    y["event"] = np.asarray(event, dtype=bool)
    y["time"] = np.asarray(time, dtype=np.float64)
    return y


def read_cohort_table(cohort_dir: str | Path) -> pd.DataFrame:
    """The cohort's clinical table (patient_id, time, event, covariates), validated by the cohort stage."""
    from stylesurv.cohort.table import load_clinical

    return load_clinical(cohort_dir)


def join_latents(
    latents: Latents | None, table: pd.DataFrame, space: str, clinical: tuple[str, ...] = ()
) -> SurvivalData:
    """Patients present in both the latents and the cohort table, with the codes of ``space``.

    Patients with a code but no outcome (or the reverse, e.g. photos that failed QC) are dropped with a
    warning naming how many; a clinical column that does not exist is an InputError.
    """
    missing_cols = [c for c in clinical if c not in table.columns]
    if missing_cols:
        raise InputError(
            f"clinical covariate(s) {', '.join(missing_cols)} not in the cohort table; "
            f"available: {', '.join(c for c in table.columns if c not in ('patient_id', 'time', 'event'))}"
        )
    ids = table["patient_id"].astype(str).to_numpy()
    codes = None
    if space in LATENT_SPACES:
        if latents is None:
            raise InputError(f"space {space!r} needs a latents file (--latents)")
        known = set(latents.patient_id.tolist())
        keep = np.array([pid in known for pid in ids], dtype=bool)
        if (~keep).any():
            warn(f"{int((~keep).sum())} patient(s) of the cohort table have no latent code and are left out")
        n_extra = len(known - set(ids.tolist()))
        if n_extra:
            warn(f"{n_extra} patient(s) in the latents are not in the cohort table and are left out")
        table = table.loc[keep].reset_index(drop=True)
        ids = ids[keep]
        codes = latents.subset(ids).codes(space).astype(np.float64)
    data = SurvivalData(
        patient_id=ids,
        time=table["time"].to_numpy(dtype=np.float64),
        event=table["event"].to_numpy().astype(bool),
        codes=codes,
        clinical=table[list(clinical)].copy(),
    )
    check_outcomes(data)
    return data


def check_outcomes(data: SurvivalData, min_patients: int = 10, min_events: int = 2) -> None:
    """Raise InputError when there are too few patients or events to fit anything."""
    if len(data) < min_patients:
        raise InputError(
            f"only {len(data)} patients with both a latent code and an outcome; need >= {min_patients}"
        )
    if int(data.event.sum()) < min_events:
        raise InputError(f"only {int(data.event.sum())} events in {len(data)} patients; need >= {min_events}")
    bad = ~(np.isfinite(data.time) & (data.time > 0))
    if bad.any():
        raise InputError(f"patient {data.patient_id[bad][0]}: follow-up time must be a number > 0 (days)")


DEFAULT_WPLUS_REDUCE = "groups"  # W+ codes as features: layer-group means (one default: FitConfig's too)


# -------------------------------------------------------------------------------------------- feature spec
@dataclass(frozen=True)
class FeatureSpec:
    """Which features a model sees and how they are preprocessed (all fitted inside each training fold)."""

    space: str = "w"  # w | wplus | styles | none (clinical only) | image (aligned photos, CNN)
    wplus_reduce: str = DEFAULT_WPLUS_REDUCE  # W+ only: average contiguous layer groups, or flatten all
    layer_groups: int = 3  # W+ "groups": number of contiguous layer groups (coarse, middle, fine)
    pca: int | None = None  # principal components kept of the standardised codes; None keeps all
    clinical: tuple[str, ...] = ()  # clinical covariate columns, numeric or categorical (one-hot)

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise InputError(f"feature space must be one of {', '.join(SPACES)}, got {self.space!r}")
        if self.wplus_reduce not in WPLUS_REDUCTIONS:
            raise InputError(f"W+ reduction must be one of {', '.join(WPLUS_REDUCTIONS)}")
        if self.pca is not None and self.pca < 1:
            raise InputError(f"PCA components must be >= 1, got {self.pca}")
        if self.space == "none" and not self.clinical:
            raise InputError(
                "a clinical-only model needs at least one clinical covariate (fit.clinical, --clinical)"
            )

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "clinical": list(self.clinical)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureSpec:
        return cls(**{**d, "clinical": tuple(d.get("clinical", ()))})


def layer_group_bounds(num_ws: int, groups: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) ranges splitting ``num_ws`` W+ layers into ``groups`` near-equal parts."""
    groups = max(1, min(groups, num_ws))
    edges = np.linspace(0, num_ws, groups + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


# ------------------------------------------------------------------------------------------ the pipeline
class FeaturePipeline:
    """Codes + covariates -> standardised feature matrix; fit on training patients, apply to any.

    Latent part: reduce W+ (flatten or layer-group means) -> standardise each dimension -> optional PCA
    (components of the training fold) -> scale each score to unit variance.  Clinical part: numeric columns
    imputed with the training median and standardised; categorical columns one-hot against the most frequent
    training level (unseen levels map to all zeros).  Columns: latent features first, then clinical.
    """

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self.latent_shape: tuple[int, ...] = ()  # shape of one patient's code
        self.latent_mean = np.zeros(0)
        self.latent_scale = np.ones(0)
        self.components: np.ndarray | None = None  # [k, d] PCA axes of the standardised reduced code
        self.score_scale = np.ones(0)
        self.numeric: dict[str, tuple[float, float, float]] = {}  # column -> (median, mean, sd)
        self.categorical: dict[str, list[str]] = {}  # column -> levels, reference (dropped) first
        self.image_mean = np.zeros(3)
        self.image_scale = np.ones(3)

    # fitting ----------------------------------------------------------------------------------------
    def fit(self, data: SurvivalData) -> FeaturePipeline:
        """Learn every preprocessing statistic from ``data`` (a training fold)."""
        if self.spec.space in LATENT_SPACES:
            self._fit_latent(self._codes(data))
        elif self.spec.space == "image":
            if data.images is None:
                raise InputError("the CNN baseline needs aligned photos (--aligned DIR)")
            self.image_mean = data.images.mean(axis=(0, 2, 3))
            self.image_scale = np.maximum(data.images.std(axis=(0, 2, 3)), 1e-6)
        for col in self.spec.clinical:
            self._fit_clinical(col, data.clinical[col])
        return self

    def _codes(self, data: SurvivalData) -> np.ndarray:
        if data.codes is None:
            raise InputError(f"feature space {self.spec.space!r} needs latent codes")
        codes = np.asarray(data.codes, dtype=np.float64)
        if self.spec.space == "wplus" and codes.ndim != 3:
            raise InputError(
                "feature space 'wplus' needs W+ codes [N, num_ws, w_dim]; embed with --space wplus"
            )
        if self.spec.space in ("w", "styles") and codes.ndim != 2:
            raise InputError(f"feature space {self.spec.space!r} needs flat codes [N, dim]")
        return codes

    def _reduce(self, codes: np.ndarray) -> np.ndarray:
        """[N, ...] codes -> [N, d] vectors (W as is; W+ flattened or averaged per layer group)."""
        if codes.ndim == 2:
            return codes
        if self.spec.wplus_reduce == "flatten":
            return codes.reshape(len(codes), -1)
        bounds = layer_group_bounds(codes.shape[1], self.spec.layer_groups)
        return np.concatenate([codes[:, a:b].mean(axis=1) for a, b in bounds], axis=1)

    def _fit_latent(self, codes: np.ndarray) -> None:
        self.latent_shape = tuple(codes.shape[1:])
        reduced = self._reduce(codes)
        self.latent_mean = reduced.mean(axis=0)
        sd = reduced.std(axis=0, ddof=1) if len(reduced) > 1 else np.ones(reduced.shape[1])
        self.latent_scale = np.where(sd > 1e-12, sd, 1.0)
        z = (reduced - self.latent_mean) / self.latent_scale
        if self.spec.pca is None:
            self.components = None
            return
        k = min(self.spec.pca, z.shape[1], len(z) - 1)
        _, s, vt = np.linalg.svd(z, full_matrices=False)
        vt = vt[:k]
        signs = np.sign(vt[np.arange(k), np.abs(vt).argmax(axis=1)])  # deterministic sign: largest entry > 0
        self.components = vt * signs[:, None]
        sv = s[:k] / np.sqrt(max(len(z) - 1, 1))
        self.score_scale = np.where(sv > 1e-12, sv, 1.0)

    def _fit_clinical(self, col: str, values: pd.Series) -> None:
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().sum() == values.notna().sum() and pd.api.types.is_numeric_dtype(values):
            if numeric.notna().sum() == 0:
                raise InputError(f"clinical covariate {col!r} has no values in the training patients")
            median = float(numeric.median())
            filled = numeric.fillna(median)
            sd = float(filled.std(ddof=1)) if len(filled) > 1 else 1.0
            self.numeric[col] = (median, float(filled.mean()), sd if sd > 1e-12 else 1.0)
        else:
            counts = _as_levels(values).value_counts()
            levels = sorted(counts.index.tolist(), key=lambda lv: (-counts[lv], lv))
            self.categorical[col] = levels

    # applying ---------------------------------------------------------------------------------------
    def transform(self, data: SurvivalData) -> np.ndarray:
        """Feature matrix [N, p] (or normalised images [N, 3, R, R] for space "image")."""
        if self.spec.space == "image":
            if data.images is None:
                raise InputError("the CNN baseline needs aligned photos (--aligned DIR)")
            return (
                (data.images - self.image_mean[None, :, None, None]) / self.image_scale[None, :, None, None]
            ).astype(np.float32)
        parts = []
        if self.spec.space in LATENT_SPACES:
            codes = self._codes(data)
            if tuple(codes.shape[1:]) != self.latent_shape:
                raise InputError(
                    f"latent codes have shape {codes.shape[1:]}, the model expects {self.latent_shape}"
                )
            parts.append(self.latent_features(codes))
        parts.extend(self._clinical_features(data.clinical))
        return np.concatenate(parts, axis=1) if parts else np.zeros((len(data), 0))

    def latent_features(self, codes: np.ndarray) -> np.ndarray:
        """The latent block of the feature matrix for codes [N, ...]."""
        z = (self._reduce(np.asarray(codes, dtype=np.float64)) - self.latent_mean) / self.latent_scale
        if self.components is None:
            return z
        return (z @ self.components.T) / self.score_scale

    def _clinical_features(self, frame: pd.DataFrame) -> list[np.ndarray]:
        out = []
        for col in self.spec.clinical:
            if col not in frame.columns:
                raise InputError(f"clinical covariate {col!r} is missing; the model was fitted with it")
            if col in self.numeric:
                median, mean, sd = self.numeric[col]
                numeric = pd.to_numeric(frame[col], errors="coerce")
                bad = numeric.isna() & frame[col].notna()
                if bad.any():
                    raise InputError(
                        f"clinical covariate {col!r}: non-numeric value {frame[col][bad].iloc[0]!r}"
                    )
                out.append(((numeric.fillna(median).to_numpy(dtype=np.float64) - mean) / sd)[:, None])
            else:
                levels = _as_levels(frame[col]).to_numpy()
                for level in self.categorical[col][1:]:
                    out.append((levels == level).astype(np.float64)[:, None])
        return out

    @property
    def n_latent_features(self) -> int:
        if self.spec.space not in LATENT_SPACES:
            return 0
        return len(self.latent_mean) if self.components is None else len(self.components)

    @property
    def feature_names(self) -> list[str]:
        names: list[str] = []
        if self.spec.space in LATENT_SPACES:
            prefix = "pc" if self.components is not None else "z"
            names += [f"{prefix}{i + 1}" for i in range(self.n_latent_features)]
        for col in self.spec.clinical:
            if col in self.numeric:
                names.append(col)
            else:
                names += [f"{col}={level}" for level in self.categorical[col][1:]]
        return names

    def latent_gradient(self, latent_coef: np.ndarray) -> np.ndarray:
        """Gradient of ``latent_features(code) @ latent_coef`` with respect to one code (shape of a code).

        Because every latent step is affine, this maps linear Cox coefficients back to latent space.
        """
        g = np.asarray(latent_coef, dtype=np.float64)
        if self.components is not None:
            g = self.components.T @ (g / self.score_scale)
        g = g / self.latent_scale
        if len(self.latent_shape) == 1:
            return g
        num_ws, w_dim = self.latent_shape
        if self.spec.wplus_reduce == "flatten":
            return g.reshape(num_ws, w_dim)
        out = np.zeros((num_ws, w_dim))
        for i, (a, b) in enumerate(layer_group_bounds(num_ws, self.spec.layer_groups)):
            out[a:b] = g[i * w_dim : (i + 1) * w_dim] / (b - a)
        return out

    # serialisation ----------------------------------------------------------------------------------
    def export(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able description, named arrays) that :meth:`restore` turns back into this pipeline."""
        config = {
            "spec": self.spec.to_dict(),
            "latent_shape": list(self.latent_shape),
            "numeric": {c: list(v) for c, v in self.numeric.items()},
            "categorical": self.categorical,
            "image_mean": self.image_mean.tolist(),
            "image_scale": self.image_scale.tolist(),
            "feature_names": self.feature_names,
        }
        arrays = {"latent_mean": self.latent_mean, "latent_scale": self.latent_scale}
        if self.components is not None:
            arrays["pca_components"] = self.components
            arrays["pca_score_scale"] = self.score_scale
        return config, arrays

    @classmethod
    def restore(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> FeaturePipeline:
        pipe = cls(FeatureSpec.from_dict(config["spec"]))
        pipe.latent_shape = tuple(config["latent_shape"])
        pipe.latent_mean = np.asarray(arrays["latent_mean"], dtype=np.float64)
        pipe.latent_scale = np.asarray(arrays["latent_scale"], dtype=np.float64)
        if "pca_components" in arrays:
            pipe.components = np.asarray(arrays["pca_components"], dtype=np.float64)
            pipe.score_scale = np.asarray(arrays["pca_score_scale"], dtype=np.float64)
        pipe.numeric = {c: tuple(v) for c, v in config["numeric"].items()}  # type: ignore[misc]
        pipe.categorical = {c: list(v) for c, v in config["categorical"].items()}
        pipe.image_mean = np.asarray(config["image_mean"])
        pipe.image_scale = np.asarray(config["image_scale"])
        return pipe


def _as_levels(values: pd.Series) -> pd.Series:
    """Category labels as strings; missing values become their own level."""
    return values.astype(object).where(values.notna(), MISSING_LEVEL).astype(str)


def stratified_splits(event: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """K-fold (train, test) index pairs stratified by event status, shuffled with ``seed``.

    K is lowered to the size of the smaller class (deaths or censored) when that is smaller, so every test
    fold holds at least one of each; with fewer than two of either class the split is unstratified.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    event = np.asarray(event, dtype=bool)
    smaller = int(min(event.sum(), (~event).sum()))
    if smaller >= 2:
        splitter = StratifiedKFold(n_splits=max(2, min(folds, smaller)), shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(event)), event))
    splitter = KFold(n_splits=max(2, min(folds, len(event))), shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(event))))
