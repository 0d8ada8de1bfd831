"""The paper's end-to-end baseline: a small ResNet on aligned photos, trained on the Cox partial likelihood.

It plugs into the same nested CV as the latent models (features = normalised images [N, 3, R, R]), so the
comparison "latent code vs. raw pixels" uses identical splits and metrics.  Training is mini-batch Adam with
random horizontal flips; the epoch count is chosen by early stopping on a held-out part of each training set.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from stylesurv.core.aligned import QC_FILE, check_folder, photo_file, read_photo, usable_patients
from stylesurv.core.console import warn
from stylesurv.core.errors import InputError
from stylesurv.core.ids import patient_id_problem
from stylesurv.survival.data import SurvivalData, check_outcomes
from stylesurv.survival.models import Arrays, SurvivalModel


def load_aligned_images(data: SurvivalData, aligned_dir: str | Path) -> SurvivalData:
    """``data`` restricted to patients with an aligned photo that passed QC, with ``images`` [N, 3, R, R].

    Patient ids are checked before they name a file (`stylesurv.core.ids.patient_id_problem`); patients that
    qc.csv does not mark usable (`stylesurv.core.aligned.usable_patients`) or whose photo is missing are left
    out with a warning.  A folder without qc.csv is a plain folder of aligned photos: every photo counts.
    """
    aligned_dir = check_folder(aligned_dir)
    for pid in data.patient_id:
        problem = patient_id_problem(pid)
        if problem is not None:
            raise InputError(problem)
    usable = set(usable_patients(aligned_dir)) if (aligned_dir / QC_FILE).is_file() else None
    keep, images = [], []
    for row, pid in enumerate(data.patient_id):
        path = photo_file(aligned_dir, pid)
        if (usable is not None and pid not in usable) or path is None:
            continue
        images.append(read_photo(path).astype(np.float32).transpose(2, 0, 1) / 127.5 - 1.0)
        keep.append(row)
    if len(keep) < len(data):
        warn(f"{len(data) - len(keep)} patient(s) have no QC-passed aligned photo and are left out")
    if not keep:
        raise InputError(f"{aligned_dir}: no aligned photo of any cohort patient")
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise InputError(f"{aligned_dir}: aligned photos differ in size ({sorted(shapes)[:2]}); re-run align")
    subset = data.subset(np.array(keep))
    subset.images = np.stack(images)
    check_outcomes(subset)
    return subset


def _resnet(width: int, blocks: tuple[int, ...]) -> Any:
    """Small ResNet: 3x3 stem, stages of basic blocks (each after the first halves the size), GAP, linear."""
    from torch import nn

    class BasicBlock(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.skip = (
                nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                if stride != 1 or cin != cout
                else nn.Identity()
            )

        def forward(self, x: Any) -> Any:
            h = self.bn1(self.conv1(x)).relu()
            return (self.bn2(self.conv2(h)) + self.skip(x)).relu()

    layers: list[Any] = [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    cin = width
    for stage, n_blocks in enumerate(blocks):
        cout = width * 2**stage
        for b in range(n_blocks):
            layers.append(BasicBlock(cin, cout, 2 if (b == 0 and stage > 0) else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1, bias=False)]
    return nn.Sequential(*layers)


class CoxCNN(SurvivalModel):
    """Small ResNet log-risk on normalised images [N, 3, R, R]; survival from a Breslow baseline."""

    kind = "cnn"

    def __init__(
        self,
        width: int = 16,  # channels of the first stage (doubling per stage)
        blocks: tuple[int, ...] = (1, 1, 1),  # basic blocks per stage
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        max_epochs: int = 30,
        patience: int = 5,  # epochs without held-out improvement before stopping
        batch: int = 64,  # mini-batch; the Cox loss uses the risk set within the batch
        val_fraction: float = 0.2,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.width, self.blocks, self.lr, self.weight_decay = width, tuple(blocks), lr, weight_decay
        self.max_epochs, self.patience, self.batch, self.val_fraction, self.seed = (
            max_epochs,
            patience,
            batch,
            val_fraction,
            seed,
        )
        self.net_: Any = None

    def _scores(self, X: np.ndarray) -> Any:
        import torch

        self.net_.eval()
        with torch.no_grad():
            parts = [self.net_(torch.as_tensor(X[i : i + 256])).squeeze(1) for i in range(0, len(X), 256)]
        return torch.cat(parts)

    def fit(self, X: np.ndarray, y: np.ndarray) -> CoxCNN:
        import torch
        from torchsurv.loss.cox import neg_partial_log_likelihood

        X = np.asarray(X, dtype=np.float32)
        rng = np.random.default_rng(self.seed)
        event = np.ascontiguousarray(y["event"])
        time = torch.as_tensor(np.ascontiguousarray(y["time"]))
        val = np.zeros(len(X), dtype=bool)
        for cls in (True, False):
            idx = np.flatnonzero(event == cls)
            val[rng.permutation(idx)[: int(round(self.val_fraction * len(idx)))]] = True
        if not event[val].any() or not event[~val].any():
            val[:] = False
        train_idx = np.flatnonzero(~val)
        ev = torch.as_tensor(event)
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Ties in `time` detected")  # torchsurv notes each call
            torch.manual_seed(self.seed)
            self.net_ = _resnet(self.width, self.blocks)
            opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            best, best_epoch, best_state = np.inf, self.max_epochs, None
            for epoch in range(self.max_epochs):
                self.net_.train()
                order = rng.permutation(train_idx)
                for start in range(0, len(order), self.batch):
                    rows = order[start : start + self.batch]
                    if not event[rows].any():
                        continue  # a batch without deaths has no partial likelihood
                    xb = torch.as_tensor(X[rows])
                    flip = torch.as_tensor(rng.uniform(size=len(rows)) < 0.5)
                    xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
                    opt.zero_grad()
                    loss = neg_partial_log_likelihood(
                        self.net_(xb).squeeze(1), ev[rows], time[rows], ties_method="breslow"
                    )
                    loss.backward()
                    opt.step()
                if not val.any():
                    continue
                val_loss = float(
                    neg_partial_log_likelihood(
                        self._scores(X[val]), ev[val], time[val], ties_method="breslow"
                    )
                )
                if val_loss < best - 1e-6:
                    best, best_epoch = val_loss, epoch + 1
                    best_state = {k: v.clone() for k, v in self.net_.state_dict().items()}
                elif epoch + 1 - best_epoch >= self.patience:
                    break
            if best_state is not None:
                self.net_.load_state_dict(best_state)
        self.net_.eval()
        self.params_ = {"epochs": best_epoch}
        self._fit_baseline(X, y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._scores(np.asarray(X, dtype=np.float32)).double().numpy()

    def export(self) -> tuple[dict[str, Any], Arrays]:
        config = {
            "kind": self.kind,
            "params": self.params_,
            "architecture": {"width": self.width, "blocks": list(self.blocks)},
        }
        weights = {f"net.{k}": v.numpy() for k, v in self.net_.state_dict().items()}
        return config, {**weights, **self._baseline_arrays()}

    @classmethod
    def restore(cls, config: dict[str, Any], arrays: Arrays) -> CoxCNN:
        import torch

        arch = config["architecture"]
        model = cls(width=int(arch["width"]), blocks=tuple(arch["blocks"]))
        model.params_ = dict(config.get("params", {}))
        model.net_ = _resnet(model.width, model.blocks)
        model.net_.load_state_dict(
            {k[4:]: torch.as_tensor(v) for k, v in arrays.items() if k.startswith("net.")}
        )
        model.net_.eval()
        model._restore_baseline(arrays)
        return model
