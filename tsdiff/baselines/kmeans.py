"""Sliding-window k-means: distance of each window to the nearest typical window seen in training."""

from __future__ import annotations

from typing import Any

import numpy as np

from tsdiff.base import BaseDetector, StreamGeometry
from tsdiff.errors import ParameterError
from tsdiff.frame import fill_missing, sliding_windows, spread_to_rows, window_starts


class KMeansDetector(BaseDetector):
    """KMeansAD: cluster training windows; a window far from every centre is anomalous.

    Windows of ``window`` rows (all metrics flattened) are clustered with k-means; a window's
    score is its Euclidean distance to the nearest centre, and a row's score is the mean over the
    windows that cover it. The per-metric score spreads each metric's share of the squared
    distance the same way. On server-metric data this simple peer is hard to beat.

    Parameters
    ----------
    window
        Rows per window.
    n_clusters
        Number of k-means centres.
    stride
        Step between scored windows (1 scores every window position).
    max_train_windows
        Training windows are taken with a stride that keeps at most this many (k-means cost).
    threshold, risk
        Label threshold, see :class:`~tsdiff.base.BaseDetector`.
    random_state
        Seed of the k-means initialisation.
    """

    def __init__(
        self,
        window: int = 40,
        n_clusters: int = 10,
        stride: int = 1,
        max_train_windows: int = 20000,
        threshold: str = "pot",
        risk: float = 1e-3,
        random_state: int | None = None,
    ) -> None:
        self.window = window
        self.n_clusters = n_clusters
        self.stride = stride
        self.max_train_windows = max_train_windows
        self.threshold = threshold
        self.risk = risk
        self.random_state = random_state

    def min_rows(self) -> int:
        return int(self.window)

    def _fit(self, values: np.ndarray) -> None:
        from sklearn.cluster import KMeans

        if int(self.window) < 1 or int(self.stride) < 1 or int(self.n_clusters) < 1:
            raise ParameterError("window, stride and n_clusters must be >= 1")
        x = fill_missing(values)
        n_windows = x.shape[0] - int(self.window) + 1
        step = max(1, int(np.ceil(n_windows / int(self.max_train_windows))))
        starts = window_starts(x.shape[0], int(self.window), step)
        flat = sliding_windows(x, int(self.window), starts).reshape(len(starts), -1)
        k = min(int(self.n_clusters), len(flat))
        km = KMeans(n_clusters=k, n_init=3, random_state=self.random_state).fit(flat)
        self.centers_ = km.cluster_centers_.reshape(k, int(self.window), x.shape[1])

    def stream_geometry(self) -> StreamGeometry:
        w, stride = int(self.window), int(self.stride)
        return StreamGeometry(period=stride, history=w + stride, lookahead=w)

    def _score(
        self, values: np.ndarray, offset: int = 0, memo: dict | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        x = fill_missing(values)
        w = int(self.window)
        starts = window_starts(x.shape[0], w, int(self.stride))
        flat_centers = self.centers_.reshape(len(self.centers_), -1)
        c_norm = (flat_centers**2).sum(axis=1)
        per_window = np.empty((len(starts), x.shape[1]))
        distance = np.empty(len(starts))
        for i in range(0, len(starts), 4096):  # bounded memory on long inputs
            win = sliding_windows(x, w, starts[i : i + 4096])
            flat = win.reshape(len(win), -1)
            d2 = (flat**2).sum(axis=1)[:, None] - 2.0 * flat @ flat_centers.T + c_norm[None, :]
            nearest = np.argmin(d2, axis=1)
            diff2 = (win - self.centers_[nearest]) ** 2  # (n, window, metrics)
            per_window[i : i + 4096] = diff2.sum(axis=1)
            distance[i : i + 4096] = np.sqrt(per_window[i : i + 4096].sum(axis=1))
        scores = spread_to_rows(distance, starts, w, x.shape[0])
        feature = spread_to_rows(per_window, starts, w, x.shape[0])
        return scores, feature

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {"centers": self.centers_}

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.centers_ = arrays["centers"]

    def _check_state(self) -> None:
        from tsdiff.checks import check_array, require

        centers = check_array("centers", self.centers_, (None, int(self.window), self.n_features_in_))
        require(1 <= len(centers) <= max(int(self.n_clusters), 1), f"has {len(centers)} cluster centres")
