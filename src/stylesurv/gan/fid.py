"""FID and KID on features of a network the user supplies (nothing is downloaded).

Accepted feature network: a TorchScript file (``torch.jit.save``) whose ``forward`` maps float32 images
[N, 3, S, S] with values in 0..255 to features [N, D].  Images are resized (bilinear) to S = ``input_size``
(299 for Inception-v3).  To reproduce published FIDs, script an Inception-v3 pool3 feature extractor, e.g.
``torch.jit.script(torchvision.models.inception_v3(weights="IMAGENET1K_V1", aux_logits=True,
transform_input=False).eval())`` with ``fc`` replaced by ``torch.nn.Identity()``; note that NVIDIA's
``inception-2015-12-05`` network gives slightly different numbers and ships as a pickle, which stylesurv
never loads.

- FID (Heusel et al. 2017): |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)).
- KID (Binkowski et al. 2018): unbiased MMD^2 with the kernel k(x, y) = (x.y / D + 1)^3, averaged over
  random subsets (100 subsets of up to 1000 samples, as in StyleGAN2-ADA's metrics).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F

from stylesurv.core.console import warn
from stylesurv.core.errors import InputError
from stylesurv.gan.dataset import ImageDataset


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    diff = np.square(mu1 - mu2).sum()
    root, _ = scipy.linalg.sqrtm(sigma1 @ sigma2, disp=False)
    return float(diff + np.trace(sigma1 + sigma2 - 2 * np.real(root)))


def fid_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """FID between two feature sets [N, D] (means and unbiased covariances)."""
    return frechet_distance(
        features1.mean(0), np.cov(features1, rowvar=False), features2.mean(0), np.cov(features2, rowvar=False)
    )


def kernel_inception_distance(
    features1: np.ndarray,
    features2: np.ndarray,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    seed: int = 0,
) -> float:
    """KID: mean over random subsets of the unbiased MMD^2 with the cubic polynomial kernel."""
    dim = features1.shape[1]
    m = min(len(features1), len(features2), max_subset_size)
    if m < 2:
        raise InputError("KID needs at least 2 samples per side")
    rng = np.random.RandomState(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = features1[rng.choice(len(features1), m, replace=False)]
        y = features2[rng.choice(len(features2), m, replace=False)]
        kxx = (x @ x.T / dim + 1) ** 3
        kyy = (y @ y.T / dim + 1) ** 3
        kxy = (x @ y.T / dim + 1) ** 3
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        total += within - 2 * kxy.mean()
    return float(total / num_subsets)


class FeatureNetwork:
    """A user-supplied TorchScript feature extractor (see the module docstring for what is accepted)."""

    def __init__(self, path: str | Path, input_size: int = 299, batch: int = 64) -> None:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"feature network {path} does not exist")
        warn(
            f"{path}: a TorchScript network is a program as well as weights; loading it runs its code. "
            "Use only one you made or trust (e.g. NVIDIA's inception-2015-12-05.pt)"
        )
        try:
            self.module = torch.jit.load(str(path), map_location="cpu").eval()
        except RuntimeError as exc:
            raise InputError(f"{path} is not a TorchScript file (torch.jit.save): {exc}") from exc
        self.input_size = input_size
        self.batch = batch

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        """Features [N, D] of float images [N, 3, R, R] in [-1, 1]."""
        out = []
        with torch.no_grad():
            for chunk in images.split(self.batch):
                x = (chunk.float().cpu() + 1) * 127.5
                if x.shape[-1] != self.input_size:
                    x = F.interpolate(
                        x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
                    )
                feats = self.module(x)
                if feats.ndim != 2:
                    raise InputError(
                        f"the feature network returned shape {tuple(feats.shape)}; expected [N, D]"
                    )
                out.append(feats.double().numpy())
        return np.concatenate(out)


def dataset_features(net: FeatureNetwork, dataset: ImageDataset, n: int, seed: int = 0) -> np.ndarray:
    """Features of ``n`` images of the dataset drawn without replacement (all of them if fewer)."""
    rng = np.random.RandomState(seed)
    indices = rng.choice(len(dataset), min(n, len(dataset)), replace=False)
    feats = [
        net(dataset.images(chunk).float() / 127.5 - 1)
        for chunk in np.array_split(indices, -(-len(indices) // 256))
    ]
    return np.concatenate(feats)


def fid_kid_of_generator(
    net: FeatureNetwork, G: torch.nn.Module, real_features: np.ndarray, n: int, seed: int = 0
) -> dict[str, Any]:
    """FID and KID of ``n`` samples of G (z from RandomState(seed), noise const) against real features."""
    device = next(G.parameters()).device
    z_all = torch.from_numpy(np.random.RandomState(seed).randn(n, G.z_dim)).float()
    feats = []
    with torch.no_grad():
        for z in z_all.split(64):
            z = z.to(device)
            feats.append(net(G(z, torch.zeros(len(z), G.c_dim, device=device), noise_mode="const")))
    fake = np.concatenate(feats)
    return {
        "fid": fid_from_features(real_features, fake),
        "kid": kernel_inception_distance(real_features, fake, seed=seed),
        "n_real": len(real_features),
        "n_fake": n,
    }
