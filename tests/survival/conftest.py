"""Small survival data sets the survival tests share."""

import numpy as np
import pytest

from stylesurv.survival.data import make_y


def weibull_ph(n: int, lp: np.ndarray, seed: int, censor_scale: float = 3.0) -> np.ndarray:
    """Outcomes from Weibull PH (shape 1.5) with linear predictor ``lp`` and exponential censoring."""
    rng = np.random.default_rng(seed)
    event_time = (-np.log(rng.uniform(size=n)) / np.exp(lp)) ** (1 / 1.5)
    censor = rng.exponential(censor_scale, size=n)
    return make_y(np.round(np.minimum(event_time, censor), 3) + 1e-3, event_time <= censor)


@pytest.fixture
def linear_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """200 patients, 6 features of which the first two drive the hazard: (X, y, true lp)."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 6))
    lp = 1.0 * X[:, 0] - 0.7 * X[:, 1]
    return X, weibull_ph(200, lp, seed=2), lp
