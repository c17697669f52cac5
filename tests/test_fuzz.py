"""A fuzz suite over every registered detector: exotic columns, extreme values, odd indexes.

Every generated input must give a typed tsdiff error, or one finite score per row; never another
exception, a non-finite score or a wrong length. Each detector is fitted once (tiny preset) and
scored on 100 generated inputs; with the fit fuzz below, well over 1,000 inputs per run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsdiff import errors

from tests.detectors import DETECTORS
from tests.helpers import check_scores

NAMES = ["a", "b", "c"]
FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,  # the same inputs on every run: a failure is reproducible
)
EXTREME = [0.0, -0.0, 1e-300, 1e99, -1e99, 1e101, 1e200, -1e308, 1.7e308, np.inf, -np.inf, np.nan]


def _column(draw, kind: str, n: int, rng: np.random.Generator) -> pd.Series:
    base = rng.standard_normal(n)
    if kind == "float":
        values = base.copy()
        for i in draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=3)) if n else []:
            values[i] = draw(st.sampled_from(EXTREME))
        return pd.Series(values)
    if kind == "int":
        return pd.Series((base * 100).astype(np.int64))
    if kind == "bool":
        return pd.Series(base > 0)
    if kind == "constant":
        return pd.Series(np.full(n, draw(st.sampled_from([0.0, 1.0, 1e99, -5.0]))))
    if kind == "nan":
        return pd.Series(np.where(rng.random(n) < draw(st.sampled_from([0.3, 1.0])), np.nan, base))
    if kind == "object":
        cells = draw(st.sampled_from([["1.5", "2"], [1, 2.5], ["x", 1.0], [10**400, 1], [None, 3]]))
        return pd.Series([cells[i % len(cells)] for i in range(n)], dtype=object)
    if kind == "datetime":
        return pd.Series(pd.date_range("2024-01-01", periods=n, freq="min"))
    if kind == "period":
        return pd.Series(pd.period_range("2024-01", periods=n, freq="D"))
    if kind == "category":
        return pd.Series(pd.Categorical(["x", "y"] * (n // 2) + ["x"] * (n % 2)))
    if kind == "complex":
        return pd.Series(base + 1j)
    raise AssertionError(kind)


def _index(draw, n: int) -> pd.Index:
    kind = draw(
        st.sampled_from(["range", "time", "zoned", "mixed zones", "text times", "duplicated", "shuffled"])
    )
    times = pd.date_range("2024-03-31 00:00", periods=n, freq="min")
    if kind == "range" or n == 0:
        return pd.RangeIndex(n)
    if kind == "time":
        return times
    if kind == "zoned":
        return times.tz_localize("Europe/Berlin", ambiguous="NaT", nonexistent="shift_forward")
    if kind == "mixed zones":
        return pd.Index([t.tz_localize("UTC") if i % 2 else t for i, t in enumerate(times)], dtype=object)
    if kind == "text times":
        return pd.Index([str(t) for t in times])
    if kind == "duplicated":
        return times[[0, *range(n - 1)]]
    return times[draw(st.permutations(list(range(n))))]


@st.composite
def exotic_frames(draw):
    n = draw(st.sampled_from([0, 1, 2, 30, 60]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    kinds = ["float", "float", "float", "int", "bool", "constant", "nan", "object", "datetime", "period",
             "category", "complex"]  # fmt: skip
    columns = draw(
        st.one_of(
            st.just(NAMES),
            st.permutations(NAMES),
            st.lists(st.sampled_from([*NAMES, "d", 0, 1, None, np.nan, ("a", "x")]), min_size=0, max_size=4),
        )
    )
    data = {i: _column(draw, draw(st.sampled_from(kinds)), n, rng) for i in range(len(columns))}
    frame = pd.DataFrame(data)
    frame.index = _index(draw, n)
    if columns and all(isinstance(c, tuple) for c in columns):
        frame.columns = pd.MultiIndex.from_tuples(columns)
    else:
        frame.columns = pd.Index(columns, dtype=object)
    if draw(st.integers(0, 7)) == 0 and len(columns) and not isinstance(frame.columns, pd.MultiIndex):
        frame.columns = pd.MultiIndex.from_tuples([(str(c), "x") for c in columns])
    return frame


_FITTED: dict[str, object] = {}


def _fitted(name: str):
    if name not in _FITTED:
        rng = np.random.default_rng(0)
        t = np.arange(300)
        train = pd.DataFrame(
            {c: np.sin(t / (5 + j)) + 0.1 * rng.standard_normal(300) for j, c in enumerate(NAMES)},
            index=pd.date_range("2024-01-01", periods=300, freq="min"),
        )
        _FITTED[name] = DETECTORS[name](random_state=0).fit(train)
    return _FITTED[name]


@pytest.mark.parametrize("name", sorted(DETECTORS))
@FUZZ
@given(frame=exotic_frames())
def test_scoring_any_input_gives_a_typed_error_or_finite_scores(name, frame):
    det = _fitted(name)
    try:
        scores = det.score(frame)
    except errors.TsdiffError:
        return
    check_scores(scores, frame)


@pytest.mark.parametrize("name", ["pca", "kmeans", "iforest", "causal"])
@settings(FUZZ, max_examples=40)
@given(frame=exotic_frames())
def test_fitting_any_input_gives_a_typed_error_or_a_working_model(name, frame):
    det = DETECTORS[name](random_state=0)
    try:
        det.fit(frame)
    except errors.TsdiffError:
        return
    check_scores(det.score(frame), frame)
