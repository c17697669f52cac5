"""Shared fixtures: small synthetic frames and the location of the optional shared datasets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TSDIFF_SHARED", ROOT.parent / "shared"))
SHARED_DATASETS = SHARED / "datasets"

needs_shared = pytest.mark.skipif(
    not SHARED_DATASETS.is_dir(), reason=f"shared datasets not found at {SHARED_DATASETS}"
)


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


@pytest.fixture
def train_frame() -> pd.DataFrame:
    return make_frame(300, 4, seed=0)


@pytest.fixture
def test_frame() -> pd.DataFrame:
    df = make_frame(200, 4, seed=1)
    df.index = df.index + pd.Timedelta(minutes=300)
    df.iloc[120:126, 2] += 8.0  # an obvious anomaly in metric m2
    return df
