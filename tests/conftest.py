"""Fixtures shared by every test module (helpers to import live in tests/helpers.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.helpers import make_frame


@pytest.fixture
def train_frame() -> pd.DataFrame:
    return make_frame(300, 4, seed=0)


@pytest.fixture
def test_frame() -> pd.DataFrame:
    df = make_frame(200, 4, seed=1)
    df.index = df.index + pd.Timedelta(minutes=300)
    df.iloc[120:126, 2] += 8.0  # an obvious anomaly in metric m2
    return df
