"""Survival models with one scikit-learn-style interface, each tuning its own hyperparameters by inner CV.

Every model has ``fit(X, y) -> self`` (``y``: scikit-survival structured array), ``predict(X)`` -> risk
(higher = earlier death), ``predict_survival_function(X, times)`` -> S(t | x) [N, len(times)], ``params_``
(the hyperparameters it chose) and ``export()`` -> (JSON-able config, named float arrays), the inverse of
:func:`restore_model`.  Nothing is pickled.

- ``coxnet``   elastic-net Cox (scikit-survival's CoxnetSurvivalAnalysis), penalty picked on its path by
               inner CV;
- ``coxph``    ridge Cox PH (lifelines' objective, own Newton solver) with hazard ratios and 95 % CIs,
               ridge by inner CV;
- ``deepsurv`` MLP trained on the Cox partial likelihood (torchsurv), early stopping on an inner split,
               weight decay by inner CV;
- ``rsf``, ``gbsa`` random survival forest and gradient-boosted Cox trees (scikit-survival), exported as
               plain tree arrays;
- ``fusion``   late fusion: an image model's out-of-fold score plus clinical covariates in a Cox model;
- joint        ``coxnet`` or ``coxph`` on image features and clinical covariates together, the covariates
               unpenalised (``unpenalized``), so the latent coefficients are adjusted for them.

The kinds, what each can do, :class:`~stylesurv.survival.registry.ModelFactory` and
:func:`~stylesurv.survival.registry.restore_model` are in :mod:`stylesurv.survival.registry`.
"""

from __future__ import annotations

import contextlib
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stylesurv.core.errors import InputError
from stylesurv.survival.data import stratified_splits
from stylesurv.survival.metrics import harrell_c

Arrays = dict[str, np.ndarray]


# ------------------------------------------------------------------------------------- Breslow baseline
def breslow_baseline(risk: np.ndarray, time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Breslow's cumulative baseline hazard H0 at each distinct event time, for log-risk ``risk``.

    H0(t) = sum over event times s <= t of d(s) / sum_{j: T_j >= s} exp(risk_j).
    """
    risk = np.asarray(risk, dtype=np.float64)
    time = np.asarray(time, dtype=np.float64)
    event = np.asarray(event, dtype=bool)
    hazard = np.exp(risk - risk.max())  # shifted for stability; shift undone below
    order = np.argsort(time)
    t_sorted, h_sorted, e_sorted = time[order], hazard[order], event[order]
    at_risk = np.cumsum(h_sorted[::-1])[::-1]  # sum of hazards of patients with T >= t_sorted[i]
    uniq, first = np.unique(t_sorted, return_index=True)
    deaths = np.add.reduceat(e_sorted.astype(np.float64), first)
    keep = deaths > 0
    increments = deaths[keep] / at_risk[first][keep] * np.exp(-risk.max())
    return uniq[keep], np.cumsum(increments)


def step_lookup(grid: np.ndarray, values: np.ndarray, times: np.ndarray, before: float) -> np.ndarray:
    """Right-continuous step function through (grid, values) at ``times``; ``before`` ahead of grid[0].

    ``values`` is [len(grid)] or [N, len(grid)]; the result is [len(times)] or [N, len(times)].
    """
    idx = np.searchsorted(grid, np.asarray(times, dtype=np.float64), side="right") - 1
    padded = np.concatenate([np.full(values.shape[:-1] + (1,), before), values], axis=-1)
    return padded[..., idx + 1]


def cox_survival(
    risk: np.ndarray, base_time: np.ndarray, base_cumhaz: np.ndarray, times: np.ndarray
) -> np.ndarray:
    """S(t | x) = exp(-H0(t) exp(risk)) [N, len(times)]."""
    h0 = step_lookup(base_time, base_cumhaz, times, before=0.0)
    return np.exp(-np.exp(np.asarray(risk, dtype=np.float64))[:, None] * h0[None, :])


# ----------------------------------------------------------------------------------------- inner CV
def select_by_inner_cv(
    fit_predict: Callable[[dict[str, Any], np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    grid: Sequence[dict[str, Any]],
    X: np.ndarray,
    y: np.ndarray,
    folds: int,
    seed: int,
) -> tuple[dict[str, Any], list[float]]:
    """The grid point with the best mean inner-CV Harrell's C (first one on ties), and every point's mean C.

    ``fit_predict(params, X_train, y_train, X_val)`` returns risks for ``X_val``.
    """
    if len(grid) == 1:
        return dict(grid[0]), [float("nan")]
    splits = stratified_splits(y["event"], folds, seed)
    means = []
    for params in grid:
        scores = [
            harrell_c(y["time"][va], y["event"][va], fit_predict(params, X[tr], y[tr], X[va]))
            for tr, va in splits
        ]
        means.append(float(np.nanmean(scores)) if not np.all(np.isnan(scores)) else float("nan"))
    best = int(np.nanargmax(means)) if not np.all(np.isnan(means)) else 0
    return dict(grid[best]), means


# ------------------------------------------------------------------------------------------ base class
class SurvivalModel(ABC):
    """Shared behaviour: a Breslow baseline over the model's own log-risk, for models that have none.

    Subclasses give ``fit(X, y) -> self`` (sklearn style; restored bundles may be predict-only),
    ``predict`` and ``export``.
    """

    kind = "base"
    is_linear = False

    def __init__(self) -> None:
        self.params_: dict[str, Any] = {}
        self.baseline_time_ = np.zeros(0)
        self.baseline_cumhaz_ = np.zeros(0)

    @abstractmethod
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Log-risk per row of X (higher = worse prognosis)."""

    def _fit_baseline(self, X: np.ndarray, y: np.ndarray) -> None:
        self.baseline_time_, self.baseline_cumhaz_ = breslow_baseline(self.predict(X), y["time"], y["event"])

    def predict_survival_function(self, X: np.ndarray, times: np.ndarray) -> np.ndarray:
        """S(t | x) [N, len(times)] from the Breslow baseline hazard and the predicted log-risk."""
        return cox_survival(self.predict(X), self.baseline_time_, self.baseline_cumhaz_, times)

    def _baseline_arrays(self) -> Arrays:
        return {"baseline_time": self.baseline_time_, "baseline_cumhaz": self.baseline_cumhaz_}

    def _restore_baseline(self, arrays: Arrays) -> None:
        self.baseline_time_ = np.asarray(arrays["baseline_time"], dtype=np.float64)
        self.baseline_cumhaz_ = np.asarray(arrays["baseline_cumhaz"], dtype=np.float64)

    @abstractmethod
    def export(self) -> tuple[dict[str, Any], Arrays]:
        """The fitted model as a JSON-able config and named arrays (no pickles)."""


# --------------------------------------------------------------------------------------- linear Cox
class LinearCox(SurvivalModel):
    """A fitted linear Cox model: risk = X @ coef_, survival from a Breslow baseline.  Also the restored form
    of every linear kind (coxnet, coxph, clinical)."""

    kind = "linear"
    is_linear = True

    def __init__(self) -> None:
        super().__init__()
        self.coef_ = np.zeros(0)
        self.summary_: list[dict[str, Any]] = []  # hazard-ratio table rows, when the model has one

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float64) @ self.coef_

    def export(self) -> tuple[dict[str, Any], Arrays]:
        config = {
            "kind": self.kind,
            "params": self.params_,
            "coef": self.coef_.tolist(),
            "summary": self.summary_,
        }
        return config, {"coef": self.coef_, **self._baseline_arrays()}

    @classmethod
    def restore(cls, config: dict[str, Any], arrays: Arrays) -> LinearCox:
        model = cls()
        model.kind = config["kind"]
        model.params_ = dict(config.get("params", {}))
        model.summary_ = list(config.get("summary", []))
        model.coef_ = np.asarray(arrays["coef"], dtype=np.float64)
        model._restore_baseline(arrays)
        return model


# Mostly ridge: latent codes have many correlated dimensions, and a lasso-heavy penalty keeps an arbitrary
# few of each correlated group, which makes the health direction noisy: 0.1 gave a held-out health
# attribute closer to the true facial risk than 0.5 at the same C-index (docs/results.md, "l1_ratio").
DEFAULT_L1_RATIO = 0.1


def _mean_over_folds(scores: np.ndarray) -> np.ndarray:
    """Mean inner-fold C per penalty, over the folds whose path reached it (NaN where none did)."""
    if not scores.size:
        return np.zeros(0)
    counts = np.sum(~np.isnan(scores), axis=0)
    sums = np.nansum(scores, axis=0)
    return np.divide(sums, counts, out=np.full(scores.shape[1], np.nan), where=counts > 0)


class CoxNet(LinearCox):
    """Elastic-net Cox; the penalty is chosen on the regularisation path by inner CV (Harrell's C)."""

    kind = "coxnet"

    def __init__(
        self,
        l1_ratio: float = DEFAULT_L1_RATIO,  # elastic-net mixing: 1 lasso, -> 0 ridge
        n_alphas: int = 30,  # penalty values on the path
        alpha_min_ratio: float = 0.01,  # smallest penalty as a fraction of the largest
        inner_folds: int = 3,  # inner CV folds choosing the penalty
        seed: int = 0,  # seeds the inner splits
        alphas: Sequence[float] | None = None,  # explicit penalty path instead of an automatic one
        unpenalized: int = 0,  # trailing columns of X left unpenalised (adjustment covariates)
    ) -> None:
        super().__init__()
        self.l1_ratio, self.n_alphas, self.alpha_min_ratio = l1_ratio, n_alphas, alpha_min_ratio
        self.inner_folds, self.seed, self.alphas = inner_folds, seed, alphas
        self.unpenalized = unpenalized
        self.alphas_ = np.zeros(0)
        self.inner_scores_: list[float] = []

    def _path(self, X: np.ndarray, y: np.ndarray, alphas: np.ndarray | None) -> Any:
        from sksurv.linear_model import CoxnetSurvivalAnalysis

        kwargs: dict[str, Any] = {"l1_ratio": self.l1_ratio, "max_iter": 100_000}
        if self.unpenalized:
            kwargs["penalty_factor"] = penalty_weights(X.shape[1], self.unpenalized)
        if alphas is None:
            kwargs.update(n_alphas=self.n_alphas, alpha_min_ratio=self.alpha_min_ratio)
        else:
            kwargs.update(alphas=alphas)
        return CoxnetSurvivalAnalysis(**kwargs).fit(X, y)

    def fit(self, X: np.ndarray, y: np.ndarray) -> CoxNet:
        X = np.asarray(X, dtype=np.float64)
        path = self._path(X, y, None if self.alphas is None else np.asarray(self.alphas, dtype=np.float64))
        alphas = np.asarray(path.alphas_)
        scores = np.zeros((0, len(alphas)))
        if len(alphas) > 1:
            rows = []
            for tr, va in stratified_splits(y["event"], self.inner_folds, self.seed):
                inner = self._path(X[tr], y[tr], alphas)
                row = np.full(len(alphas), np.nan)
                for j in range(inner.coef_.shape[1]):
                    row[j] = harrell_c(y["time"][va], y["event"][va], X[va] @ inner.coef_[:, j])
                rows.append(row)
            scores = np.array(rows)
        mean_scores = _mean_over_folds(scores)
        if mean_scores.size and not np.all(np.isnan(mean_scores)):
            best = int(np.nanargmax(mean_scores))
        else:
            best = len(alphas) - 1
        self.alphas_ = alphas
        self.inner_scores_ = mean_scores.tolist()
        self.coef_ = np.asarray(path.coef_[:, best], dtype=np.float64)
        self.params_ = {
            "alpha": float(alphas[best]),
            "l1_ratio": self.l1_ratio,
            "nonzero": int((self.coef_ != 0).sum()),
            "unpenalized": self.unpenalized,
        }
        self._fit_baseline(X, y)
        return self


def efron_terms(
    X: np.ndarray, time: np.ndarray, event: np.ndarray, beta: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """Cox partial log-likelihood with Efron's tie correction, its gradient and Hessian at ``beta``.

    For each distinct death time with d deaths D in risk set R, and l = 0..d-1:
    ll += sum_D x'b - log(S0_R - l/d S0_D); the gradient and Hessian follow from the weighted first and
    second moments S1, S2 of x over R and D (Efron 1977).
    """
    order = np.argsort(time, kind="stable")
    x, t, e = X[order], time[order], event[order].astype(bool)
    r = np.exp(x @ beta)
    rx = r[:, None] * x
    s0, s1 = np.cumsum(r[::-1])[::-1], np.cumsum(rx[::-1], axis=0)[::-1]  # sums over T >= t_i
    uniq, first = np.unique(t, return_index=True)
    group = np.searchsorted(uniq, t)
    deaths = np.bincount(group, weights=e, minlength=len(uniq)).astype(int)
    d_s0 = np.bincount(group, weights=r * e, minlength=len(uniq))
    d_s1 = np.zeros((len(uniq), x.shape[1]))
    np.add.at(d_s1, group[e], rx[e])
    k = np.repeat(np.arange(len(uniq)), deaths)  # one entry per death, grouped by time
    frac = np.concatenate([np.arange(d) / d for d in deaths if d])  # l / d
    phi = s0[first[k]] - frac * d_s0[k]
    m1 = (s1[first[k]] - frac[:, None] * d_s1[k]) / phi[:, None]
    # sum over deaths of the second moments, as X' diag(a) X: patient j enters the risk sets of all death
    # times <= T_j with weight sum_l 1/phi, and its own death time's tied set with weight sum_l (l/d)/phi
    w = np.cumsum(np.bincount(k, weights=1.0 / phi, minlength=len(uniq)))
    v = np.bincount(k, weights=frac / phi, minlength=len(uniq))
    a = r * (w[group] - e * v[group])
    ll = float((x[e] @ beta).sum() - np.log(phi).sum())
    grad = x[e].sum(axis=0) - m1.sum(axis=0)
    hess = -((x.T * a) @ x - m1.T @ m1)
    return ll, grad, hess


def penalty_weights(n_features: int, unpenalized: int) -> np.ndarray:
    """Per-column penalty weights: 1 for the leading columns, 0 for the ``unpenalized`` trailing ones."""
    if not 0 <= unpenalized < n_features:
        raise InputError(
            f"{unpenalized} unpenalised adjustment column(s) leave no penalised feature among {n_features}"
        )
    return np.r_[np.ones(n_features - unpenalized), np.zeros(unpenalized)]


def fit_ridge_cox(
    X: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    penalizer: float | np.ndarray,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> tuple[np.ndarray, np.ndarray]:
    """Ridge Cox PH by Newton-Raphson: (coefficients, covariance) on the original scale of X.

    The objective is lifelines' CoxPHFitter(penalizer): columns are centred and scaled by their SD, and
    n * sum_j penalizer_j * b_scaled_j^2 / 2 is subtracted from the Efron partial log-likelihood (a scalar
    penalizer applies to every column, an array per column, as in lifelines).  The covariance is the inverse
    of the penalised information, as lifelines reports it.
    """
    X = np.asarray(X, dtype=np.float64)
    n, p = X.shape
    scale = X.std(axis=0, ddof=1) if n > 1 else np.ones(p)
    scale = np.where(scale > 1e-12, scale, 1.0)
    z = (X - X.mean(axis=0)) / scale
    beta = np.zeros(p)
    ridge = n * np.broadcast_to(np.asarray(penalizer, dtype=np.float64), (p,))

    def objective(b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        ll, grad, hess = efron_terms(z, time, event, b)
        return ll - 0.5 * b @ (ridge * b), grad - ridge * b, hess - np.diag(ridge)

    value, grad, hess = objective(beta)
    for _ in range(max_iter):
        step = np.linalg.solve(-hess, grad)
        size = 1.0
        while True:  # halve the step until the penalised likelihood does not fall
            new_value, new_grad, new_hess = objective(beta + size * step)
            if new_value >= value - 1e-12 or size < 1e-6:
                break
            size /= 2
        beta, value, grad, hess = beta + size * step, new_value, new_grad, new_hess
        if np.linalg.norm(size * step) < tol:
            break
    cov = np.linalg.inv(-hess) / np.outer(scale, scale)
    return beta / scale, cov


class CoxPH(LinearCox):
    """Cox proportional hazards with a ridge penalty (Efron ties), the penalty chosen by inner CV.

    Same objective as lifelines' ``CoxPHFitter(penalizer=...)`` (the tests check the two agree), solved by a
    vectorised Newton-Raphson.  ``summary_`` lists per covariate the coefficient, its standard error, the
    hazard ratio with its 95 % confidence interval and the Wald p-value.
    """

    kind = "coxph"

    def __init__(
        self,
        penalizers: Sequence[float] = (0.01, 0.1, 1.0),  # ridge strengths tried by inner CV
        inner_folds: int = 3,
        seed: int = 0,
        feature_names: Sequence[str] | None = None,  # covariate names in the summary (default x1, x2, ...)
        unpenalized: int = 0,  # trailing columns of X left unpenalised (adjustment covariates)
    ) -> None:
        super().__init__()
        self.penalizers, self.inner_folds, self.seed = tuple(penalizers), inner_folds, seed
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.unpenalized = unpenalized

    def fit(self, X: np.ndarray, y: np.ndarray) -> CoxPH:
        from scipy.stats import norm

        X = np.asarray(X, dtype=np.float64)
        weights = penalty_weights(X.shape[1], self.unpenalized) if self.unpenalized else np.ones(X.shape[1])

        def fit_predict(params: dict[str, Any], Xt: np.ndarray, yt: np.ndarray, Xv: np.ndarray) -> np.ndarray:
            return Xv @ fit_ridge_cox(Xt, yt["time"], yt["event"], params["penalizer"] * weights)[0]

        grid = [{"penalizer": p} for p in self.penalizers]
        self.params_, _ = select_by_inner_cv(fit_predict, grid, X, y, self.inner_folds, self.seed)
        self.coef_, cov = fit_ridge_cox(X, y["time"], y["event"], self.params_["penalizer"] * weights)
        self.params_ = {**self.params_, "unpenalized": self.unpenalized}
        se = np.sqrt(np.diag(cov))
        z = norm.ppf(0.975)
        names = self.feature_names or [f"x{i + 1}" for i in range(X.shape[1])]
        self.summary_ = [
            {
                "covariate": name,
                "coef": float(b),
                "se": float(s),
                "hazard_ratio": float(np.exp(b)),
                "hr_lower_95": float(np.exp(b - z * s)),
                "hr_upper_95": float(np.exp(b + z * s)),
                "p": float(2 * norm.sf(abs(b / s))),
            }
            for name, b, s in zip(names, self.coef_, se, strict=True)
        ]
        self._fit_baseline(X, y)
        return self


# ----------------------------------------------------------------------------------------- DeepSurv
@contextlib.contextmanager
def single_torch_thread() -> Iterator[None]:
    """Run torch on one thread inside the block (restored after).

    A small MLP on a few thousand patients is dominated by per-op overhead, so extra threads only add
    contention (docs/results.md, "DeepSurv threads").
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class DeepSurv(SurvivalModel):
    """An MLP log-risk trained full-batch on the negative Cox partial likelihood (torchsurv, Breslow ties).

    Each training run holds out ``val_fraction`` of its patients (stratified by event) and keeps the epoch
    with the lowest held-out loss; the weight decay is chosen by inner CV.  Seeded: the same data and seed
    give the same network, and the global torch RNG is left untouched.
    """

    kind = "deepsurv"

    def __init__(
        self,
        hidden: Sequence[int] = (32,),  # widths of the hidden layers
        dropout: float = 0.2,  # dropout after each hidden layer
        weight_decays: Sequence[float] = (1e-3, 1e-1),  # Adam weight decay values tried by inner CV
        lr: float = 1e-2,  # Adam learning rate
        max_epochs: int = 200,  # full-batch epochs at most
        patience: int = 10,  # epochs without held-out improvement before stopping
        val_fraction: float = 0.2,  # share of each training set held out for early stopping
        inner_folds: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.hidden, self.dropout, self.weight_decays = tuple(hidden), dropout, tuple(weight_decays)
        self.lr, self.max_epochs, self.patience = lr, max_epochs, patience
        self.val_fraction, self.inner_folds, self.seed = val_fraction, inner_folds, seed
        self.n_features_ = 0
        self.net_: Any = None

    def _build(self, n_features: int) -> Any:
        from torch import nn

        layers: list[Any] = []
        width = n_features
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(self.dropout)]
            width = h
        layers.append(nn.Linear(width, 1, bias=False))  # a bias cancels in the partial likelihood
        return nn.Sequential(*layers).double()

    def _train(self, X: np.ndarray, y: np.ndarray, weight_decay: float, seed: int) -> tuple[Any, int]:
        import torch
        from torchsurv.loss.cox import neg_partial_log_likelihood

        rng = np.random.default_rng(seed)
        event = np.ascontiguousarray(y["event"])
        val = np.zeros(len(y), dtype=bool)
        for cls in (True, False):  # stratified hold-out
            idx = np.flatnonzero(event == cls)
            val[rng.permutation(idx)[: int(round(self.val_fraction * len(idx)))]] = True
        if not event[val].any() or not event[~val].any() or val.sum() < 2 or (~val).sum() < 2:
            # too few deaths or patients to hold any out (a partial likelihood needs two patients and a
            # death): train for max_epochs without early stopping
            val[:] = False
        t = {
            k: torch.as_tensor(np.ascontiguousarray(v))
            for k, v in {"x": X, "time": y["time"], "event": event}.items()
        }
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings(), single_torch_thread():
            warnings.filterwarnings("ignore", message="Ties in `time` detected")  # torchsurv notes each call
            torch.manual_seed(seed)
            net = self._build(X.shape[1])
            opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=weight_decay)
            tr, va = torch.as_tensor(~val), torch.as_tensor(val)
            best, best_epoch, best_state = np.inf, 0, None
            for epoch in range(self.max_epochs):
                net.train()
                opt.zero_grad()
                loss = neg_partial_log_likelihood(
                    net(t["x"][tr]).squeeze(1), t["event"][tr], t["time"][tr], ties_method="breslow"
                )
                loss.backward()
                opt.step()
                if not val.any():
                    continue
                net.eval()
                with torch.no_grad():
                    val_loss = float(
                        neg_partial_log_likelihood(
                            net(t["x"][va]).squeeze(1), t["event"][va], t["time"][va], ties_method="breslow"
                        )
                    )
                if val_loss < best - 1e-6:
                    best, best_epoch = val_loss, epoch + 1
                    best_state = {k: v.clone() for k, v in net.state_dict().items()}
                elif epoch + 1 - best_epoch >= self.patience:
                    break
            if best_state is not None:
                net.load_state_dict(best_state)
            else:
                best_epoch = self.max_epochs
        net.eval()
        return net, best_epoch

    def _risk(self, net: Any, X: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad(), single_torch_thread():
            return net(torch.as_tensor(np.asarray(X, dtype=np.float64))).squeeze(1).numpy().copy()

    def fit(self, X: np.ndarray, y: np.ndarray) -> DeepSurv:
        X = np.asarray(X, dtype=np.float64)

        def fit_predict(params: dict[str, Any], Xt: np.ndarray, yt: np.ndarray, Xv: np.ndarray) -> np.ndarray:
            return self._risk(self._train(Xt, yt, params["weight_decay"], self.seed)[0], Xv)

        grid = [{"weight_decay": wd} for wd in self.weight_decays]
        params, _ = select_by_inner_cv(fit_predict, grid, X, y, self.inner_folds, self.seed)
        self.n_features_ = X.shape[1]
        self.net_, epochs = self._train(X, y, params["weight_decay"], self.seed)
        self.params_ = {**params, "epochs": epochs}
        self._fit_baseline(X, y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._risk(self.net_, X)

    def export(self) -> tuple[dict[str, Any], Arrays]:
        config = {
            "kind": self.kind,
            "params": self.params_,
            "architecture": {
                "n_features": self.n_features_,
                "hidden": list(self.hidden),
                "dropout": self.dropout,
            },
        }
        weights = {f"net.{k}": v.numpy() for k, v in self.net_.state_dict().items()}
        return config, {**weights, **self._baseline_arrays()}

    @classmethod
    def restore(cls, config: dict[str, Any], arrays: Arrays) -> DeepSurv:
        import torch

        arch = config["architecture"]
        model = cls(hidden=arch["hidden"], dropout=arch["dropout"])
        model.params_ = dict(config.get("params", {}))
        model.n_features_ = int(arch["n_features"])
        model.net_ = model._build(model.n_features_)
        state = {
            k.removeprefix("net."): torch.as_tensor(v) for k, v in arrays.items() if k.startswith("net.")
        }
        model.net_.load_state_dict(state)
        model.net_.eval()
        model._restore_baseline(arrays)
        return model


# -------------------------------------------------------------------------------------- tree ensembles
@dataclass
class PackedTrees:
    """Decision trees flattened into shared node arrays (global child indices, -1 at leaves)."""

    roots: np.ndarray  # [T] node index of each tree's root
    left: np.ndarray  # [nodes] left child or -1
    right: np.ndarray  # [nodes] right child or -1
    feature: np.ndarray  # [nodes] split feature
    threshold: np.ndarray  # [nodes] go left when x[feature] <= threshold (x as float32, like scikit-learn)
    leaf_row: np.ndarray  # [nodes] row of the node in the leaf tables, -1 for internal nodes
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_sklearn(cls, trees: Sequence[Any]) -> PackedTrees:
        roots, left, right, feature, threshold, leaf_row = [], [], [], [], [], []
        offset = leaves = 0
        for tree in trees:
            n = tree.node_count
            is_leaf = tree.children_left < 0
            roots.append(offset)
            left.append(np.where(is_leaf, -1, tree.children_left + offset))
            right.append(np.where(is_leaf, -1, tree.children_right + offset))
            feature.append(tree.feature)
            threshold.append(tree.threshold)
            rows = np.full(n, -1)
            rows[is_leaf] = np.arange(leaves, leaves + is_leaf.sum())
            leaf_row.append(rows)
            offset += n
            leaves += int(is_leaf.sum())
        cat = np.concatenate
        return cls(
            np.array(roots, dtype=np.int64),
            cat(left).astype(np.int64),
            cat(right).astype(np.int64),
            cat(feature).astype(np.int64),
            cat(threshold).astype(np.float64),
            cat(leaf_row).astype(np.int64),
        )

    def leaves(self, X: np.ndarray) -> np.ndarray:
        """Leaf-table row reached by each patient in each tree [N, T]."""
        x = np.asarray(X, dtype=np.float32).astype(np.float64)
        node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        rows = np.arange(len(x))[:, None]
        while True:
            internal = self.left[node] >= 0
            if not internal.any():
                return self.leaf_row[node]
            go_left = x[rows, self.feature[node]] <= self.threshold[node]
            node = np.where(internal, np.where(go_left, self.left[node], self.right[node]), node)

    def arrays(self) -> Arrays:
        base = {"roots": self.roots, "left": self.left, "right": self.right, "feature": self.feature}
        return {**base, "threshold": self.threshold, "leaf_row": self.leaf_row, **self.extra}

    @classmethod
    def from_arrays(cls, arrays: Arrays) -> PackedTrees:
        names = ("roots", "left", "right", "feature", "threshold", "leaf_row")
        extra = {k: v for k, v in arrays.items() if k not in names}
        return cls(*(np.asarray(arrays[k]) for k in names), extra=extra)  # type: ignore[arg-type]


class RandomSurvivalForest(SurvivalModel):
    """scikit-survival's random survival forest; minimum leaf size chosen by inner CV.

    The fitted forest is kept as plain arrays: per leaf its risk (sum of the cumulative hazard over the
    training event times, scikit-survival's definition) and its survival curve at the training event times.
    """

    kind = "rsf"

    def __init__(
        self,
        n_estimators: int = 100,
        min_samples_leafs: Sequence[int] = (5, 15),  # tried by inner CV
        max_features: str | float = "sqrt",
        inner_folds: int = 3,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.n_estimators, self.min_samples_leafs, self.max_features = (
            n_estimators,
            tuple(min_samples_leafs),
            max_features,
        )
        self.inner_folds, self.seed = inner_folds, seed
        self.trees_: PackedTrees | None = None
        self.event_times_ = np.zeros(0)

    def _forest(self, min_samples_leaf: int) -> Any:
        from sksurv.ensemble import RandomSurvivalForest as Forest

        return Forest(
            n_estimators=self.n_estimators,
            min_samples_leaf=min_samples_leaf,
            max_features=self.max_features,
            random_state=self.seed,
            n_jobs=1,
        )

    def fit(self, X: np.ndarray, y: np.ndarray) -> RandomSurvivalForest:
        def fit_predict(params: dict[str, Any], Xt: np.ndarray, yt: np.ndarray, Xv: np.ndarray) -> np.ndarray:
            return self._forest(params["min_samples_leaf"]).fit(Xt, yt).predict(Xv)

        grid = [{"min_samples_leaf": m} for m in self.min_samples_leafs]
        self.params_, _ = select_by_inner_cv(fit_predict, grid, X, y, self.inner_folds, self.seed)
        forest = self._forest(self.params_["min_samples_leaf"]).fit(X, y)
        self.pack(forest)
        return self

    def pack(self, forest: Any) -> None:
        """Copy a fitted scikit-survival forest into plain arrays."""
        trees = [est.tree_ for est in forest.estimators_]
        packed = PackedTrees.from_sklearn(trees)
        is_event = forest.is_event_time_
        risk, surv = [], []
        for tree in trees:
            leaf_values = tree.value[tree.children_left < 0]  # [leaves, unique_times, (chf, survival)]
            risk.append(leaf_values[:, is_event, 0].sum(axis=1))
            surv.append(leaf_values[:, is_event, 1])
        packed.extra = {
            "leaf_risk": np.concatenate(risk),
            "leaf_survival": np.concatenate(surv).astype(np.float32),
        }
        self.trees_ = packed
        self.event_times_ = np.asarray(forest.unique_times_[is_event], dtype=np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        assert self.trees_ is not None
        return self.trees_.extra["leaf_risk"][self.trees_.leaves(X)].mean(axis=1)

    def predict_survival_function(self, X: np.ndarray, times: np.ndarray) -> np.ndarray:
        assert self.trees_ is not None
        rows = self.trees_.leaves(X)  # [N, T]
        at_events = self.trees_.extra["leaf_survival"][rows].astype(np.float64).mean(axis=1)  # [N, events]
        return step_lookup(self.event_times_, at_events, times, before=1.0)

    def export(self) -> tuple[dict[str, Any], Arrays]:
        assert self.trees_ is not None
        config = {"kind": self.kind, "params": self.params_, "n_estimators": self.n_estimators}
        return config, {
            **{f"trees.{k}": v for k, v in self.trees_.arrays().items()},
            "event_times": self.event_times_,
        }

    @classmethod
    def restore(cls, config: dict[str, Any], arrays: Arrays) -> RandomSurvivalForest:
        model = cls(n_estimators=int(config["n_estimators"]))
        model.params_ = dict(config.get("params", {}))
        model.trees_ = PackedTrees.from_arrays(
            {k[6:]: v for k, v in arrays.items() if k.startswith("trees.")}
        )
        model.event_times_ = np.asarray(arrays["event_times"], dtype=np.float64)
        return model


class GradientBoostedCox(SurvivalModel):
    """scikit-survival's gradient-boosted regression trees on the Cox partial likelihood; number of boosting
    stages chosen by inner CV.  Kept as plain tree arrays; risk = learning_rate * sum of the trees' leaves
    (scikit-survival's prediction up to a constant, which cancels in the Breslow baseline)."""

    kind = "gbsa"

    def __init__(
        self,
        n_estimators_grid: Sequence[int] = (50, 150),  # boosting stages tried by inner CV
        learning_rate: float = 0.1,
        max_depth: int = 2,
        subsample: float = 0.8,
        inner_folds: int = 3,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.n_estimators_grid, self.learning_rate, self.max_depth = (
            tuple(n_estimators_grid),
            learning_rate,
            max_depth,
        )
        self.subsample, self.inner_folds, self.seed = subsample, inner_folds, seed
        self.trees_: PackedTrees | None = None

    def _booster(self, n_estimators: int) -> Any:
        from sksurv.ensemble import GradientBoostingSurvivalAnalysis

        return GradientBoostingSurvivalAnalysis(
            loss="coxph",
            n_estimators=n_estimators,
            learning_rate=self.learning_rate,
            max_depth=self.max_depth,
            subsample=self.subsample,
            random_state=self.seed,
        )

    def fit(self, X: np.ndarray, y: np.ndarray) -> GradientBoostedCox:
        def fit_predict(params: dict[str, Any], Xt: np.ndarray, yt: np.ndarray, Xv: np.ndarray) -> np.ndarray:
            return self._booster(params["n_estimators"]).fit(Xt, yt).predict(Xv)

        grid = [{"n_estimators": m} for m in self.n_estimators_grid]
        self.params_, _ = select_by_inner_cv(fit_predict, grid, X, y, self.inner_folds, self.seed)
        self.pack(self._booster(self.params_["n_estimators"]).fit(X, y))
        self._fit_baseline(X, y)
        return self

    def pack(self, booster: Any) -> None:
        """Copy a fitted scikit-survival booster into plain arrays."""
        trees = [est.tree_ for est in np.ravel(booster.estimators_)]
        packed = PackedTrees.from_sklearn(trees)
        values = [tree.value[tree.children_left < 0, 0, 0] for tree in trees]
        packed.extra = {"leaf_value": np.concatenate(values) * booster.learning_rate}
        self.trees_ = packed

    def predict(self, X: np.ndarray) -> np.ndarray:
        assert self.trees_ is not None
        return self.trees_.extra["leaf_value"][self.trees_.leaves(X)].sum(axis=1)

    def export(self) -> tuple[dict[str, Any], Arrays]:
        assert self.trees_ is not None
        config = {"kind": self.kind, "params": self.params_, "learning_rate": self.learning_rate}
        return config, {
            **{f"trees.{k}": v for k, v in self.trees_.arrays().items()},
            **self._baseline_arrays(),
        }

    @classmethod
    def restore(cls, config: dict[str, Any], arrays: Arrays) -> GradientBoostedCox:
        model = cls(learning_rate=float(config["learning_rate"]))
        model.params_ = dict(config.get("params", {}))
        model.trees_ = PackedTrees.from_arrays(
            {k[6:]: v for k, v in arrays.items() if k.startswith("trees.")}
        )
        model._restore_baseline(arrays)
        return model


# ------------------------------------------------------------------------------------------ late fusion
class LateFusion(SurvivalModel):
    """Image risk score + clinical covariates in a ridge Cox model, the score produced out-of-fold.

    Columns ``[:n_image]`` of X are image features, the rest clinical.  Inside ``fit`` an inner K-fold gives
    every training patient an image score from a model that never saw them; the fusion Cox is fitted on those
    scores (standardised) and the clinical columns.  At prediction the image model refitted on all training
    patients scores the new ones.
    """

    kind = "fusion"

    def __init__(
        self,
        image_model: Callable[[int], SurvivalModel],  # seed -> unfitted image model
        n_image: int,  # number of leading image columns in X
        inner_folds: int = 3,  # folds producing the out-of-fold image score
        seed: int = 0,
        clinical_names: Sequence[str] = (),
        penalizers: Sequence[float] = (0.01,),
    ) -> None:
        super().__init__()
        self.image_model, self.n_image, self.inner_folds, self.seed = image_model, n_image, inner_folds, seed
        self.clinical_names, self.penalizers = list(clinical_names), tuple(penalizers)
        self.image_: SurvivalModel | None = None
        self.cox_: LinearCox | None = None
        self.score_mean_, self.score_scale_ = 0.0, 1.0

    @property
    def is_linear(self) -> bool:  # type: ignore[override]
        return bool(self.image_ is not None and self.image_.is_linear)

    def fit(self, X: np.ndarray, y: np.ndarray) -> LateFusion:
        X = np.asarray(X, dtype=np.float64)
        image, clinical = X[:, : self.n_image], X[:, self.n_image :]
        oof = np.zeros(len(X))
        for k, (tr, va) in enumerate(stratified_splits(y["event"], self.inner_folds, self.seed)):
            oof[va] = self.image_model(self.seed + k + 1).fit(image[tr], y[tr]).predict(image[va])
        self.score_mean_ = float(oof.mean())
        self.score_scale_ = float(oof.std()) if oof.std() > 1e-12 else 1.0
        names = [
            "image_score",
            *(self.clinical_names or [f"clinical{i + 1}" for i in range(clinical.shape[1])]),
        ]
        cox = CoxPH(self.penalizers, seed=self.seed, feature_names=names)
        self.cox_ = cox.fit(np.column_stack([(oof - self.score_mean_) / self.score_scale_, clinical]), y)
        self.image_ = self.image_model(self.seed).fit(image, y)
        self.params_ = {"image": self.image_.params_, "fusion": cox.params_}
        return self

    def _fusion_features(self, X: np.ndarray) -> np.ndarray:
        assert self.image_ is not None
        X = np.asarray(X, dtype=np.float64)
        score = (self.image_.predict(X[:, : self.n_image]) - self.score_mean_) / self.score_scale_
        return np.column_stack([score, X[:, self.n_image :]])

    def predict(self, X: np.ndarray) -> np.ndarray:
        assert self.cox_ is not None
        return self.cox_.predict(self._fusion_features(X))

    def predict_survival_function(self, X: np.ndarray, times: np.ndarray) -> np.ndarray:
        assert self.cox_ is not None
        return self.cox_.predict_survival_function(self._fusion_features(X), times)

    def image_coef(self) -> np.ndarray:
        """d risk / d image features, for a linear image model (the fusion weight times its coefficients)."""
        assert self.cox_ is not None and isinstance(self.image_, LinearCox)
        return self.cox_.coef_[0] / self.score_scale_ * self.image_.coef_

    def export(self) -> tuple[dict[str, Any], Arrays]:
        assert self.image_ is not None and self.cox_ is not None
        image_config, image_arrays = self.image_.export()
        cox_config, cox_arrays = self.cox_.export()
        config = {
            "kind": self.kind,
            "params": self.params_,
            "n_image": self.n_image,
            "score_mean": self.score_mean_,
            "score_scale": self.score_scale_,
            "image": image_config,
            "cox": cox_config,
        }
        arrays = {
            **{f"image.{k}": v for k, v in image_arrays.items()},
            **{f"cox.{k}": v for k, v in cox_arrays.items()},
        }
        return config, arrays

    @classmethod
    def restore(
        cls,
        config: dict[str, Any],
        arrays: Arrays,
        restore_part: Callable[[dict[str, Any], Arrays], SurvivalModel],
    ) -> LateFusion:
        """The fitted fusion model; ``restore_part`` rebuilds its image and Cox parts from their exports
        (the registry's ``restore_model``, which knows every kind the image part may be)."""

        def sub(prefix: str) -> Arrays:
            return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}

        model = cls(image_model=_not_refittable, n_image=int(config["n_image"]))
        model.params_ = dict(config.get("params", {}))
        model.score_mean_, model.score_scale_ = float(config["score_mean"]), float(config["score_scale"])
        model.image_ = restore_part(config["image"], sub("image."))
        cox = restore_part(config["cox"], sub("cox."))
        assert isinstance(cox, LinearCox)
        model.cox_ = cox
        return model


def _not_refittable(seed: int) -> SurvivalModel:
    raise TypeError("a restored fusion model predicts only; refit it with `stylesurv fit`")
