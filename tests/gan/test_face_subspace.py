"""The face subspace file: save and load give back the same analysis, to the last bit."""

import io
import json

import numpy as np
import pytest

from stylesurv.core.errors import InputError
from stylesurv.gan.face_subspace import FaceSubspace, load_face_subspace, save_face_subspace, span


def _subspace(threshold: float = 0.8, d: int = 12, k: int = 5) -> FaceSubspace:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((k, d)) / 3.0  # not unit length: generalised eigenvectors need not be
    shares = np.sort(rng.uniform(size=k))[::-1]
    return FaceSubspace(
        center=rng.standard_normal(d),
        basis=span(vectors[shares >= threshold]),
        shares=shares,
        vectors=vectors,
        threshold=threshold,
        n_components=k,
        n_patients=7,
        variance_share=float(rng.uniform()),  # a float that JSON must keep exactly
    )


@pytest.mark.parametrize("threshold", [0.3, 0.99999])  # some directions, and none (dim 0)
def test_save_and_load_round_trip_exactly(tmp_path, threshold: float) -> None:
    subspace = _subspace(threshold)
    save_face_subspace(tmp_path / "s.npz", subspace)
    loaded = load_face_subspace(tmp_path / "s.npz")
    assert loaded == subspace and loaded.dim == subspace.dim
    for name in ("center", "basis", "shares", "vectors"):
        got, want = getattr(loaded, name), getattr(subspace, name)
        assert got.shape == want.shape and got.dtype == np.float64
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert loaded.to_json() == subspace.to_json()
    # saving what was loaded writes the same file
    save_face_subspace(tmp_path / "again.npz", loaded)
    assert load_face_subspace(tmp_path / "again.npz") == subspace


def test_a_cut_at_another_threshold_is_the_cut_of_the_original(tmp_path) -> None:
    subspace = _subspace(0.8)
    save_face_subspace(tmp_path / "s.npz", subspace)
    assert load_face_subspace(tmp_path / "s.npz", 0.3) == subspace.at(0.3)
    assert subspace.at(0.3) != subspace and subspace != "a face subspace"


def test_a_file_whose_arrays_disagree_with_its_header_is_refused(tmp_path) -> None:
    subspace = _subspace(0.3)
    header = {k: v for k, v in subspace.to_json().items() if k != "shares"} | {"dim": subspace.dim + 1}
    buffer = io.BytesIO()
    np.savez(buffer, header=np.array(json.dumps(header)), center=subspace.center, basis=subspace.basis,
             shares=subspace.shares, vectors=subspace.vectors)  # fmt: skip
    (tmp_path / "bad.npz").write_bytes(buffer.getvalue())
    with pytest.raises(InputError, match="do not agree with its header"):
        load_face_subspace(tmp_path / "bad.npz")


def test_a_missing_or_foreign_file_is_refused_by_name(tmp_path) -> None:
    with pytest.raises(InputError, match="face subspace file not found"):
        load_face_subspace(tmp_path / "nowhere.npz")
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(InputError, match="text.npz: not a face subspace file"):
        load_face_subspace(tmp_path / "text.npz")
    np.savez(tmp_path / "other.npz", center=np.zeros(3))  # an NPZ without the header and the arrays
    with pytest.raises(InputError, match="other.npz: not a face subspace file"):
        load_face_subspace(tmp_path / "other.npz")
