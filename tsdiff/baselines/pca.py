"""PCA reconstruction: distance of each row from the subspace that holds most training variance."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from tsdiff.base import BaseDetector, StreamGeometry
from tsdiff.errors import ParameterError
from tsdiff.frame import fill_missing


def components_kept(var: np.ndarray, n_components: float) -> int:
    """Leading components to keep, given their variances (decreasing): ``n_components`` itself
    when an int, or the fewest that explain that fraction of the total when a float in (0, 1),
    but never every direction: a residual must remain to score (uncorrelated metrics, or a single
    one, would otherwise leave none, and every row would score 0)."""
    n = n_components
    if isinstance(n, (int, np.integer)) and not isinstance(n, bool):
        if not 1 <= n <= len(var):
            raise ParameterError(f"n_components must be in [1, {len(var)}], got {n}")
        if n == len(var):
            warnings.warn(
                f"n_components={n} keeps every direction of {n} metrics: no residual remains and "
                "every row scores 0; keep fewer, or a fraction of the variance",
                UserWarning,
                stacklevel=4,
            )
        return int(n)
    if not 0.0 < float(n) < 1.0:
        raise ParameterError(f"n_components must be an int or a float in (0, 1), got {n!r}")
    total = var.sum()
    if total <= 0:
        return min(1, len(var) - 1)
    return int(min(len(var) - 1, np.searchsorted(np.cumsum(var) / total, float(n)) + 1))


class PCADetector(BaseDetector):
    """Score = squared reconstruction error from the leading principal components (the Q statistic).

    Rows that follow the correlations between metrics seen in training lie close to the principal
    subspace; a row that breaks them leaves a large residual. The per-metric residual is the
    feature score. Missing cells are carried forward (see :func:`tsdiff.frame.fill_missing`).

    Parameters
    ----------
    n_components
        Components kept: an int, or a float in (0, 1) for the smallest number that explains that
        fraction of the training variance.
    threshold, risk
        Label threshold, see :class:`~tsdiff.base.BaseDetector`.
    random_state
        Unused (PCA is deterministic); accepted so every detector takes it.
    """

    def __init__(
        self,
        n_components: float = 0.9,
        threshold: str = "pot",
        risk: float = 1e-3,
        random_state: int | None = None,
    ) -> None:
        self.n_components = n_components
        self.threshold = threshold
        self.risk = risk
        self.random_state = random_state

    def _fit(self, values: np.ndarray) -> None:
        x = fill_missing(values)
        self.mean_ = x.mean(axis=0)
        _, sing, vt = np.linalg.svd(x - self.mean_, full_matrices=False)
        var = sing**2
        k = components_kept(var, self.n_components)
        self.components_ = vt[:k]
        total = var.sum()
        self.explained_variance_ratio_ = var[:k] / total if total > 0 else np.zeros(k)

    def stream_geometry(self) -> StreamGeometry:
        return StreamGeometry()  # one row at a time (missing cells carry the last value forward)

    def _score(
        self, values: np.ndarray, offset: int = 0, memo: dict | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        centred = fill_missing(values) - self.mean_
        residual = centred - (centred @ self.components_.T) @ self.components_
        feature = residual**2
        return feature.sum(axis=1), feature

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {
            "mean": self.mean_,
            "components": self.components_,
            "explained_variance_ratio": self.explained_variance_ratio_,
        }

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.mean_ = arrays["mean"]
        self.components_ = arrays["components"]
        self.explained_variance_ratio_ = arrays["explained_variance_ratio"]

    def _check_state(self) -> None:
        from tsdiff.checks import check_array

        k = self.n_features_in_
        check_array("mean", self.mean_, (k,))
        c = check_array("components", self.components_, (None, k)).shape[0]
        check_array("explained_variance_ratio", self.explained_variance_ratio_, (c,))
