"""Warm refits: a fitted model learns again from recent rows for a fraction of a full fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tsdiff
from tsdiff import errors
from tsdiff.cli import EXIT_OK, main
from tsdiff.registry import build

from tests.helpers import make_frame


@pytest.fixture(scope="module")
def shifted():
    """Normal rows, and later rows of the same process at another level and spread."""
    old = make_frame(600, 4, seed=0)
    new = make_frame(600, 4, seed=1) * 1.5 + 3.0
    new.index = new.index + pd.Timedelta(days=1)
    test = make_frame(200, 4, seed=2) * 1.5 + 3.0
    test.index = test.index + pd.Timedelta(days=2)
    test.iloc[120:126, 1] += 12.0
    return old, new, test


def test_a_causal_refit_on_the_same_rows_is_the_full_fit(shifted):
    old, _, test = shifted
    fitted = build("causal", "default", random_state=0).fit(old)
    again = build("causal", "default", random_state=0).fit(old).refit(old)
    np.testing.assert_allclose(again.score(test), fitted.score(test), rtol=1e-9, atol=1e-12)
    assert again.discovery_seconds_ == 0.0  # the graph was kept, not discovered again
    assert again.graph_.edges.equals(fitted.graph_.edges)


@pytest.mark.parametrize("name", ["causal", "imdiffusion", "hybrid", "pca"])
def test_a_refit_follows_new_data_and_still_finds_the_anomaly(name, shifted):
    old, new, test = shifted
    det = build(name, "tiny", random_state=0).fit(old)
    stale = det.predict(test.iloc[:100]).mean()
    det.refit(new, fraction=0.5)
    assert det.predict(test.iloc[:100]).mean() <= stale  # the new level is normal now
    assert det.predict(test.iloc[:100]).mean() < 0.1
    scores = det.score(test)
    assert scores.iloc[120:126].mean() > scores.iloc[:100].quantile(0.99)
    if name == "imdiffusion":
        assert det.history_.steps <= np.ceil(0.5 * det.config_.train_steps(det.n_train_rows_))
    if name == "hybrid":
        assert set(det.weights_) == {"diffusion", "causal"}


def test_refit_keeps_the_columns_and_checks_its_fraction(shifted):
    old, new, _ = shifted
    det = build("pca", "tiny").fit(old)
    with pytest.raises(errors.ColumnMismatchError):
        det.refit(new.drop(columns=["m1"]))
    with pytest.raises(errors.ParameterError, match="fraction"):
        det.refit(new, fraction=0.0)
    with pytest.raises(errors.NotFittedError):
        build("pca", "tiny").refit(new)


def test_fit_warm_start_refits_a_saved_model(shifted, tmp_path):
    old, new, test = shifted
    old.to_csv(tmp_path / "old.csv")
    new.to_csv(tmp_path / "new.csv")
    assert (
        main(["-q", "fit", str(tmp_path / "old.csv"), "--detector", "causal", "-o", str(tmp_path / "a")]) == 0
    )
    args = [
        "-q",
        "fit",
        str(tmp_path / "new.csv"),
        "--warm-start",
        str(tmp_path / "a"),
        "-o",
        str(tmp_path / "b"),
    ]
    assert main(args) == EXIT_OK
    warm, cold = tsdiff.load(tmp_path / "b"), tsdiff.load(tmp_path / "a")
    assert type(warm) is type(cold) and warm.graph_.edges[["cause", "effect"]].equals(
        cold.graph_.edges[["cause", "effect"]]
    )
    assert warm.predict(test.iloc[:100]).mean() < cold.predict(test.iloc[:100]).mean()
