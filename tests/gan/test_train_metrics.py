"""FID and KID math against closed forms and a direct implementation; the TorchScript feature network."""

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from stylesurv.core.errors import InputError
from stylesurv.gan.fid import FeatureNetwork, fid_from_features, frechet_distance, kernel_inception_distance


def test_frechet_distance_of_diagonal_gaussians() -> None:
    # |mu1 - mu2|^2 + sum_i (s1 + s2 - 2 sqrt(s1 s2)) = 5 + (1 + 4 - 4) + (4 + 1 - 4) = 7
    fd = frechet_distance(np.zeros(2), np.diag([1.0, 4.0]), np.array([1.0, 2.0]), np.diag([4.0, 1.0]))
    assert fd == pytest.approx(7.0)


def test_frechet_distance_of_general_gaussians_matches_symmetric_form() -> None:
    rng = np.random.RandomState(0)
    a, b = rng.randn(4, 4), rng.randn(4, 4)
    s1, s2 = a @ a.T + np.eye(4), b @ b.T + np.eye(4)
    mu1, mu2 = rng.randn(4), rng.randn(4)
    root1 = scipy.linalg.sqrtm(s1).real
    # tr((S1 S2)^1/2) = tr((S1^1/2 S2 S1^1/2)^1/2), and the latter is symmetric positive definite
    eig = np.linalg.eigvalsh(root1 @ s2 @ root1)
    expected = np.square(mu1 - mu2).sum() + np.trace(s1 + s2) - 2 * np.sqrt(eig).sum()
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-6)


def _mmd2_direct(x: np.ndarray, y: np.ndarray) -> float:
    d, m = x.shape[1], len(x)

    def k(u: np.ndarray, v: np.ndarray) -> float:
        return (u @ v / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_is_the_unbiased_polynomial_mmd() -> None:
    rng = np.random.RandomState(1)
    x, y = rng.randn(7, 3), rng.randn(7, 3) + 0.5
    # one subset of the whole set is a permutation of it, and the MMD does not depend on the order
    assert kernel_inception_distance(x, y, num_subsets=1, max_subset_size=7) == pytest.approx(
        _mmd2_direct(x, y)
    )


def test_same_distribution_scores_near_zero() -> None:
    rng = np.random.RandomState(2)
    x, y = rng.randn(2000, 4), rng.randn(2000, 4)
    same = kernel_inception_distance(x, y, num_subsets=10, max_subset_size=500)
    shifted = kernel_inception_distance(x, y + 1, num_subsets=10, max_subset_size=500)
    assert abs(same) < 0.05 * shifted
    assert fid_from_features(x, y) < 0.06  # finite-sample bias only
    # a shift moves only the mean term: FID(x, y + 1) - FID(x, y) = |dm - 1|^2 - |dm|^2, dm = mean x - mean y
    dm = x.mean(0) - y.mean(0)
    change = np.square(dm - 1).sum() - np.square(dm).sum()
    assert fid_from_features(x, y + 1) - fid_from_features(x, y) == pytest.approx(change, rel=1e-6)


class _MeanColour(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def test_feature_network_from_torchscript(tmp_path: Path) -> None:
    path = tmp_path / "features.pt"
    torch.jit.save(torch.jit.script(_MeanColour()), str(path))
    net = FeatureNetwork(path, input_size=8)
    images = torch.zeros(3, 3, 16, 16)
    assert np.allclose(net(images), 127.5)  # [-1, 1] is mapped to 0..255 before the network
    with pytest.raises(InputError, match="does not exist"):
        FeatureNetwork(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(InputError, match="TorchScript"):
        FeatureNetwork(tmp_path / "bad.pt")


def test_training_writes_fid_and_kid_at_snapshots(tmp_path: Path) -> None:
    from stylesurv.gan.train import train
    from tests.gan.test_train import options, tiny_factory, write_images

    net = tmp_path / "features.pt"
    torch.jit.save(torch.jit.script(_MeanColour()), str(net))
    data = write_images(tmp_path / "data")
    train(options(data, tmp_path / "run", kimg=0.008, metrics_net=str(net), metrics_n=8), tiny_factory)
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line["nimg"] for line in lines] == [8]  # one line per snapshot: here only the final one
    assert lines[0]["n_real"] == lines[0]["n_fake"] == 8
    assert np.isfinite(lines[0]["fid"]) and lines[0]["fid"] > 0 and np.isfinite(lines[0]["kid"])
