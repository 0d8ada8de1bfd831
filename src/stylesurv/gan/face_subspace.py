"""The face subspace: latent directions whose image change stays inside the face.

A survival model on latent codes may draw its signal from any part of the picture.  To ask how much of it
the face alone carries, we split the code space by where a move changes the image:

1. the top ``k`` principal directions of the cohort's codes span the variation the model can use;
2. for a sample of patients, the generator's Jacobian along each of them is taken by a finite difference
   (a half-SD step, constant noise), so that for any combination ``u`` of them the change energy inside
   the patient's face mask is ``u' F_i u`` and in the whole image ``u' T_i u``;
3. the generalised eigenvectors of ``F u = mu T u`` (F, T summed over the patients) order the directions by
   ``mu``, the pooled share of their change energy inside the face.  Any combination of eigenvectors with
   ``mu >= tau`` has a pooled face share of at least ``tau`` (a weighted mean of their ``mu``), so their span
   is the face subspace at threshold ``tau``.

Two uses.  The face-local health direction is the health direction projected onto the face subspace: an
edit along it changes the face and little else, and its cosine with d says how much of d that is.  And
:func:`stylesurv.studies.refit.face_subspace_evaluation` refits the model on codes restricted to the
face subspace and to its orthogonal complement: if the face subspace keeps the held-out C-index and the
complement loses it, the model's signal is in the face.  The masks are the patients' own (their unedited
photos), so a change of the face's outline falls partly outside; the subspace is the strict, conservative
reading.  Nothing here uses outcomes: the subspace depends only on codes, masks and the generator.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.linalg import eigh

from stylesurv.core.aligned import FACE_LABEL
from stylesurv.core.console import track
from stylesurv.core.errors import InputError
from stylesurv.gan.protocol import GeneratorLike
from stylesurv.gan.render import broadcast_ws, synthesize

DEFAULT_COMPONENTS = 256  # principal directions of the codes searched (96 % of the W+ code variance at 64 px)
DEFAULT_PATIENTS = 16  # patients whose Jacobians are summed
DEFAULT_THRESHOLD = 0.8  # pooled face share a direction needs to belong to the face subspace
# Thresholds at which the model is refitted inside the face subspace: the C-index a model keeps when its
# edits must stay ever more inside the face (studies.refit.face_subspace_evaluation).
CURVE_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
ANALYSIS_RESOLUTION = 128  # images and masks are compared at most at this size (block-averaged)


@dataclass(frozen=True, eq=False)
class FaceSubspace:
    """Principal directions of the codes re-ordered by how face-bound their image change is.

    :func:`save_face_subspace` / :func:`load_face_subspace` store it whole (NPZ) and read it back equal;
    :meth:`to_json` is a summary for reports, without the arrays, so there is no ``from_json``.
    """

    center: np.ndarray  # [D] mean code (flattened)
    basis: np.ndarray  # [m, D] orthonormal rows spanning the face subspace (m may be 0)
    shares: np.ndarray  # [k] pooled face share of each generalised eigenvector, descending
    vectors: np.ndarray  # [k, D] the generalised eigenvectors in code coordinates, in the order of shares
    threshold: float
    n_components: int
    n_patients: int
    variance_share: float  # share of the codes' variance in the k principal directions

    @property
    def dim(self) -> int:
        return int(len(self.basis))

    def at(self, threshold: float) -> FaceSubspace:
        """The same analysis cut at another face-share threshold (no new Jacobians)."""
        if not 0.0 < threshold < 1.0:
            raise InputError(f"the face-share threshold must lie between 0 and 1, got {threshold}")
        return dataclasses.replace(
            self, basis=span(self.vectors[self.shares >= threshold]), threshold=threshold
        )

    def restriction(self) -> CodeRestriction:
        """The codes kept to this subspace through the mean code (what a face-bound model is fitted on)."""
        return CodeRestriction(self.center, self.basis)

    def restrict(self, codes: np.ndarray) -> np.ndarray:
        """Codes [N, *shape] with only their face-subspace part left around the mean code."""
        return self.restriction().apply(codes)

    def remove(self, codes: np.ndarray) -> np.ndarray:
        """Codes [N, *shape] with their face-subspace part taken out (the orthogonal complement)."""
        codes = np.asarray(codes, dtype=np.float64)
        return codes - (self.restrict(codes) - self.center.reshape(codes.shape[1:]))

    def project(self, vector: np.ndarray) -> np.ndarray:
        """The part of a latent vector (a code's shape) that lies in the face subspace."""
        return self.restriction().project(vector)

    def __eq__(self, other: object) -> bool:
        """The same analysis: arrays of the same shape and values, and the same numbers."""
        if not isinstance(other, FaceSubspace):
            return NotImplemented

        def same(name: str) -> bool:
            a, b = np.asarray(getattr(self, name)), np.asarray(getattr(other, name))
            return a.shape == b.shape and bool(np.array_equal(a, b))

        numbers = ("threshold", "n_components", "n_patients", "variance_share")
        arrays_equal = all(same(n) for n in SUBSPACE_FIELDS)
        return arrays_equal and all(getattr(self, n) == getattr(other, n) for n in numbers)

    def to_json(self) -> dict[str, Any]:
        """A summary (the numbers and the shares; no arrays) for summary.json and the report."""
        return {
            "dim": self.dim,
            "threshold": self.threshold,
            "n_components": self.n_components,
            "n_patients": self.n_patients,
            "variance_share": self.variance_share,
            "shares": [float(s) for s in self.shares],
        }


def principal_directions(codes: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Mean [D], the top ``count`` principal directions [k, D], their SDs [k] and their variance share."""
    flat = np.asarray(codes, dtype=np.float64).reshape(len(codes), -1)
    center = flat.mean(axis=0)
    _, singular, vt = np.linalg.svd(flat - center, full_matrices=False)
    keep = int(min(count, int(np.sum(singular > singular[0] * 1e-9))))
    total = float(np.sum(singular**2))
    share = float(np.sum(singular[:keep] ** 2) / total) if total > 0 else 0.0
    return center, vt[:keep], singular[:keep] / np.sqrt(max(len(flat) - 1, 1)), share


def downsample(images: np.ndarray, size: int) -> np.ndarray:
    """Images [N, C, R, R] averaged over blocks to [N, C, size, size] (R a multiple of size)."""
    factor = images.shape[-1] // size
    if factor <= 1:
        return images
    n, c = images.shape[:2]
    return images.reshape(n, c, size, factor, size, factor).mean(axis=(3, 5))


def region_grams(
    generator: GeneratorLike,
    code: np.ndarray,
    directions: np.ndarray,
    steps: np.ndarray,
    face: np.ndarray,
    batch: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Face and whole-image Gram matrices [k, k] of the generator's finite-difference Jacobian at one code
    (shape [*shape]) along ``directions`` [k, D] with step lengths ``steps`` [k].

    ``face`` [r, r] (bool) may be coarser than the generator's images, which are then block-averaged to it, so
    that a 1024 px generator needs no more memory than a 128 px one.
    """
    shape, size = code.shape, face.shape[-1]

    def render(flat: np.ndarray) -> np.ndarray:
        ws = broadcast_ws(flat.reshape(-1, *shape), generator.num_ws)
        return downsample(synthesize(generator, ws, batch), size).astype(np.float64)

    base = render(code.reshape(1, -1))
    jac = np.concatenate(
        [
            (render(code.reshape(1, -1) + steps[i : i + batch, None] * directions[i : i + batch]) - base)
            / steps[i : i + batch, None, None, None]
            for i in range(0, len(directions), batch)
        ]
    )  # [k, 3, r, r]: image change per latent unit along each direction
    whole = jac.reshape(len(jac), -1)
    inside = jac[:, :, face].reshape(len(jac), -1)
    return inside @ inside.T, whole @ whole.T


def face_subspace(
    generator: GeneratorLike,
    codes: np.ndarray,
    masks: np.ndarray,
    rows: np.ndarray,
    n_components: int = DEFAULT_COMPONENTS,
    threshold: float = DEFAULT_THRESHOLD,
    batch: int = 16,
) -> FaceSubspace:
    """The face subspace of the cohort's codes [N, *shape], from the Jacobians at the codes of ``rows``
    whose masks [len(rows), R, R] are given (labels as in the aligned masks; 1 = face)."""
    codes = np.asarray(codes, dtype=np.float64)
    if not 0.0 < threshold < 1.0:
        raise InputError(f"the face-share threshold must lie between 0 and 1, got {threshold}")
    if len(rows) != len(masks) or len(rows) == 0:
        raise InputError("the face subspace needs one mask per sampled patient, and at least one patient")
    if len(codes) < 3:
        raise InputError("the face subspace needs the codes of at least three patients")
    center, directions, sds, variance_share = principal_directions(codes, n_components)
    steps = 0.5 * sds
    dim = len(directions)
    face_gram, total_gram = np.zeros((dim, dim)), np.zeros((dim, dim))
    for row, mask in track(list(zip(rows, masks, strict=True)), "face subspace (Jacobians)"):
        # A code's full shape is needed to synthesise it: W [w_dim] or W+ [num_ws, w_dim].
        f, t = region_grams(generator, codes[row], directions, steps, np.asarray(mask) == FACE_LABEL, batch)
        face_gram += f
        total_gram += t
    ridge = 1e-9 * max(float(np.trace(total_gram)) / dim, 1e-30)  # directions that change nothing
    shares, vectors = eigh(face_gram, total_gram + ridge * np.eye(dim))
    order = np.argsort(shares)[::-1]
    shares, vectors = np.clip(shares[order], 0.0, 1.0), vectors[:, order]
    in_codes = (directions.T @ vectors).T  # [k, D]
    basis = span(in_codes[shares >= threshold])
    return FaceSubspace(center, basis, shares, in_codes, threshold, dim, len(rows), variance_share)


def span(rows: np.ndarray) -> np.ndarray:
    """Orthonormal rows [m, D] spanning the given rows [m, D] (an empty [0, D] for none)."""
    if len(rows) == 0:
        return np.zeros((0, rows.shape[1]))
    q, _ = np.linalg.qr(rows.T)
    return q.T


SUBSPACE_FIELDS = ("center", "basis", "shares", "vectors")


def save_face_subspace(path: str | Path, subspace: FaceSubspace) -> None:
    """Write a face subspace as NPZ (arrays and a JSON header; nothing that unpickles), atomically."""
    import io
    import json

    from stylesurv.core.atomic import write_bytes_atomic

    header = {k: v for k, v in subspace.to_json().items() if k != "shares"}
    buffer = io.BytesIO()
    arrays = {name: np.asarray(getattr(subspace, name), dtype=np.float64) for name in SUBSPACE_FIELDS}
    np.savez(buffer, header=np.array(json.dumps(header)), **arrays)
    write_bytes_atomic(path, buffer.getvalue())


def load_face_subspace(path: str | Path, threshold: float | None = None) -> FaceSubspace:
    """Read a face subspace written by :func:`save_face_subspace`, cut at ``threshold`` when given."""
    import json

    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        header = json.loads(str(arrays["header"]))
        subspace = FaceSubspace(
            center=arrays["center"],
            basis=arrays["basis"].reshape(-1, arrays["center"].shape[0]),
            shares=arrays["shares"],
            vectors=arrays["vectors"].reshape(-1, arrays["center"].shape[0]),
            threshold=float(header["threshold"]),
            n_components=int(header["n_components"]),
            n_patients=int(header["n_patients"]),
            variance_share=float(header["variance_share"]),
        )
    except FileNotFoundError:
        raise InputError(f"{path}: face subspace file not found (written by `stylesurv explain`)") from None
    except (KeyError, ValueError, OSError) as exc:
        raise InputError(f"{path}: not a face subspace file ({exc})") from None
    if subspace.dim != int(header.get("dim", subspace.dim)) or len(subspace.shares) != len(subspace.vectors):
        raise InputError(f"{path}: not a face subspace file (its arrays do not agree with its header)")
    return subspace if threshold is None else subspace.at(threshold)


@dataclass(frozen=True)
class CodeRestriction:
    """Codes kept to an affine subspace: ``center`` plus their projection on the orthonormal ``basis`` rows.

    A model fitted on restricted codes can only use the variation inside the subspace (e.g. the face
    subspace of explain.localize), and its latent direction, projected on the subspace, moves codes only
    inside it.  The subspace must be found without outcomes (it is fixed across CV folds).
    """

    center: np.ndarray  # [D] a flattened code
    basis: np.ndarray  # [m, D] orthonormal rows

    def apply(self, codes: np.ndarray) -> np.ndarray:
        """Codes [N, *shape] moved onto the subspace through the center."""
        codes = np.asarray(codes, dtype=np.float64)
        flat = codes.reshape(len(codes), -1)
        if flat.shape[1] != self.center.shape[0]:
            raise InputError(
                f"codes of {flat.shape[1]} values per patient do not fit a subspace of {self.center.shape[0]}"
            )
        return (self.center + (flat - self.center) @ self.basis.T @ self.basis).reshape(codes.shape)

    def project(self, vector: np.ndarray) -> np.ndarray:
        """The part of a latent vector (a code's shape) that lies in the subspace."""
        flat = np.asarray(vector, dtype=np.float64).reshape(-1)
        return (self.basis.T @ (self.basis @ flat)).reshape(np.shape(vector))
