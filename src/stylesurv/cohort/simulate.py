"""Hidden factors and survival of the synthetic world: who the subjects are and when they die.

Every subject is one row of a factor table (one column per hidden factor).  `sample_factors` draws the
table for a `population` (healthier people, no outcomes) or a `cohort` (patients); `simulate_survival`
draws Weibull proportional-hazards times with random and administrative censoring from the true linear
predictor.  All draws come from one seeded generator, so a seed fixes the whole world.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

KINDS = ("population", "cohort")


@dataclass(frozen=True)
class SurvivalModel:
    """Weibull PH model: S(t | x) = exp(-(t / scale_days) ** shape * exp(lp)), lp from `linear_predictor`."""

    shape: float = 1.3  # Weibull shape k (> 1: hazard rises with time)
    scale_days: float = 700.0  # Weibull scale lambda for lp = 0
    beta_cachexia: float = 3.4  # per unit of cachexia (0..1)
    beta_pallor: float = 2.6  # per unit of pallor (0..1)
    beta_periorbital: float = 2.3  # per unit of periorbital darkness (0..1)
    beta_age: float = 0.52  # per 10 years above 65
    beta_stage: float = 0.86  # per stage step (stage 1..4, non-visible)
    dropout_mean_days: float = 4000.0  # exponential random censoring (loss to follow-up)
    followup_days: float = 1825.0  # administrative censoring: end of study after 5 years
    lp_offset: float = 3.5  # subtracted from the face part so lp ~ 0 for a typical patient

    def face_lp(self, factors: pd.DataFrame) -> np.ndarray:
        """Linear predictor of the visible facial health factors alone."""
        return (
            self.beta_cachexia * factors["cachexia"].to_numpy()
            + self.beta_pallor * factors["pallor"].to_numpy()
            + self.beta_periorbital * factors["periorbital"].to_numpy()
        )

    def clinical_lp(self, factors: pd.DataFrame) -> np.ndarray:
        """Linear predictor of the clinical covariates (age and the non-visible stage)."""
        return self.beta_age * (factors["age"].to_numpy() - 65.0) / 10.0 + self.beta_stage * (
            factors["stage"].to_numpy() - 2.5
        )

    def linear_predictor(self, factors: pd.DataFrame) -> np.ndarray:
        """The true linear predictor of the hazard: face part + clinical part - offset."""
        return self.face_lp(factors) + self.clinical_lp(factors) - self.lp_offset

    def survival_function(self, t: np.ndarray, lp: float) -> np.ndarray:
        """True S(t | lp) of the Weibull PH model (lp as returned by `linear_predictor`)."""
        t = np.asarray(t, dtype=np.float64)
        return np.exp(-((t / self.scale_days) ** self.shape) * np.exp(lp))


def _beta(rng: np.random.Generator, a: float, b: float, n: int) -> np.ndarray:
    return rng.beta(a, b, size=n)


def sample_factors(kind: str, n: int, seed: int) -> pd.DataFrame:
    """Draw the hidden factors of `n` subjects of `kind` ('population' or 'cohort') from `seed`.

    Facial health factors (cachexia, pallor, periorbital) are in 0..1; the population is mostly healthy
    with a thin tail, the cohort is spread over the whole range.  Every nuisance factor a portrait shows is
    a column too, so rendering needs nothing but the row.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, KINDS.index(kind)]))
    cohort = kind == "cohort"
    f: dict[str, np.ndarray] = {}
    f["cachexia"] = _beta(rng, 1.6, 2.2, n) if cohort else _beta(rng, 1.0, 4.0, n)
    f["pallor"] = _beta(rng, 1.6, 2.2, n) if cohort else _beta(rng, 1.0, 4.0, n)
    f["periorbital"] = _beta(rng, 1.6, 2.2, n) if cohort else _beta(rng, 1.0, 4.0, n)
    f["age"] = np.clip(rng.normal(64.0, 11.0, n), 25.0, 92.0) if cohort else rng.uniform(20.0, 85.0, n)
    f["sex"] = rng.integers(0, 2, n)  # 0 female, 1 male
    f["stage"] = rng.choice([1, 2, 3, 4], size=n, p=[0.2, 0.3, 0.3, 0.2]) if cohort else np.zeros(n, int)
    # Identity (non-prognostic) face shape and colouring.
    f["skin_tone"] = rng.beta(1.6, 1.6, n)  # 0 light .. 1 dark
    f["skin_warmth"] = rng.uniform(-1.0, 1.0, n)
    f["face_width"] = rng.normal(1.0, 0.04, n) - 0.04 * (1 - f["sex"])
    f["face_length"] = rng.normal(1.0, 0.035, n)
    f["jaw_square"] = np.clip(rng.normal(0.35, 0.2, n) + 0.25 * f["sex"], 0.0, 1.0)
    f["nose_width"] = rng.normal(1.0, 0.08, n)
    f["mouth_width"] = rng.normal(1.0, 0.07, n)
    f["lip_fullness"] = rng.normal(1.0, 0.15, n) + 0.15 * (1 - f["sex"])
    f["brow_thickness"] = rng.normal(1.0, 0.15, n) + 0.25 * f["sex"]
    f["eye_colour"] = rng.integers(0, 4, n)
    f["hair_colour"] = rng.integers(0, 5, n)
    long_hair_p = np.where(f["sex"] == 1, 0.08, 0.75)
    f["hair_style"] = np.where(rng.uniform(size=n) < long_hair_p, 1, 0)  # 0 short, 1 long
    bald_p = np.where(f["sex"] == 1, np.clip((f["age"] - 35.0) / 60.0, 0.0, 0.6), 0.0)
    f["hair_style"] = np.where(rng.uniform(size=n) < bald_p, 2, f["hair_style"])  # 2 receding
    f["hair_volume"] = rng.uniform(0.06, 0.22, n)
    f["hair_part"] = rng.uniform(-0.4, 0.4, n)
    f["greying_rate"] = rng.uniform(0.7, 1.3, n)
    # Nuisance: background, clothing, light, pose, glasses, camera.
    f["background_hue"] = rng.uniform(0.0, 1.0, n)
    f["background_value"] = rng.uniform(0.35, 0.9, n)
    f["background_saturation"] = rng.uniform(0.05, 0.45, n)
    f["background_texture"] = rng.integers(0, 3, n)  # 0 smooth gradient, 1 soft stripes, 2 blotches
    f["background_phase"] = rng.uniform(0.0, 2 * np.pi, n)
    f["clothing_hue"] = rng.uniform(0.0, 1.0, n)
    f["clothing_value"] = rng.uniform(0.15, 0.85, n)
    f["clothing_saturation"] = rng.uniform(0.0, 0.7, n)
    f["clothing_pattern"] = rng.integers(0, 4, n)  # 0 plain, 1 stripes, 2 checks, 3 dots
    f["clothing_pattern_angle"] = rng.uniform(-0.6, 0.6, n)
    f["neckline"] = rng.integers(0, 2, n)  # 0 crew, 1 v-neck
    f["light_angle"] = rng.uniform(-np.pi, 0.0, n)  # direction the light comes from (upper half)
    f["light_strength"] = rng.uniform(0.1, 0.45, n)
    f["yaw"] = rng.uniform(-0.1, 0.1, n)
    f["roll"] = rng.uniform(-0.12, 0.12, n)  # radians
    f["head_scale"] = rng.uniform(0.92, 1.08, n)  # head size relative to the body
    f["glasses"] = (rng.uniform(size=n) < (0.2 + 0.3 * (f["age"] > 55))).astype(int)
    f["glasses_dark"] = rng.integers(0, 2, n)
    f["jpeg_quality"] = rng.integers(70, 96, n)
    f["noise_sigma"] = rng.uniform(0.0, 0.02, n)
    # Where the unaligned photo puts the face: crop-square side as a fraction of the canvas, rotation,
    # and the crop-square centre in canvas fractions.
    f["photo_scale"] = rng.uniform(0.45, 0.62, n)
    f["photo_angle"] = rng.uniform(-0.35, 0.35, n)
    f["photo_cx"] = rng.uniform(0.4, 0.6, n)
    f["photo_cy"] = rng.uniform(0.4, 0.6, n)
    width = len(str(max(n - 1, 0)))
    prefix = "S" if cohort else "P"
    ids = [f"{prefix}{i:0{width}d}" for i in range(n)]
    table = pd.DataFrame({"patient_id": ids, **f})
    return table


@dataclass(frozen=True)
class SurvivalDraw:
    """Simulated outcomes: observed time (days), event indicator, and the uncensored event time."""

    time: np.ndarray
    event: np.ndarray
    event_time: np.ndarray


def draw_weibull_times(lp: np.ndarray, model: SurvivalModel, rng: np.random.Generator) -> np.ndarray:
    """Event times of Weibull PH by inversion: T = scale * (-log U / exp(lp)) ** (1 / shape)."""
    u = rng.uniform(size=len(lp))
    return model.scale_days * (-np.log1p(-u) / np.exp(lp)) ** (1.0 / model.shape)


def simulate_survival(lp: np.ndarray, model: SurvivalModel, seed: int) -> SurvivalDraw:
    """Draw event times for the linear predictors `lp`, then apply random and administrative censoring."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    event_time = draw_weibull_times(lp, model, rng)
    dropout = rng.exponential(model.dropout_mean_days, size=len(lp))
    censor = np.minimum(dropout, model.followup_days)
    time = np.minimum(event_time, censor)
    event = (event_time <= censor).astype(int)
    time = np.maximum(np.round(time, 1), 0.1)  # days with one decimal, always > 0
    return SurvivalDraw(time=time, event=event, event_time=event_time)


def oracle_cindex(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's C of a risk score, from scikit-survival's concordance_index_censored."""
    from sksurv.metrics import concordance_index_censored

    return float(concordance_index_censored(event.astype(bool), time, risk)[0])
