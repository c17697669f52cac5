"""Isolation forest, flattened into plain arrays: saved without pickle, scored without scikit-learn."""

from __future__ import annotations

from typing import Any

import numpy as np

from tsdiff.base import BaseDetector, StreamGeometry
from tsdiff.errors import ParameterError
from tsdiff.frame import fill_missing


def average_path_length(n: np.ndarray) -> np.ndarray:
    """Expected path length of an unsuccessful search in a binary search tree of ``n`` points.

    c(n) = 2 H(n-1) - 2 (n-1) / n, with c(1) = 0 and c(2) = 1 (Liu, Ting and Zhou, ICDM 2008).
    """
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    big = n > 2
    out[n == 2] = 1.0
    m = n[big]
    out[big] = 2.0 * (np.log(m - 1.0) + np.euler_gamma) - 2.0 * (m - 1.0) / m
    return out


class IsolationForestDetector(BaseDetector):
    """Rows that random axis-aligned splits isolate quickly are anomalous.

    The forest is grown by scikit-learn's ``IsolationForest`` and then flattened into arrays (child
    indices, split feature and value, path length at each leaf); scoring walks those arrays for all
    trees at once. The score is the usual ``2 ** (-mean path length / c(max_samples))`` in (0, 1].
    The per-metric score is the row's absolute deviation from the training median in robust units,
    since an isolation forest has no attribution of its own.

    Parameters
    ----------
    n_estimators
        Number of trees.
    max_samples
        Rows drawn to grow each tree (at most the number of training rows).
    max_features
        Fraction of the metrics each tree may split on.
    threshold, risk
        Label threshold, see :class:`~tsdiff.base.BaseDetector`.
    random_state
        Seed of the forest.
    """

    def __init__(
        self,
        n_estimators: int = 100,
        max_samples: int = 256,
        max_features: float = 1.0,
        threshold: str = "pot",
        risk: float = 1e-3,
        random_state: int | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.threshold = threshold
        self.risk = risk
        self.random_state = random_state

    def _fit(self, values: np.ndarray) -> None:
        from sklearn.ensemble import IsolationForest

        if int(self.n_estimators) < 1 or int(self.max_samples) < 2:
            raise ParameterError("n_estimators must be >= 1 and max_samples >= 2")
        if not 0.0 < float(self.max_features) <= 1.0:
            raise ParameterError(f"max_features must be in (0, 1], got {self.max_features!r}")
        x = fill_missing(values)
        forest = IsolationForest(
            n_estimators=int(self.n_estimators),
            max_samples=min(int(self.max_samples), x.shape[0]),
            max_features=float(self.max_features),
            random_state=self.random_state,
        ).fit(x)
        self._flatten(forest)

    def _flatten(self, forest: Any) -> None:
        left, right, feature, split, leaf_depth, roots = [], [], [], [], [], []
        offset = 0
        for est, feats in zip(forest.estimators_, forest.estimators_features_, strict=True):
            tree = est.tree_
            n = tree.node_count
            is_leaf = tree.children_left == -1
            depth = np.zeros(n)
            for node in range(n):  # nodes are numbered parent-before-child
                if not is_leaf[node]:
                    depth[tree.children_left[node]] = depth[node] + 1
                    depth[tree.children_right[node]] = depth[node] + 1
            roots.append(offset)
            left.append(np.where(is_leaf, -1, tree.children_left + offset))
            right.append(np.where(is_leaf, -1, tree.children_right + offset))
            feature.append(np.where(is_leaf, 0, np.asarray(feats)[np.maximum(tree.feature, 0)]))
            split.append(tree.threshold)
            leaf_depth.append(np.where(is_leaf, depth + average_path_length(tree.n_node_samples), 0.0))
            offset += n
        self.left_ = np.concatenate(left).astype(np.int64)
        self.right_ = np.concatenate(right).astype(np.int64)
        self.feature_ = np.concatenate(feature).astype(np.int64)
        self.split_ = np.concatenate(split).astype(np.float64)
        self.leaf_path_ = np.concatenate(leaf_depth)
        self.roots_ = np.asarray(roots, dtype=np.int64)
        self.max_samples_ = int(forest.max_samples_)

    def _path_lengths(self, x: np.ndarray) -> np.ndarray:
        # the trees split float32 copies of the data; compare the same way to land in the same leaves
        x = x.astype(np.float32).astype(np.float64)
        node = np.broadcast_to(self.roots_, (x.shape[0], len(self.roots_))).copy()
        rows = np.arange(x.shape[0])[:, None]
        while True:
            inner = self.left_[node] >= 0
            if not inner.any():
                break
            go_left = x[rows, self.feature_[node]] <= self.split_[node]
            child = np.where(go_left, self.left_[node], self.right_[node])
            node = np.where(inner, child, node)
        return self.leaf_path_[node].mean(axis=1)

    def min_fit_rows(self) -> int:
        return 2  # a path length is only measured against trees of two points or more

    def stream_geometry(self) -> StreamGeometry:
        return StreamGeometry()  # one row at a time (missing cells carry the last value forward)

    def _score(
        self, values: np.ndarray, offset: int = 0, memo: dict | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        x = fill_missing(values)
        c = average_path_length(np.array([self.max_samples_]))[0]
        chunk = 8192
        paths = np.concatenate([self._path_lengths(x[i : i + chunk]) for i in range(0, len(x), chunk)])
        return np.power(2.0, -paths / c), np.abs(x)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {
            k: getattr(self, f"{k}_") for k in ("left", "right", "feature", "split", "leaf_path", "roots")
        }
        return {"max_samples": self.max_samples_}, arrays

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        for key in ("left", "right", "feature", "split", "leaf_path", "roots"):
            setattr(self, f"{key}_", arrays[key])
        self.max_samples_ = state["max_samples"]

    def _check_state(self) -> None:
        from tsdiff.checks import check_array, check_int, check_trees

        check_trees("forest", self.left_, self.right_, self.roots_)
        n = len(self.left_)
        check_array("feature", self.feature_, (n,), integer=True, low=0, high=self.n_features_in_ - 1)
        check_array("split", self.split_, (n,))
        check_array("leaf_path", self.leaf_path_, (n,), low=0.0)
        check_int("max_samples", self.max_samples_, 2, 10**9)  # one sample: no path to compare with
