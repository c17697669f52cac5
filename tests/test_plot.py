"""Plots: a figure with one panel per metric plus the score, events shaded; the causal graph."""

from __future__ import annotations

import pytest

from tsdiff import errors
from tsdiff.plot import plot_detection, plot_graph

from tests.detectors import DETECTORS
from tests.helpers import make_frame


@pytest.fixture(scope="module")
def hybrid_result():
    det = DETECTORS["hybrid"](random_state=0).fit(make_frame(300, 4, seed=0))
    test = make_frame(200, 4, seed=1)
    test.iloc[120:126, 2] += 8.0
    return det, test, det.detect(test)


def test_plot_detection_draws_metrics_scores_and_events(hybrid_result, tmp_path):
    _, test, result = hybrid_result
    labels = (test.index >= test.index[120]) & (test.index <= test.index[125])
    fig = plot_detection(test, result, metrics=2, true_labels=labels.astype(int), path=tmp_path / "r.png")
    assert len(fig.axes) == 3  # two metrics and the score
    assert fig.axes[0].get_ylabel() == "m2"  # the metric the events blame comes first
    legend = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    assert {"score", "threshold", "diffusion (calibrated)", "causal (calibrated)"} <= set(legend)
    assert (tmp_path / "r.png").stat().st_size > 10_000
    with pytest.raises(errors.ParameterError):
        plot_detection(test.iloc[:50], result)
    with pytest.raises(errors.ParameterError):
        plot_detection(test, result, metrics=["nope"])


def test_plot_graph_accepts_a_detector_or_a_graph(hybrid_result, tmp_path):
    det, _, _ = hybrid_result
    fig = plot_graph(det, path=tmp_path / "g.svg")
    assert (tmp_path / "g.svg").read_text().startswith("<?xml")
    assert plot_graph(det.graph_) is not fig


def test_metric_names_are_drawn_literally(tmp_path):
    """Prometheus names hold ``$`` (a Windows share ``C$``): matplotlib must not read math text."""
    from tsdiff import CausalDetector

    names = ['smb{share="C$",other="D$"}', "cpu_$total$", "m$", "plain"]
    train = make_frame(300, 4, seed=0).set_axis(names, axis=1)
    test = make_frame(200, 4, seed=1).set_axis(names, axis=1)
    test.iloc[120:126, 0] += 8.0
    det = CausalDetector(random_state=0).fit(train)
    result = det.detect(test)
    fig = plot_detection(test, result, metrics=4, path=tmp_path / "d.png")
    assert fig.axes[0].get_ylabel().replace("\\$", "$") in names
    plot_graph(det, path=tmp_path / "g.png")
    ax = result.explain(0).plot()
    ax.figure.savefig(tmp_path / "e.png")
    for png in ("d.png", "g.png", "e.png"):
        assert (tmp_path / png).stat().st_size > 5_000
