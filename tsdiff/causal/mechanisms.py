"""Each metric's mechanism: a model of its value given its causes, and how far it may stray.

A metric's predictors are its parents in the learned graph (each at its lag; same-time parents at
lag 0) plus its own recent past (lags 1..L), so a metric with no parent is modelled on its own
history. A duplicate metric is modelled from its twin and a constant one by its constant.

Two model families, both stored as plain arrays (no pickle):

* ``"linear"``: ridge regression, refitted once without the training rows whose residual is an
  outlier (anomalies in the training data must not bend the mechanism);
* ``"boosting"``: scikit-learn's histogram gradient boosting, refitted the same way, its trees
  flattened into arrays and evaluated by :class:`FlatTrees`.

Residuals are turned into a robust z-score with the median and MAD of residuals on held-out rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MODELS = ("linear", "boosting")
MAD_TO_SD = 1.4826


@dataclass
class MechanismSpec:
    """The predictors of one metric: (column position, lag) pairs."""

    target: int
    predictors: list[tuple[int, int]]

    def design(self, values: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Predictor matrix (len(rows), n_predictors) for rows ``t`` (each at least max lag)."""
        if not self.predictors:
            return np.empty((len(rows), 0))
        return np.column_stack([values[rows - lag, col] for col, lag in self.predictors])


def build_specs(
    n_metrics: int,
    edges: list[tuple[int, int, int, bool]],
    lag: int,
    constant: list[int],
    duplicate_of: dict[int, int],
) -> list[MechanismSpec]:
    """One spec per metric from graph edges (over column positions) and the screening result."""
    parents: dict[int, set[tuple[int, int]]] = {j: set() for j in range(n_metrics)}
    for cause, effect, shift, _ in edges:
        if not (cause == effect and shift == 0):
            parents[effect].add((cause, shift))
    specs = []
    for j in range(n_metrics):
        if j in constant:
            predictors: list[tuple[int, int]] = []
        elif j in duplicate_of:
            predictors = [(duplicate_of[j], 0)]
        else:
            predictors = sorted(parents[j] | {(j, s) for s in range(1, lag + 1)})
        specs.append(MechanismSpec(j, predictors))
    return specs


def _trimmed_rows(residual: np.ndarray, trim: float) -> np.ndarray:
    med = np.median(residual)
    mad = np.median(np.abs(residual - med)) * MAD_TO_SD
    if not mad > 0:
        return np.ones(len(residual), dtype=bool)
    return np.abs(residual - med) <= trim * mad


class LinearModel:
    """Ridge regression of one metric on its predictors, with one outlier-trimmed refit."""

    def __init__(self, alpha: float = 1.0, trim: float = 4.0) -> None:
        self.alpha, self.trim = alpha, trim

    def fit(self, x: np.ndarray, y: np.ndarray) -> LinearModel:
        self.coef_ = np.zeros(x.shape[1])
        self.intercept_ = float(np.median(y))
        if x.shape[1] == 0 or len(y) <= x.shape[1]:
            return self
        keep = np.ones(len(y), dtype=bool)
        for _ in range(2):
            self._solve(x[keep], y[keep])
            keep = _trimmed_rows(y - self.predict(x), self.trim)
        return self

    def _solve(self, x: np.ndarray, y: np.ndarray) -> None:
        mean_x, mean_y = x.mean(axis=0), y.mean()
        xc = x - mean_x
        gram = xc.T @ xc + self.alpha * np.eye(x.shape[1])
        self.coef_ = np.linalg.solve(gram, xc.T @ (y - mean_y))
        self.intercept_ = float(mean_y - mean_x @ self.coef_)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x @ self.coef_ + self.intercept_

    def arrays(self) -> dict[str, np.ndarray]:
        return {"coef": self.coef_, "intercept": np.array([self.intercept_])}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> LinearModel:
        model = cls()
        model.coef_ = np.asarray(arrays["coef"], dtype=np.float64)
        model.intercept_ = float(arrays["intercept"][0])
        return model


class FlatTrees:
    """A boosted ensemble of regression trees as arrays; NaN follows each split's learned side."""

    FIELDS = ("value", "feature", "threshold", "missing_left", "left", "right", "is_leaf")

    def __init__(self, nodes: dict[str, np.ndarray], roots: np.ndarray, baseline: float) -> None:
        self.nodes, self.roots, self.baseline = nodes, roots, baseline

    @classmethod
    def from_sklearn(cls, model: Any) -> FlatTrees:
        parts: dict[str, list[np.ndarray]] = {f: [] for f in cls.FIELDS}
        roots, offset = [], 0
        # scikit-learn keeps the fitted trees only in private attributes; reading them is what lets a
        # boosted mechanism be saved as plain arrays instead of a pickle
        for iteration in model._predictors:  # noqa: SLF001
            tree = iteration[0].nodes
            roots.append(offset)
            leaf = tree["is_leaf"].astype(bool)
            parts["value"].append(tree["value"].astype(np.float64))
            parts["feature"].append(tree["feature_idx"].astype(np.int64))
            parts["threshold"].append(tree["num_threshold"].astype(np.float64))
            parts["missing_left"].append(tree["missing_go_to_left"].astype(np.uint8))
            parts["left"].append(np.where(leaf, -1, tree["left"].astype(np.int64) + offset))
            parts["right"].append(np.where(leaf, -1, tree["right"].astype(np.int64) + offset))
            parts["is_leaf"].append(leaf.astype(np.uint8))
            offset += len(tree)
        nodes = {f: np.concatenate(v) if v else np.zeros(0) for f, v in parts.items()}
        baseline = float(np.ravel(model._baseline_prediction)[0])  # noqa: SLF001
        return cls(nodes, np.asarray(roots, dtype=np.int64), baseline)

    def predict(self, x: np.ndarray) -> np.ndarray:
        if len(self.roots) == 0:
            return np.full(len(x), self.baseline)
        n = self.nodes
        node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        rows = np.arange(len(x))[:, None]
        while True:
            inner = n["is_leaf"][node] == 0
            if not inner.any():
                break
            value = x[rows, n["feature"][node]]
            go_left = np.where(np.isnan(value), n["missing_left"][node] == 1, value <= n["threshold"][node])
            node = np.where(inner, np.where(go_left, n["left"][node], n["right"][node]), node)
        return self.baseline + n["value"][node].sum(axis=1)

    def arrays(self) -> dict[str, np.ndarray]:
        return {**self.nodes, "roots": self.roots, "baseline": np.array([self.baseline])}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> FlatTrees:
        nodes = {f: np.asarray(arrays[f]) for f in cls.FIELDS}
        return cls(nodes, np.asarray(arrays["roots"], dtype=np.int64), float(arrays["baseline"][0]))


class BoostedModel:
    """Histogram gradient boosting of one metric on its predictors, with one outlier-trimmed refit."""

    def __init__(self, trim: float = 4.0, max_iter: int = 100, random_state: int = 0) -> None:
        self.trim, self.max_iter, self.random_state = trim, max_iter, random_state

    def fit(self, x: np.ndarray, y: np.ndarray) -> BoostedModel:
        from sklearn.ensemble import HistGradientBoostingRegressor

        if x.shape[1] == 0 or len(y) < 20:
            self.trees_ = FlatTrees(
                {f: np.zeros(0) for f in FlatTrees.FIELDS}, np.zeros(0, np.int64), float(np.median(y))
            )
            return self
        keep = np.ones(len(y), dtype=bool)
        for _ in range(2):
            model = HistGradientBoostingRegressor(
                max_iter=self.max_iter,
                max_leaf_nodes=15,
                early_stopping=False,
                random_state=self.random_state,
            ).fit(x[keep], y[keep])
            self.trees_ = FlatTrees.from_sklearn(model)
            keep = _trimmed_rows(y - self.predict(x), self.trim)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.trees_.predict(x)

    def arrays(self) -> dict[str, np.ndarray]:
        return self.trees_.arrays()

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> BoostedModel:
        model = cls()
        model.trees_ = FlatTrees.from_arrays(arrays)
        return model


def make_model(kind: str, ridge_alpha: float, trim: float, random_state: int) -> LinearModel | BoostedModel:
    if kind == "linear":
        return LinearModel(alpha=ridge_alpha, trim=trim)
    return BoostedModel(trim=trim, random_state=random_state)


def model_from_arrays(kind: str, arrays: dict[str, np.ndarray]) -> LinearModel | BoostedModel:
    return LinearModel.from_arrays(arrays) if kind == "linear" else BoostedModel.from_arrays(arrays)


def predict_all(specs: list[MechanismSpec], models: list[Any], values: np.ndarray, lag: int) -> np.ndarray:
    """Each metric's prediction at every row (n, K); NaN where the mechanism lacks an input.

    The first ``lag`` rows lack history and get NaN. The linear mechanism needs every predictor;
    the boosted one routes missing predictors down each split's learned side.
    """
    n, k = values.shape
    out = np.full((n, k), np.nan)
    rows = np.arange(lag, n)
    if len(rows) == 0:
        return out
    for spec, model in zip(specs, models, strict=True):
        x = spec.design(values, rows)
        pred = model.predict(np.nan_to_num(x) if isinstance(model, LinearModel) else x)
        if isinstance(model, LinearModel) and x.shape[1]:
            pred = np.where(np.isnan(x).any(axis=1), np.nan, pred)
        out[rows, spec.target] = pred
    return out


def fit_mechanisms(
    specs: list[MechanismSpec],
    values: np.ndarray,
    lag: int,
    kind: str,
    ridge_alpha: float,
    trim: float,
    random_state: int,
) -> list[Any]:
    """Fit one model per metric on the rows where the metric and (for linear) its predictors exist."""
    rows = np.arange(lag, values.shape[0])
    models = []
    for spec in specs:
        y = values[rows, spec.target]
        x = spec.design(values, rows)
        ok = ~np.isnan(y)
        if kind == "linear" and x.shape[1]:
            ok &= ~np.isnan(x).any(axis=1)
        models.append(make_model(kind, ridge_alpha, trim, random_state).fit(x[ok], y[ok]))
    return models


def residual_scale(residuals: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Median and robust spread (MAD x 1.4826, at least ``floor``) of each metric's residuals."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        center = np.nanmedian(residuals, axis=0)
        spread = np.nanmedian(np.abs(residuals - center), axis=0) * MAD_TO_SD
    center = np.nan_to_num(center, nan=0.0)
    spread = np.maximum(np.nan_to_num(spread, nan=floor), floor)
    return center, spread
