"""A random score: the floor every real detector must clear."""

from __future__ import annotations

import numpy as np

from tsdiff.base import BaseDetector


class RandomDetector(BaseDetector):
    """Uniform random scores, the same for the same ``random_state`` and input length.

    Its metrics show what chance alone achieves on a dataset (VUS-PR of a random score is far from
    zero when anomalies are long), so every benchmark reports it beside the real detectors.

    Parameters
    ----------
    threshold, risk
        Label threshold, see :class:`~tsdiff.base.BaseDetector`.
    random_state
        Seed of the scores.
    """

    def __init__(self, threshold: str = "pot", risk: float = 1e-3, random_state: int | None = None) -> None:
        self.threshold = threshold
        self.risk = risk
        self.random_state = random_state

    def _fit(self, values: np.ndarray) -> None:
        pass

    def _score(
        self, values: np.ndarray, offset: int = 0, memo: dict | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        feature = self._rng().random(values.shape)
        return feature.mean(axis=1), feature
