"""Events and the DetectionResult container."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tsdiff.results import DetectionResult, find_events, run_slices
from tsdiff.segmentation import SegmentRules


def test_run_slices():
    assert run_slices(np.array([0, 1, 1, 0, 1])) == [slice(1, 3), slice(4, 5)]
    assert run_slices(np.array([1, 1])) == [slice(0, 2)]
    assert run_slices(np.zeros(3)) == []


def test_events_rank_metrics_and_use_index_labels():
    idx = pd.date_range("2024-01-01", periods=8, freq="min")
    scores = pd.Series([0, 5, 9, 1, 0, 0, 3, 0], index=idx, dtype=float)
    labels = (scores > 2).astype(np.int8)
    fs = pd.DataFrame(
        {"cpu": [0, 1, 1, 0, 0, 0, 9, 0], "mem": [0, 4, 8, 0, 0, 0, 1, 0]}, index=idx, dtype=float
    )
    events = find_events(scores, labels, fs, top_k=1, rules=SegmentRules(merge_gap=0, min_rows=1))
    assert len(events) == 2
    first = events.iloc[0]
    assert first["start"] == idx[1] and first["end"] == idx[2] and first["peak"] == idx[2]
    assert first["n_rows"] == 2 and first["peak_score"] == 9 and first["top_metrics"] == ["mem"]
    assert events.iloc[1]["top_metrics"] == ["cpu"] and events.iloc[1]["root_causes"] == []
    assert first["affected"] == ["mem", "cpu"]  # every metric, without a causal model by feature score
    # the rule of time alone would merge the two runs (3 rows apart); their blame differs: two events
    assert (
        len(
            find_events(scores, labels, fs, rules=SegmentRules(merge_gap=3, min_rows=1, bridge=0, near_top=1))
        )
        == 2
    )
    assert len(find_events(scores, labels, fs, rules=SegmentRules.time_only(3, 1))) == 1


def test_to_frame_and_repr():
    idx = pd.RangeIndex(3)
    s = pd.Series([0.1, 0.9, 0.2], index=idx)
    labels = pd.Series([0, 1, 0], index=idx, dtype=np.int8)
    fs = pd.DataFrame({"a": [1.0, 2.0, 3.0]}, index=idx)
    result = DetectionResult(s, labels, 0.5, "pot", fs, find_events(s, labels, fs), {"causal": s * 2})
    frame = result.to_frame()
    assert list(frame.columns) == ["score", "label", "score_causal", "score:a"]
    assert "1 anomalous" in repr(result) and "pot" in repr(result)
