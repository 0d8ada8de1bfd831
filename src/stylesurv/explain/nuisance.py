"""Nuisance attributes, their linear directions in latent space, and their removal.

Real photos: background brightness and colour and clothing colour are measured in the aligned photo
within the mask regions; head pose comes from the aligned landmarks (roll: angle of the eye line; yaw:
horizontal offset of the nose tip from the eye midpoint, in the eye-line frame, per eye distance).  The
synthetic world supplies its true factors instead.  A ridge probe per attribute (alpha by inner CV) gives
a direction in latent space (its weight vector) and a 5-fold CV R^2 that says how linearly the codes
encode the attribute; the cosine between that direction and the health direction says whether the model
could be reading it.  Removal projects codes onto the orthogonal complement of the nuisance directions
(`explain.counterfactual` finds them by re-embedding recoloured photos instead of probing).
Repeating probe-and-project (iterative null-space projection, Ravfogel et al., ACL 2020) removes what a
single probe leaves behind, but when the training split is confounded later rounds also find the genuine
facial signal that merely correlates with the nuisance there, so the default is one round.
The explain stage also reports the health direction with the nuisance span projected out (its share of
|d|^2 there, and where its edit changes the image) next to the plain one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stylesurv.core.aligned import mask_file, photo_file, read_landmarks, read_mask, read_photo
from stylesurv.core.console import track
from stylesurv.core.errors import InputError
from stylesurv.explain.direction import HealthDirection, health_direction
from stylesurv.explain.result import OrthogonalSummary

RIDGE_ALPHAS = np.logspace(-3, 4, 15)
NOSE_TIP = 30


def colour_features(pixels: np.ndarray) -> tuple[float, float, float]:
    """Brightness (mean of R, G, B) and two opponent colour axes (R - G, (R + G) / 2 - B) of [K, 3] in 0-1."""
    if len(pixels) == 0:
        return (np.nan, np.nan, np.nan)
    r, g, b = pixels.astype(np.float64).mean(axis=0)
    return (float((r + g + b) / 3), float(r - g), float((r + g) / 2 - b))


def head_pose(landmarks: np.ndarray) -> tuple[float, float]:
    """Roll in degrees (eye line vs horizontal, positive clockwise in image) and yaw as nose offset per eye
    distance (positive: nose toward the image's right), from 68 points [68, 2]."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(68, 2)
    eye_left, eye_right = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
    axis = eye_right - eye_left
    distance = float(np.hypot(*axis))
    if distance == 0.0:
        return (np.nan, np.nan)
    roll = float(np.degrees(np.arctan2(axis[1], axis[0])))
    offset = lm[NOSE_TIP] - 0.5 * (eye_left + eye_right)
    yaw = float(offset @ axis / distance**2)
    return roll, yaw


def measure_photo_nuisances(aligned_dir: str | Path, patient_ids: list[str]) -> pd.DataFrame:
    """Per patient: background and clothing brightness/colour from photo + mask, head roll and yaw from
    landmarks.csv.  Columns a patient lacks (no mask, no landmarks) are NaN."""
    aligned = Path(aligned_dir)
    rows: dict[str, dict[str, float]] = {pid: {} for pid in patient_ids}
    for pid in track(patient_ids, "measuring background, clothing and pose in the photos"):
        photo_path, mask_path = photo_file(aligned, pid), mask_file(aligned, pid)
        if photo_path is None or mask_path is None:
            continue
        photo = read_photo(photo_path).astype(np.float64) / 255.0
        mask = read_mask(mask_path, photo.shape[0])
        for region, label in (("background", 0), ("clothing", 2)):
            brightness, red_green, yellow_blue = colour_features(photo[mask == label])
            rows[pid].update(
                {
                    f"{region}_brightness": brightness,
                    f"{region}_red_green": red_green,
                    f"{region}_yellow_blue": yellow_blue,
                }
            )
    for pid, points in read_landmarks(aligned).items():
        if pid in rows:
            rows[pid]["head_roll_deg"], rows[pid]["head_yaw"] = head_pose(points)
    frame = pd.DataFrame.from_dict(rows, orient="index").reindex(list(rows))
    frame.index.name = "patient_id"
    return frame.reset_index()


@dataclass
class Probe:
    """A linear probe of one attribute in latent space."""

    name: str
    r2_cv: float  # 5-fold CV R^2 of the ridge probe
    cosine: float  # cosine between the probe direction and the health direction
    direction: np.ndarray  # unit weight vector in the flattened latent space
    n: int


def fit_probe(
    codes: np.ndarray, target: np.ndarray, folds: int = 5, seed: int = 0
) -> tuple[np.ndarray, float]:
    """Unit ridge weight vector and CV R^2 of predicting ``target`` [N] from flattened ``codes`` [N, D]."""
    weights, r2 = fit_probes(codes, np.asarray(target, dtype=np.float64)[:, None], folds, seed)
    return weights[0], float(r2[0])


def fit_probes(
    codes: np.ndarray, targets: np.ndarray, folds: int = 5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Unit ridge weight vectors [T, D] and CV R^2 [T] of each column of ``targets`` [N, T] (no NaN).

    One multi-target RidgeCV per fold (alpha chosen per target by its leave-one-out error, as a separate
    RidgeCV would), so the codes are decomposed once per fold rather than once per attribute and fold.
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold

    x = np.asarray(codes, dtype=np.float64).reshape(len(codes), -1)
    y = np.asarray(targets, dtype=np.float64)
    model = RidgeCV(alphas=RIDGE_ALPHAS, alpha_per_target=True)
    cv = KFold(n_splits=min(folds, len(y)), shuffle=True, random_state=seed)
    scores = [
        r2_score(y[test], model.fit(x[train], y[train]).predict(x[test]).reshape(len(test), -1),
                 multioutput="raw_values")
        for train, test in cv.split(x)
    ]  # fmt: skip
    weights = model.fit(x, y).coef_.reshape(y.shape[1], -1)
    norms = np.linalg.norm(weights, axis=1, keepdims=True)
    return np.divide(weights, norms, out=weights.copy(), where=norms > 0), np.mean(scores, axis=0)


def probe_table(
    codes: np.ndarray, table: pd.DataFrame, min_n: int = 10, seed: int = 0
) -> list[tuple[str, np.ndarray, float, int]]:
    """(name, unit direction, CV R^2, n) of a ridge probe for every numeric column of ``table`` (rows in the
    order of ``codes``) with at least ``min_n`` finite, non-constant values.  Columns observed on the same
    patients are fitted together."""
    flat = np.asarray(codes, dtype=np.float64).reshape(len(codes), -1)
    usable: dict[bytes, list[str]] = {}
    for name in table.columns:
        if name == "patient_id" or not pd.api.types.is_numeric_dtype(table[name]):
            continue
        values = table[name].to_numpy(dtype=np.float64)
        keep = np.isfinite(values)
        if keep.sum() >= min_n and np.std(values[keep]) > 0:
            usable.setdefault(np.packbits(keep).tobytes(), []).append(str(name))
    found: dict[str, tuple[np.ndarray, float, int]] = {}
    for names in track(
        list(usable.values()), f"probing {sum(map(len, usable.values()))} attributes in latent space"
    ):
        keep = np.isfinite(table[names[0]].to_numpy(dtype=np.float64))
        weights, r2 = fit_probes(flat[keep], table.loc[keep, names].to_numpy(dtype=np.float64), seed=seed)
        for i, name in enumerate(names):
            found[name] = (weights[i], float(r2[i]), int(keep.sum()))
    return [(name, *found[name]) for name in table.columns if name in found]


def probe_attributes(
    codes: np.ndarray,
    table: pd.DataFrame,
    patient_ids: list[str],
    health: np.ndarray,
    min_n: int = 10,
    seed: int = 0,
) -> list[Probe]:
    """A probe for every numeric column of ``table`` (rows matched on patient_id) with enough values."""
    aligned = table.set_index(table["patient_id"].astype(str)).reindex([str(p) for p in patient_ids])
    d = health.reshape(-1) / np.linalg.norm(health)
    return [
        Probe(name, r2, float(direction @ d), direction, n)
        for name, direction, r2, n in probe_table(codes, aligned.reset_index(drop=True), min_n, seed)
    ]


def orthonormal_basis(directions: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """An orthonormal basis [K, D] of the span of directions [M, D] (rank-revealing, via SVD)."""
    if len(directions) == 0:
        return np.zeros((0, directions.shape[1] if directions.ndim == 2 else 0))
    _, s, vt = np.linalg.svd(np.asarray(directions, dtype=np.float64), full_matrices=False)
    return vt[s > tol * max(s.max(), 1.0)]


def project_out(codes: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Codes with their components along the orthonormal ``basis`` [K, D] removed (same shape as codes)."""
    codes = np.asarray(codes, dtype=np.float64)
    flat = codes.reshape(len(codes), -1)
    return (flat - (flat @ basis.T) @ basis).reshape(codes.shape)


def nuisance_basis(
    codes: np.ndarray, targets: pd.DataFrame, rounds: int = 1, min_r2: float = 0.05, seed: int = 0
) -> np.ndarray:
    """Orthonormal basis of nuisance directions, found by up to ``rounds`` of probe-and-project on ``codes``.

    ``targets`` holds one numeric column per nuisance attribute, rows in the order of ``codes``.  A probe
    whose CV R^2 is below ``min_r2`` has nothing left to find, and its (noise) direction is not removed.
    """
    flat = np.asarray(codes, dtype=np.float64).reshape(len(codes), -1)
    basis = np.zeros((0, flat.shape[1]))
    for _ in range(rounds):
        projected = project_out(flat, basis)
        found = [
            direction for _, direction, r2, _ in probe_table(projected, targets, seed=seed) if r2 >= min_r2
        ]
        if not found:
            break
        basis = orthonormal_basis(np.concatenate([basis, np.array(found)]))
    return basis


@dataclass(frozen=True)
class OrthogonalDirection:
    """The health direction with the span of the nuisance probes' directions projected out."""

    direction: HealthDirection | None  # None when nothing of d is left outside the nuisance span
    n_directions: int  # rank of the nuisance span
    removed_share: float  # share of |d|^2 that lay in the nuisance span (0: d never reads them)
    min_r2: float = 0.05  # probes below this CV R^2 were not part of the span

    def summary(self) -> OrthogonalSummary:
        """What it removed and its cosine with d (summary.json; the caller adds where its edit acts)."""
        return OrthogonalSummary(
            definition=(
                "d with the span of the nuisance probes' directions (CV R^2 >= min_r2) projected out, "
                "renormalised and standardised over the cohort; edits along it change the model's risk "
                "without moving any linearly decodable nuisance"
            ),
            min_r2=self.min_r2,
            n_directions=self.n_directions,
            removed_share=self.removed_share,
            cosine_with_d=float(np.sqrt(max(0.0, 1.0 - self.removed_share))),
        )


def orthogonal_to_nuisance(
    direction: HealthDirection, probes: list[Probe], codes: np.ndarray, min_r2: float = 0.05
) -> OrthogonalDirection:
    """The part of the health direction orthogonal to every nuisance probe that decodes its attribute
    (CV R^2 >= ``min_r2``), as a unit direction standardised over ``codes``.

    It changes the model's risk only through code components that do not linearly encode the nuisances,
    so edits and attributions along it show what the model reads apart from them; it equals d when d is
    already orthogonal to them.
    """
    found = [p.direction for p in probes if np.isfinite(p.r2_cv) and p.r2_cv >= min_r2]
    d = direction.vector.reshape(1, -1)
    basis = orthonormal_basis(np.array(found)) if found else np.zeros((0, d.shape[1]))
    kept = project_out(d, basis)
    removed = float(1.0 - np.sum(kept**2) / np.sum(d**2))
    if np.linalg.norm(kept) < 1e-9:
        return OrthogonalDirection(None, int(len(basis)), removed, min_r2)
    oriented = health_direction(-kept.reshape(direction.shape), codes)  # a risk gradient: minus d
    return OrthogonalDirection(oriented, int(len(basis)), removed, min_r2)


# The synthetic world's truth.csv: which columns are the face's health and which are nuisance.
HEALTH_FACTORS = ("lp_face", "cachexia", "pallor", "periorbital", "age")
NUISANCE_FACTORS = (
    "background_value", "background_saturation", "clothing_value", "clothing_saturation",
    "light_angle", "light_strength", "yaw", "roll", "head_scale", "glasses", "jpeg_quality", "noise_sigma",
)  # fmt: skip
HUE_FACTORS = ("background_hue", "clothing_hue")  # circular in [0, 1): probed as cos and sin


def truth_factors(truth_csv: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The health factors and the nuisance factors of a synthetic world's truth.csv (patient_id first).

    Hues are circular, so each becomes two columns (``<name>_cos``, ``<name>_sin``) a linear probe can use.
    """
    path = Path(truth_csv)
    try:
        truth = pd.read_csv(path, dtype={"patient_id": str})
    except FileNotFoundError:
        raise InputError(f"{path}: truth table not found (written by `stylesurv synth`)") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"{path}: unreadable truth table ({exc})") from None
    if "patient_id" not in truth.columns:
        raise InputError(f"{path}: no patient_id column; is this a synthetic world's truth.csv?")
    health = truth[["patient_id", *[c for c in HEALTH_FACTORS if c in truth.columns]]]
    nuisance = truth[["patient_id", *[c for c in NUISANCE_FACTORS if c in truth.columns]]].copy()
    for name in HUE_FACTORS:
        if name in truth.columns:
            angle = 2 * np.pi * truth[name].to_numpy(dtype=np.float64)
            nuisance[f"{name}_cos"], nuisance[f"{name}_sin"] = np.cos(angle), np.sin(angle)
    return health, nuisance
