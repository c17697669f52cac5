"""Windowed PCA: distance of each window of the series from the subspace of typical windows.

Where the row-wise :class:`~tsdiff.baselines.PCADetector` sees only how metrics relate at one
instant, this peer flattens each row's window (all metrics over a dominant period) into one vector,
so a broken shape in time counts as much as a broken relation between metrics.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tsdiff.base import BaseDetector, StreamGeometry
from tsdiff.baselines.pca import components_kept
from tsdiff.errors import ParameterError
from tsdiff.frame import fill_missing, sliding_windows, spread_to_rows, window_starts

#: rows of input per block when windows are flattened (bounds memory on long inputs)
_BLOCK = 2048


class WindowPCADetector(BaseDetector):
    """Windowed PCA reconstruction error (the Q statistic of flattened windows).

    The series is z-normalised per metric on the training rows; every window of ``window`` rows
    (all metrics) is flattened into one vector; PCA on the training windows keeps the leading
    components, and a window's score is its squared distance from their span. A row's score is the
    mean over the windows that cover it; the per-metric score spreads each metric's share of the
    residual the same way. Missing cells are carried forward (see :func:`tsdiff.frame.fill_missing`).

    Parameters
    ----------
    window
        Rows per window, or ``"period"``: the series' dominant period, the lag of the strongest
        autocorrelation peak of its first metric (:func:`tsdiff.metrics.choose_sliding_window`,
        TSB-AD's rule), capped at ``max_window``.
    n_components
        Components kept: an int, or a float in (0, 1) for the smallest number that explains that
        fraction of the variance of the training windows.
    max_window
        Upper bound on the window chosen by ``"period"``.
    max_train_windows
        Training windows are taken with a stride that keeps at most this many (PCA cost).
    threshold, risk
        Label threshold, see :class:`~tsdiff.base.BaseDetector`.
    random_state
        Unused (PCA is deterministic); accepted so every detector takes it.
    """

    def __init__(
        self,
        window: int | str = "period",
        n_components: float = 0.9,
        max_window: int = 128,
        max_train_windows: int = 5000,
        threshold: str = "pot",
        risk: float = 1e-3,
        random_state: int | None = None,
    ) -> None:
        self.window = window
        self.n_components = n_components
        self.max_window = max_window
        self.max_train_windows = max_train_windows
        self.threshold = threshold
        self.risk = risk
        self.random_state = random_state

    def _check_params(self) -> None:
        super()._check_params()
        whole = isinstance(self.window, (int, np.integer)) and not isinstance(self.window, bool)
        if self.window != "period" and not (whole and self.window >= 1):
            raise ParameterError(f"window must be a positive int or 'period', got {self.window!r}")
        if int(self.max_window) < 2 or int(self.max_train_windows) < 2:
            raise ParameterError("max_window and max_train_windows must be >= 2")

    def min_rows(self) -> int:
        return int(self.window_) if hasattr(self, "window_") else 2

    def _choose_window(self, values: np.ndarray) -> int:
        if self.window != "period":
            return int(self.window)
        from tsdiff.metrics import choose_sliding_window

        period = choose_sliding_window(values)
        # at most half the training rows, so there are windows to learn from
        return int(max(2, min(period, int(self.max_window), len(values) // 2)))

    def _fit(self, values: np.ndarray) -> None:
        x = fill_missing(values)
        w = self._choose_window(x[: self.n_train_rows_])
        train = x[: self.n_train_rows_]
        if len(train) < w:
            raise ParameterError(f"window {w} is longer than the {len(train)} training rows")
        self.window_ = w
        self.mean_ = train.mean(axis=0)
        std = train.std(axis=0)
        self.std_ = np.where(std > 1e-12, std, 1.0)
        z = (train - self.mean_) / self.std_
        n_windows = len(z) - w + 1
        step = max(1, int(np.ceil(n_windows / int(self.max_train_windows))))
        starts = window_starts(len(z), w, step)
        flat = sliding_windows(z, w, starts).reshape(len(starts), -1)
        self.center_ = flat.mean(axis=0)
        centred = flat - self.center_
        # eigenvectors of the (features x features) covariance, or of the Gram matrix when there are
        # fewer windows than features: the same leading subspace at the smaller cost
        if centred.shape[0] < centred.shape[1]:
            gram = centred @ centred.T
            var, u = np.linalg.eigh(gram)
            order = np.argsort(var)[::-1]
            var, u = np.clip(var[order], 0.0, None), u[:, order]
            keep = var > var[0] * 1e-12 if var[0] > 0 else np.zeros_like(var, dtype=bool)
            keep[0] = True
            vecs = (centred.T @ u[:, keep]) / np.sqrt(np.maximum(var[keep], 1e-300))
            var = var[keep]
        else:
            var, vecs = np.linalg.eigh(centred.T @ centred)
            order = np.argsort(var)[::-1]
            var, vecs = np.clip(var[order], 0.0, None), vecs[:, order]
        k = components_kept(var, self.n_components)
        self.components_ = np.ascontiguousarray(vecs[:, :k].T)
        total = var.sum()
        self.explained_variance_ratio_ = var[:k] / total if total > 0 else np.zeros(k)

    def stream_geometry(self) -> StreamGeometry:
        w = int(self.window_)
        return StreamGeometry(period=1, history=w + 1, lookahead=w)

    def _score(
        self, values: np.ndarray, offset: int = 0, memo: dict | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        w = int(self.window_)
        z = (fill_missing(values) - self.mean_) / self.std_
        n, k = z.shape
        starts = window_starts(n, w, 1)
        per_window = np.empty((len(starts), k))
        for i in range(0, len(starts), _BLOCK):
            win = sliding_windows(z, w, starts[i : i + _BLOCK]).reshape(-1, w * k) - self.center_
            residual = win - (win @ self.components_.T) @ self.components_
            per_window[i : i + _BLOCK] = (residual.reshape(-1, w, k) ** 2).sum(axis=1)
        feature = spread_to_rows(per_window, starts, w, n)
        return feature.sum(axis=1), feature

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"window": int(self.window_)}, {
            "mean": self.mean_,
            "std": self.std_,
            "center": self.center_,
            "components": self.components_,
            "explained_variance_ratio": self.explained_variance_ratio_,
        }

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.window_ = int(state["window"])
        self.mean_ = arrays["mean"]
        self.std_ = arrays["std"]
        self.center_ = arrays["center"]
        self.components_ = arrays["components"]
        self.explained_variance_ratio_ = arrays["explained_variance_ratio"]

    def _check_state(self) -> None:
        from tsdiff.checks import check_array, check_int

        k = self.n_features_in_
        d = check_int("window", self.window_, 1, 100_000) * k
        check_array("mean", self.mean_, (k,))
        check_array("std", self.std_, (k,), positive=True)
        check_array("center", self.center_, (d,))
        c = check_array("components", self.components_, (None, d)).shape[0]
        check_array("explained_variance_ratio", self.explained_variance_ratio_, (c,))
