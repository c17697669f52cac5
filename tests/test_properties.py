"""Property-based checks: random and malformed input always gives a typed error or a right-shaped result."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsdiff import errors
from tsdiff.baselines import KMeansDetector, PCADetector
from tsdiff.causal import CausalDetector
from tsdiff.cli import EXIT_BAD_INPUT, EXIT_OK, main
from tsdiff.stream import StreamScorer

from tests.helpers import check_scores

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

cell = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(-1e3, 1e3),
    st.integers(-5, 5),
)


@st.composite
def frames(draw, min_rows=0, max_rows=60):
    n_rows = draw(st.integers(min_rows, max_rows))
    n_cols = draw(st.integers(0, 4))
    names = draw(st.lists(st.sampled_from(["a", "b", "c", "d", "e", 0, 1]), min_size=n_cols, max_size=n_cols))
    data = {}
    columns = []
    for j, name in enumerate(names):
        kind = draw(st.sampled_from(["num", "num", "num", "text", "nan"]))
        if kind == "text":
            values = draw(st.lists(st.sampled_from(["x", "1.5", ""]), min_size=n_rows, max_size=n_rows))
        elif kind == "nan":
            values = [np.nan] * n_rows
        else:
            values = draw(st.lists(cell, min_size=n_rows, max_size=n_rows))
        data[j] = values
        columns.append(name)
    frame = pd.DataFrame(data, index=_index(draw, n_rows))
    frame.columns = columns
    return frame


def _index(draw, n_rows):
    kind = draw(st.sampled_from(["range", "time", "shuffled", "duplicated"]))
    times = pd.date_range("2024-01-01", periods=n_rows, freq="min")
    if kind == "range":
        return pd.RangeIndex(n_rows)
    if kind == "time" or n_rows < 2:
        return times
    if kind == "shuffled":
        return times[draw(st.permutations(list(range(n_rows))))]
    return times[[0, *range(n_rows - 1)]]


def good_train(n=120, k=3, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    data = {name: np.sin(t / (5 + j)) + 0.1 * rng.standard_normal(n) for j, name in enumerate("abc"[:k])}
    return pd.DataFrame(data, index=pd.date_range("2024-01-01", periods=n, freq="min"))


DETECTORS = {
    "pca": lambda: PCADetector(n_components=2, random_state=0),
    "kmeans": lambda: KMeansDetector(window=5, n_clusters=3, random_state=0),
    "causal": lambda: CausalDetector(max_lag=1, max_rows=200, smooth=4, random_state=0),
}


@pytest.mark.parametrize("name", list(DETECTORS))
@SETTINGS
@given(frame=frames(min_rows=0, max_rows=80))
def test_fit_gives_typed_error_or_a_working_model(name, frame):
    det = DETECTORS[name]()
    try:
        det.fit(frame)
    except errors.TsdiffError:
        return
    check_scores(det.score(frame), frame)


@pytest.mark.parametrize("name", list(DETECTORS))
@SETTINGS
@given(frame=frames(min_rows=0, max_rows=40))
def test_score_gives_typed_error_or_one_finite_score_per_row(name, frame):
    det = _fitted(name)
    try:
        scores = det.score(frame)
    except errors.TsdiffError:
        return
    check_scores(scores, frame)
    assert list(frame.columns) != [] and set(frame.columns) == set(det.feature_names_in_)


_CACHE: dict[str, object] = {}


def _fitted(name):
    if name not in _CACHE:
        _CACHE[name] = DETECTORS[name]().fit(good_train())
    return _CACHE[name]


@SETTINGS
@given(
    chunks=st.lists(st.tuples(st.integers(1, 6), st.integers(-3, 3), st.booleans()), min_size=1, max_size=12)
)
def test_stream_never_crashes_and_never_repeats_a_final_row(chunks):
    det = _fitted("causal")
    live = good_train(200, seed=1)
    live.index = live.index + pd.Timedelta(hours=5)
    scorer = StreamScorer(det)
    pos, seen = 0, []
    for size, jump, holes in chunks:
        start = max(0, pos + jump)  # negative jumps resend old rows (late / duplicate)
        chunk = live.iloc[start : start + size].copy()
        if holes and len(chunk):
            chunk.iloc[0, 0] = np.nan
        try:
            out = scorer.update(chunk)
        except errors.TsdiffError:
            continue
        pos = max(pos, start + size)
        seen.extend(out.index[out["final"].astype(bool)])
        assert np.isfinite(out["score"].to_numpy(dtype=float)).all()
    seen.extend(scorer.flush().index)
    assert len(seen) == len(set(seen))
    assert pd.Index(seen).is_monotonic_increasing


@SETTINGS
@given(text=st.lists(st.sampled_from([*'ab,1.\n-e"x;', "nan", "inf", "time"]), max_size=80).map("".join))
def test_cli_on_any_csv_exits_0_or_2_never_an_internal_error(text, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    path = folder / "data.csv"
    path.write_text(text)
    code = main(["fit", str(path), "-o", str(folder / "model"), "--detector", "pca"])
    assert code in (EXIT_OK, EXIT_BAD_INPUT)


@pytest.mark.parametrize(
    "damage",
    ["config", "arrays", "class", "nested"],
)
def test_corrupt_or_foreign_model_directories_are_refused(damage, tmp_path):
    import json

    import tsdiff
    from tsdiff.hybrid import HybridDetector

    path = tmp_path / "m"
    if damage == "nested":
        det = HybridDetector(
            diffusion=tsdiff.ImDiffusionDetector(
                window=8,
                grating_segments=2,
                channels=4,
                layers=1,
                heads=1,
                patch=2,
                max_steps=5,
                verbose=False,
            ),
            causal=CausalDetector(max_lag=1, max_rows=200),
            random_state=0,
            verbose=False,
        ).fit(good_train())
        det.save(path)
        (path / "causal" / "arrays.safetensors").write_bytes(b"not a tensor file")
    else:
        _fitted("pca").save(path)
        if damage == "config":
            (path / "config.json").write_text("{ not json")
        elif damage == "arrays":
            (path / "arrays.safetensors").write_bytes(b"\x00" * 10)
        else:
            config = json.loads((path / "config.json").read_text())
            config["class"] = "os.system"
            (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(errors.ModelFormatError):
        tsdiff.load(path)
