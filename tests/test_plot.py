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


def test_one_row_events_at_38_metrics_are_visible_and_labelled(tmp_path):
    """The figure a 38-metric server gives: the top metrics only, a one-row detection as wide as a
    row (not a zero-width line) and dotted, the peak's label inside the figure, an x label, and a
    title that counts in the singular."""
    import numpy as np
    from matplotlib.patches import Polygon, Rectangle

    from tsdiff.baselines import PCADetector

    train, test = make_frame(600, 38, seed=0), make_frame(400, 38, seed=1)
    test.iloc[200, 7] += 40.0  # one row, one metric
    det = PCADetector(n_components=5, risk=1e-4).fit(train)
    result = det.detect(test)
    flagged = np.flatnonzero(result.labels.to_numpy())
    assert 200 in flagged
    fig = plot_detection(test, result, path=tmp_path / "one.png")
    assert len(fig.axes) == 5 and fig.get_size_inches()[1] < 12  # 4 metrics, not 38 panels
    assert fig.axes[0].get_ylabel() == "m7"
    score_ax = fig.axes[-1]
    spans = [p for p in score_ax.patches if isinstance(p, (Polygon, Rectangle))]
    widths = [np.ptp(p.get_xy()[:, 0]) if isinstance(p, Polygon) else p.get_width() for p in spans]
    assert spans and min(widths) > 0  # each detection is as wide as its rows
    dots = [line for line in score_ax.get_lines() if line.get_label() == "flagged row"]
    assert len(dots) == 1 and len(dots[0].get_xdata()) == len(flagged)
    peak = float(result.scores.iloc[200])
    assert score_ax.get_ylim()[1] > peak  # room for the label above the highest peak
    assert score_ax.get_xlabel() in ("time", "timestamp")
    n_events = len(result.events)
    title = fig.axes[0].get_title()
    assert title.startswith(f"{n_events} event{'s' if n_events != 1 else ''},")
    assert (tmp_path / "one.png").stat().st_size > 10_000
