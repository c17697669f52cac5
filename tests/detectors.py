"""Every detector class of tsdiff, in a tiny configuration for fast tests.

A new detector joins the contract suite by adding one entry here.
"""

from __future__ import annotations

from collections.abc import Callable

from tsdiff.baselines import IsolationForestDetector, KMeansDetector, PCADetector, RandomDetector

DETECTORS: dict[str, Callable[..., object]] = {
    "pca": lambda **kw: PCADetector(n_components=2, **kw),
    "iforest": lambda **kw: IsolationForestDetector(n_estimators=20, max_samples=64, **kw),
    "kmeans": lambda **kw: KMeansDetector(window=10, n_clusters=4, **kw),
    "random": lambda **kw: RandomDetector(**kw),
}
#: detectors whose scores carry information (the random score is excluded from accuracy checks)
INFORMATIVE = [name for name in DETECTORS if name != "random"]
