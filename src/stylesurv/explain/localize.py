"""The face-local health direction: the health direction projected onto the face subspace.

An edit along it changes the face and little else (`stylesurv.gan.face_subspace` finds the subspace from
the generator alone); its cosine with d says how much of d that is.
"""

from __future__ import annotations

import numpy as np

from stylesurv.explain.direction import HealthDirection, health_direction
from stylesurv.gan.face_subspace import FaceSubspace

FACE_LOCAL_DEFINITION = (
    "the health direction projected onto the face subspace: the span of the codes' principal directions "
    "whose pooled image-change energy lies at least the threshold share inside the patients' face masks"
)


def localize(
    subspace: FaceSubspace, direction: HealthDirection, codes: np.ndarray
) -> tuple[HealthDirection | None, float]:
    """The direction projected onto ``subspace`` (standardised over ``codes``) and the cosine between the
    two; (None, 0) when the subspace is empty or (numerically) orthogonal to it."""
    inside = subspace.project(direction.vector).reshape(-1)
    norm = float(np.linalg.norm(inside))
    if norm < 1e-6:  # d is a unit vector: a smaller part is rounding noise of the basis
        return None, 0.0
    # health_direction negates a risk gradient; pass minus the projection so the sign is kept.
    local = health_direction(-inside.reshape(direction.shape), codes)
    return local, norm
