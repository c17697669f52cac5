"""What tests share besides fixtures: small synthetic frames, and the one skip rule for shared data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tsdiff.datasets.paths import default_root_candidates


def make_frame(n_rows: int = 300, n_metrics: int = 4, seed: int = 0, index: str = "datetime") -> pd.DataFrame:
    """Correlated seasonal metrics: metric j is a phase-shifted sine of one latent cycle plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_rows)
    base = np.sin(2 * np.pi * t / 50)
    cols = {
        f"m{j}": (j + 1) * base + 0.5 * np.cos(2 * np.pi * t / 50 + j) + 0.1 * rng.standard_normal(n_rows)
        for j in range(n_metrics)
    }
    if index == "datetime":
        idx = pd.date_range("2024-01-01", periods=n_rows, freq="min", name="time")
    elif index == "int":
        idx = pd.Index(np.arange(1000, 1000 + 2 * n_rows, 2), name="step")
    else:
        idx = pd.RangeIndex(n_rows)
    return pd.DataFrame(cols, index=idx)


def has_shared(name: str) -> bool:
    """Whether the shared dataset ``name`` (``SMD``, ``SKAB``, ``MSL``) is where loaders look for it
    (``$TSDIFF_DATA/<name>`` or ``../shared/datasets/<name>`` beside the checkout)."""
    return any(p.is_dir() for p in default_root_candidates(name))


def needs_shared(*names: str) -> Callable[[Any], Any]:
    """Mark a test ``shared_data`` and skip it unless every one of the shared datasets is present."""
    missing = [n for n in names if not has_shared(n)]
    skip = pytest.mark.skipif(bool(missing), reason=f"shared datasets not found: {', '.join(missing)}")

    def mark(test: Any) -> Any:
        return pytest.mark.shared_data(skip(test))

    return mark


def check_scores(scores: pd.Series, frame: pd.DataFrame) -> None:
    """Scores as every detector must give them: a Series on ``frame``'s index, all finite."""
    assert isinstance(scores, pd.Series)
    assert scores.index.equals(frame.index)
    assert np.isfinite(scores.to_numpy()).all()
