"""Shared photos for the face tests: scikit-image's astronaut (Eileen Collins, NASA, public domain)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """The 512 x 512 RGB astronaut portrait; at dlib upsample 1 it also yields a false second face."""
    return data.astronaut()
