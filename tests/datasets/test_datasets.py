"""Tests of tsdiff.datasets: synthetic generator, bundled SMD, staged shared data, and public formats."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tsdiff.datasets as tds
from tsdiff.datasets import (
    ANOMALY_KINDS,
    Dataset,
    labels_from_segments,
    load_asd,
    load_bundled,
    load_demo,
    load_msl,
    load_psm,
    load_skab,
    load_smap,
    load_smd,
    load_tsbad,
    make_synthetic,
    segments,
    skab_experiments,
    telemanom_channels,
)
from tsdiff.datasets.bundled import bundled_smd_root
from tsdiff.datasets.synthetic import ar1_filter
from tsdiff.errors import DatasetError, ParameterError

from tests.helpers import needs_shared


# --------------------------------------------------------------------------------------------- base
def test_segments_and_labels_round_trip():
    labels = np.array([0, 1, 1, 0, 0, 1, 0, 1])
    assert segments(labels) == [(1, 3), (5, 6), (7, 8)]
    assert segments(pd.Series(labels)) == [(1, 3), (5, 6), (7, 8)]
    assert segments(np.zeros(4)) == []
    np.testing.assert_array_equal(labels_from_segments(8, segments(labels)), labels)


def test_dataset_checks_alignment_and_values():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    Dataset("ok", frame, frame, pd.Series([0, 1, 0]))
    with pytest.raises(DatasetError, match="aligned"):
        Dataset("bad", frame, frame, pd.Series([0, 1]))
    with pytest.raises(DatasetError, match="0 or 1"):
        Dataset("bad", frame, frame, pd.Series([0, 2, 0]))
    with pytest.raises(DatasetError, match="columns differ"):
        Dataset("bad", frame, frame.rename(columns={"a": "b"}), pd.Series([0, 1, 0]))
    ds = Dataset("ok", frame, frame, pd.Series([0.0, 1.0, 0.0]))
    assert ds.labels.dtype == np.int64 and ds.labels.name == "label"
    assert "anomaly ratio 33.33%" in repr(ds)
    assert ds.summary()["segments"] == 1


def test_import_does_not_load_torch():
    code = "import sys, tsdiff.datasets; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ---------------------------------------------------------------------------------------- synthetic
def _clean_and_dirty(seed: int, **kw):
    dirty = make_synthetic(6, 2400, seed, n_anomalies=8, **kw)
    clean = make_synthetic(6, 2400, seed, n_anomalies=0, **kw)
    return clean, dirty


def _descendants(graph: pd.DataFrame, metric: str) -> set[str]:
    edges = graph[~graph["self_loop"]]
    out, todo = set(), [metric]
    while todo:
        for child in edges.loc[edges["cause"] == todo.pop(), "effect"]:
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def test_synthetic_shapes_and_index():
    ds = make_synthetic(5, 1200, 0, train_fraction=0.25, freq="5min")
    assert ds.train.shape == (300, 5) and ds.test.shape == (900, 5)
    assert list(ds.test.columns) == [f"x{j}" for j in range(5)]
    full = pd.concat([ds.train, ds.test]).index
    expected = pd.date_range("2024-01-01", periods=1200, freq="5min")
    assert full.equals(expected)
    assert ds.labels.index.equals(ds.test.index)
    assert np.isfinite(ds.test.to_numpy()).all()
    assert list(ds.root_causes.columns) == ["start", "end", "metrics", "kind"]


def test_synthetic_is_deterministic():
    a = make_synthetic(6, 1500, 7)
    b = make_synthetic(6, 1500, np.random.default_rng(7))
    c = make_synthetic(6, 1500, 8)
    pd.testing.assert_frame_equal(a.train, b.train)
    pd.testing.assert_frame_equal(a.test, b.test)
    pd.testing.assert_series_equal(a.labels, b.labels)
    pd.testing.assert_frame_equal(a.graph, b.graph)
    pd.testing.assert_frame_equal(a.root_causes, b.root_causes)
    assert not np.allclose(a.test.to_numpy(), c.test.to_numpy())


@pytest.mark.parametrize("seed", range(5))
def test_synthetic_graph_is_a_dag_with_marked_self_loops(seed):
    ds = make_synthetic(10, 600, seed, max_lag=2, n_anomalies=0)
    graph = ds.graph
    loops = graph[graph["self_loop"]]
    cross = graph[~graph["self_loop"]]
    assert (loops["cause"] == loops["effect"]).all() and (loops["lag"] >= 1).all()
    assert sorted(loops["cause"]) == sorted(ds.columns)
    assert (cross["cause"] != cross["effect"]).all()
    assert cross["lag"].between(0, 2).all() and len(cross) > 0
    # every edge follows the declared order, hence the lag-0 graph (and the summary graph) is acyclic
    position = {name: k for k, name in enumerate(ds.metadata["topological_order"])}
    assert all(position[c] < position[e] for c, e in zip(cross["cause"], cross["effect"], strict=True))
    # and independently: Kahn's algorithm empties the lag-0 graph
    lag0 = cross[cross["lag"] == 0]
    indegree = {m: int((lag0["effect"] == m).sum()) for m in ds.columns}
    ready = [m for m, d in indegree.items() if d == 0]
    seen = 0
    while ready:
        node = ready.pop()
        seen += 1
        for child in lag0.loc[lag0["cause"] == node, "effect"]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    assert seen == len(ds.columns)


def test_synthetic_labels_match_root_causes_and_kinds():
    ds = make_synthetic(8, 4000, 3, n_anomalies=8)
    spans = list(zip(ds.root_causes["start"], ds.root_causes["end"], strict=True))
    assert segments(ds.labels) == spans
    np.testing.assert_array_equal(ds.labels.to_numpy(), labels_from_segments(len(ds.test), spans))
    assert set(ds.root_causes["kind"]) == set(ANOMALY_KINDS)
    assert all(len(m) == 1 and m[0] in ds.columns for m in ds.root_causes["metrics"])
    only = make_synthetic(8, 4000, 3, n_anomalies=5, anomaly_kinds=("spike",))
    assert set(only.root_causes["kind"]) == {"spike"} and len(only.root_causes) == 5
    default = make_synthetic(random_state=0)
    assert set(default.root_causes["kind"]) == set(ANOMALY_KINDS)


@pytest.mark.parametrize("seed", range(4))
def test_synthetic_anomalies_change_root_and_descendants_only(seed):
    clean, dirty = _clean_and_dirty(seed)
    assert clean.labels.sum() == 0 and clean.root_causes.empty
    pd.testing.assert_frame_equal(clean.train, dirty.train)  # training part has no anomaly
    pd.testing.assert_frame_equal(clean.graph, dirty.graph)
    first = int(dirty.root_causes["start"].min())
    pd.testing.assert_frame_equal(clean.test.iloc[:first], dirty.test.iloc[:first])

    std = clean.train.std()
    diff = (dirty.test - clean.test).abs()
    touched = set()
    for row in dirty.root_causes.itertuples():
        metric = row.metrics[0]
        touched |= {metric} | _descendants(dirty.graph, metric)
        # the root-cause metric moves by at least ~one training std inside its segment
        assert diff[metric].iloc[row.start : row.end].max() > 0.5 * std[metric], row
        if row.kind in ("spike", "level_shift"):
            offset = diff[metric].iloc[row.start : row.end]
            assert (offset > 2.9 * std[metric]).all()
        # its descendants react during or shortly after the segment
        window = slice(row.start, row.end + 3 + 5)
        for child in _descendants(dirty.graph, metric):
            assert diff[child].iloc[window].max() > 0, (row, child)
    for metric in set(dirty.columns) - touched:
        assert diff[metric].max() == 0


def test_synthetic_spike_and_shift_propagate_to_children():
    found = 0
    for seed in range(6):
        clean, dirty = _clean_and_dirty(seed, anomaly_kinds=("spike", "level_shift"))
        edges = dirty.graph[~dirty.graph["self_loop"]]
        std = clean.train.std()
        for row in dirty.root_causes.itertuples():
            metric = row.metrics[0]
            for child, lag in edges.loc[edges["cause"] == metric, ["effect", "lag"]].itertuples(index=False):
                found += 1
                # the child follows the offset from `lag` rows after the segment start
                during = (dirty.test[child] - clean.test[child]).iloc[row.start + lag : row.end + lag + 5]
                assert during.abs().max() > 1e-3 * std[child]
    assert found > 5


def test_synthetic_parameter_errors():
    with pytest.raises(ParameterError):
        make_synthetic(0)
    with pytest.raises(ParameterError):
        make_synthetic(train_fraction=1.5)
    with pytest.raises(ParameterError):
        make_synthetic(anomaly_kinds=("bogus",))
    with pytest.raises(ParameterError, match="seasonality"):
        make_synthetic(seasonality=0.0, anomaly_kinds=("contextual",))
    with pytest.raises(ParameterError, match="no edge"):
        make_synthetic(1, 500, anomaly_kinds=("mechanism_break",))
    with pytest.raises(ParameterError, match="do not fit"):
        make_synthetic(4, 200, n_anomalies=50)
    with pytest.raises(ParameterError, match="freq"):
        make_synthetic(freq="not-a-freq")
    assert make_synthetic(1, 300, 0, anomaly_kinds=("spike",)).graph["self_loop"].all()
    # the default kinds shrink to what the model can show
    assert set(make_synthetic(1, 600, 0).root_causes["kind"]) == {"spike", "level_shift", "contextual"}
    assert "contextual" not in set(make_synthetic(4, 2000, 0, seasonality=0).root_causes["kind"])


def test_ar1_filter_matches_recursion():
    u = np.random.default_rng(0).standard_normal(500)
    for a in (0.3, 0.6, 0.85):
        expected, prev = np.empty_like(u), 0.0
        for t, value in enumerate(u):
            prev = a * prev + value
            expected[t] = prev
        np.testing.assert_allclose(ar1_filter(u, a), expected, rtol=1e-12, atol=1e-12)


def test_synthetic_is_fast():
    make_synthetic(3, 300, 0)
    start = time.perf_counter()
    ds = make_synthetic(20, 20_000, 0)
    assert time.perf_counter() - start < 3.0
    assert ds.test.shape == (10_000, 20)


# ------------------------------------------------------------------------------------------ bundled
def test_bundled_smd():
    ds = load_bundled()
    assert ds.name == "SMD/machine-1-2"
    assert list(ds.columns) == [f"m{k}" for k in range(1, 39)]
    assert ds.train.shape == (23694, 38) and ds.test.shape == (23694, 38)
    assert isinstance(ds.test.index, pd.RangeIndex) and isinstance(ds.train.index, pd.RangeIndex)
    assert int(ds.labels.sum()) == 542
    assert len(ds.root_causes) == 10
    assert ds.root_causes.iloc[0]["metrics"] == ["m9", "m10", "m11", "m13", "m15", "m18"]
    assert ds.root_causes.iloc[1].tolist() == [5486, 5491, ["m18"]]
    assert segments(ds.labels) == list(zip(ds.root_causes["start"], ds.root_causes["end"], strict=True))
    assert ds.metadata["interpretation_check"]["exact_matches"] == 10
    assert load_demo().test.equals(ds.test)


def test_bundled_files_are_byte_identical_to_their_checksums():
    import hashlib

    root = bundled_smd_root()
    for line in (root / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest, name


def test_bundled_missing_raises(monkeypatch, tmp_path):
    import tsdiff.datasets.bundled as bundled

    monkeypatch.setattr(bundled, "project_root", lambda: tmp_path)
    monkeypatch.setattr(bundled, "_packaged_root", lambda: None)
    with pytest.raises(DatasetError, match="bundled SMD data not found"):
        bundled.load_bundled()


def test_smd_plain_text_and_short_name(tmp_path):
    src = bundled_smd_root()
    for sub in ("train", "test"):
        (tmp_path / sub).mkdir()
        with gzip.open(src / sub / "machine-1-2.txt.gz", "rb") as fin:
            (tmp_path / sub / "machine-1-2.txt").write_bytes(fin.read())
    shutil.copytree(src / "test_label", tmp_path / "test_label")
    ds = load_smd("1-2", root=tmp_path)
    ref = load_bundled()
    pd.testing.assert_frame_equal(ds.test, ref.test)
    pd.testing.assert_series_equal(ds.labels, ref.labels)
    assert ds.root_causes is None  # no interpretation_label folder here


# ------------------------------------------------------------------------------------- shared data
SMD_ROWS = {  # machine: (train rows, test rows, anomalous test rows)
    "machine-1-2": (23694, 23694, 542),
    "machine-1-3": (23702, 23703, 817),
    "machine-1-4": (23706, 23707, 720),
    "machine-1-5": (23705, 23706, 100),
    "machine-1-6": (23688, 23689, 3708),
    "machine-1-7": (23697, 23697, 2398),
    "machine-1-8": (23698, 23699, 763),
}


@needs_shared("SMD")
@pytest.mark.parametrize("machine", sorted(SMD_ROWS))
def test_shared_smd_machines(machine):
    ds = load_smd(machine)
    n_train, n_test, n_anomalous = SMD_ROWS[machine]
    assert ds.train.shape == (n_train, 38) and ds.test.shape == (n_test, 38)
    assert int(ds.labels.sum()) == n_anomalous
    assert ds.root_causes is not None and len(ds.root_causes) > 0
    check = ds.metadata["interpretation_check"]
    if machine == "machine-1-3":  # the one known disagreement between interpretation_label and test_label
        assert check["segments_not_label_runs"] == [(22923, 23019)]
        assert check["label_runs_without_segment"] == [(18460, 18471), (22923, 23020)]
    else:
        assert check["exact_matches"] == check["segments"] == check["label_runs"]


@needs_shared("SKAB")
def test_shared_skab_all_experiments():
    names = skab_experiments()
    assert len(names) == 34
    assert names[:2] == ["valve1/0", "valve1/1"] and names[16] == "valve2/0" and names[-1] == "other/14"
    total = 0
    for name in names:
        if name == "other/2":
            with pytest.warns(UserWarning, match="labelled anomalous"):
                ds = load_skab(name)
            assert int(ds.train_labels.sum()) == 296
        else:
            ds = load_skab(name)
            assert int(ds.train_labels.sum()) == 0
        assert len(ds.train) == 400 and len(ds.test) > 0
        assert list(ds.test.columns) == list(ds.train.columns) and ds.test.shape[1] == 8
        for part in (ds.train, ds.test):
            assert isinstance(part.index, pd.DatetimeIndex)
            assert part.index.is_monotonic_increasing and part.index.is_unique
        assert ds.train.index[-1] < ds.test.index[0]
        assert len(segments(ds.labels)) == 1  # one contiguous anomaly per file
        full = load_skab(name, train="anomaly-free")
        assert len(full.train) == 9405 and full.train_labels is None
        assert len(full.test) == len(ds.train) + len(ds.test)
        total += int(full.labels.sum())
    assert total == 13067


@needs_shared("SKAB")
def test_shared_skab_arguments():
    ds = load_skab("valve1/0.csv", train_rows=100)
    assert len(ds.train) == 100 and len(ds.test) == 1047
    with pytest.raises(ParameterError):
        load_skab("valve3/0")
    with pytest.raises(ParameterError):
        load_skab("valve1/0", train="tail")
    with pytest.raises(ParameterError):
        load_skab("valve1/0", train_rows=5000)
    with pytest.raises(DatasetError, match=r"99\.csv"):
        load_skab("valve1/99")


# ------------------------------------------------------------------------------- fake public files
def _skab_file(path: Path, stamps: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["datetime;a;b;anomaly;changepoint"]
    lines += [f"{s};{k}.0;1.5;{int(k == 2)}.0;0.0" for k, s in enumerate(stamps)]
    path.write_text("\n".join(lines) + "\n")


def test_skab_refuses_duplicate_or_unsorted_timestamps(tmp_path):
    ok = [f"2020-01-01 00:00:0{k}" for k in range(6)]
    _skab_file(tmp_path / "valve1" / "0.csv", ok)
    ds = load_skab("valve1/0", root=tmp_path, train_rows=2)
    assert ds.labels.tolist() == [1, 0, 0, 0] and ds.test.shape == (4, 2)
    _skab_file(tmp_path / "valve1" / "1.csv", [*ok[:3], ok[2], *ok[4:]])
    with pytest.raises(DatasetError, match=r"1\.csv.*more than once"):
        load_skab("valve1/1", root=tmp_path, train_rows=2)
    _skab_file(tmp_path / "other" / "1.csv", [ok[0], ok[2], ok[1], *ok[3:]])
    with pytest.raises(DatasetError, match="backwards"):
        load_skab("other/1", root=tmp_path, train_rows=2)
    assert skab_experiments(tmp_path) == ["valve1/0", "valve1/1", "other/1"]


def test_psm_format(tmp_path):
    columns = [f"feature_{k}" for k in range(3)]
    train = pd.DataFrame(np.arange(30, dtype=float).reshape(10, 3), columns=columns)
    train.iloc[2, 1] = np.nan
    train.insert(0, "timestamp_(min)", np.arange(10, dtype=float))
    test = pd.DataFrame(np.ones((6, 3)), columns=columns)
    test.insert(0, "timestamp_(min)", np.arange(10, 16, dtype=float))
    label = pd.DataFrame({"timestamp_(min)": np.arange(10, 16, dtype=float), "label": [0, 0, 1, 1, 0, 0]})
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    label.to_csv(tmp_path / "test_label.csv", index=False)
    ds = load_psm(tmp_path)
    assert ds.train.shape == (10, 3) and ds.test.shape == (6, 3)
    assert list(ds.columns) == columns
    assert np.isnan(ds.train.iloc[2, 1]) and ds.metadata["train_nan_cells"] == 1
    assert ds.test.index.tolist() == list(range(10, 16)) and ds.test.index.dtype == np.int64
    assert ds.labels.tolist() == [0, 0, 1, 1, 0, 0]
    label.assign(**{"timestamp_(min)": np.arange(6.0)}).to_csv(tmp_path / "test_label.csv", index=False)
    with pytest.raises(DatasetError, match="timestamps differ"):
        load_psm(tmp_path)
    (tmp_path / "test_label.csv").unlink()
    with pytest.raises(DatasetError, match=r"test_label\.csv"):
        load_psm(tmp_path)


def _telemanom(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for part, rows in (("train", 40), ("test", 30)):
        (tmp_path / part).mkdir(exist_ok=True)
        for chan, width in (("A-1", 5), ("P-2", 5), ("C-1", 7)):
            np.save(tmp_path / part / f"{chan}.npy", rng.random((rows, width)))
    table = pd.DataFrame(
        {
            "chan_id": ["A-1", "P-2", "C-1", "P-2"],
            "spacecraft": ["SMAP", "SMAP", "MSL", "SMAP"],
            "anomaly_sequences": ["[[3, 5], [20, 29]]", "[[1, 2]]", "[[10, 12]]", "[[25, 27]]"],
            "class": ["[point, contextual]", "[point]", "[contextual]", "[point]"],
            "num_values": [30, 30, 30, 30],
        }
    )
    table.to_csv(tmp_path / "labeled_anomalies.csv", index=False)
    return tmp_path


def test_msl_smap_format(tmp_path):
    root = _telemanom(tmp_path)
    ds = load_smap("A-1", root)
    assert ds.train.shape == (40, 5) and ds.test.shape == (30, 5)
    assert list(ds.columns) == ["telemetry", "cmd1", "cmd2", "cmd3", "cmd4"]
    assert segments(ds.labels) == [(3, 6), (20, 30)]  # inclusive ends become half-open
    assert ds.metadata["anomaly_classes"] == ["point", "contextual"]
    twice = load_smap("P-2", root)
    assert segments(twice.labels) == [(1, 3), (25, 28)] and twice.metadata["label_rows"] == 2
    msl = load_msl("C-1", root)
    assert msl.test.shape == (30, 7) and segments(msl.labels) == [(10, 13)]
    with pytest.raises(DatasetError, match="no MSL row"):
        load_msl("A-1", root)
    with pytest.raises(ParameterError):
        load_msl("../etc", root)
    with pytest.raises(DatasetError, match=r"B-9\.npy"):
        load_smap("B-9", root)
    table = pd.read_csv(root / "labeled_anomalies.csv")
    table.loc[0, "num_values"] = 31
    table.to_csv(root / "labeled_anomalies.csv", index=False)
    with pytest.raises(DatasetError, match="num_values"):
        load_smap("A-1", root)


def test_telemanom_reads_gzip_files(tmp_path):
    import gzip

    root = _telemanom(tmp_path)
    plain = load_msl("C-1", root)
    for part in ("train", "test"):
        npy = root / part / "C-1.npy"
        with gzip.open(root / part / "C-1.npy.gz", "wb") as fh:
            fh.write(npy.read_bytes())
        npy.unlink()
    packed = load_msl("C-1", root)
    pd.testing.assert_frame_equal(packed.test, plain.test)
    assert packed.metadata["files"]["train"].endswith("C-1.npy.gz")
    assert telemanom_channels("MSL", root) == ["A-1", "C-1", "P-2"]  # every channel with a test file
    (root / "test" / "C-1.npy.gz").write_bytes(b"not gzip")
    with pytest.raises(DatasetError, match=r"C-1\.npy\.gz"):
        load_msl("C-1", root)


@needs_shared("MSL")
def test_shared_msl_channels_load():
    channels = telemanom_channels("MSL")
    assert len(channels) == 27
    ds = load_msl(channels[0])
    assert ds.train.shape[1] == ds.test.shape[1] == 55
    assert 0 < ds.labels.mean() < 1


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_asd_format_and_restricted_unpickler(tmp_path):
    rng = np.random.default_rng(1)
    train, test = rng.random((50, 19)).astype(np.float32), rng.random((40, 19))
    labels = np.zeros(40, dtype=np.int64)
    labels[5:9] = 1
    for suffix, value, protocol in (("train", train, 2), ("test", test, 4), ("test_label", labels, 5)):
        with open(tmp_path / f"omi-1_{suffix}.pkl", "wb") as handle:
            pickle.dump(value, handle, protocol=protocol)
    (tmp_path.parent / "interpretation_label").mkdir(exist_ok=True)
    (tmp_path.parent / "interpretation_label" / "omi-1.txt").write_text("5-9:1,19\n")
    ds = load_asd(1, tmp_path)
    assert ds.name == "ASD/omi-1" and ds.train.shape == (50, 19) and ds.test.shape == (40, 19)
    np.testing.assert_allclose(ds.train.to_numpy(), train)
    assert segments(ds.labels) == [(5, 9)]
    assert ds.root_causes.iloc[0]["metrics"] == ["m1", "m19"]

    marker = tmp_path / "pwned"
    with open(tmp_path / "omi-2_train.pkl", "wb") as handle:
        pickle.dump(_Evil(marker), handle)
    for suffix in ("test", "test_label"):
        shutil.copy(tmp_path / f"omi-1_{suffix}.pkl", tmp_path / f"omi-2_{suffix}.pkl")
    with pytest.raises(DatasetError, match=r"refusing to unpickle (posix|nt|os)\.system"):
        load_asd("omi-2", tmp_path)
    assert not marker.exists()

    with open(tmp_path / "omi-2_train.pkl", "wb") as handle:
        pickle.dump(np.array([{"a": 1}, None], dtype=object), handle)
    with pytest.raises(DatasetError, match=r"refusing|expected numbers"):
        load_asd("omi-2", tmp_path)
    with open(tmp_path / "omi-2_train.pkl", "wb") as handle:
        pickle.dump({"not": "an array"}, handle)
    with pytest.raises(DatasetError, match="holds a dict"):
        load_asd("omi-2", tmp_path)
    with pytest.raises(ParameterError):
        load_asd("../omi-1", tmp_path)


def _tsbad(path: Path, n: int, anomalies: list[int], with_label: bool = True) -> Path:
    frame = pd.DataFrame(np.random.default_rng(2).random((n, 3)), columns=["0", "1", "2"])
    if with_label:
        frame["Label"] = 0
        frame.loc[anomalies, "Label"] = 1
    frame.to_csv(path, index=False)
    return path


def test_tsbad_format(tmp_path):
    path = _tsbad(tmp_path / "001_Fake_id_1_Sensor_tr_50_1st_30.csv", 100, [30, 31, 70])
    ds = load_tsbad(path)
    assert ds.train.shape == (50, 3) and ds.test.shape == (100, 3)  # TSB-AD scores the whole series
    assert int(ds.train_labels.sum()) == 2 and int(ds.labels.sum()) == 3
    assert ds.metadata["first_anomaly"] == ds.metadata["first_anomaly_in_name"] == 30
    rest = load_tsbad(path, test="rest")
    assert rest.test.shape == (50, 3) and rest.test.index[0] == 50 and int(rest.labels.sum()) == 1
    assert len(load_tsbad(path, train_rows=20).train) == 20
    old = _tsbad(tmp_path / "107_SMAP_E-9_60_70.csv", 100, [70])
    assert len(load_tsbad(old).train) == 60
    with pytest.raises(DatasetError, match="train length"):
        load_tsbad(_tsbad(tmp_path / "x_tr_500_1st_1.csv", 100, [1]))
    with pytest.raises(DatasetError, match="Label"):
        load_tsbad(_tsbad(tmp_path / "y_tr_50_1st_1.csv", 100, [], with_label=False))
    with pytest.raises(DatasetError, match="name"):
        load_tsbad(_tsbad(tmp_path / "noname.csv", 100, [1]))
    with pytest.raises(ParameterError):
        load_tsbad(path, test="some")


# ------------------------------------------------------------------------------------------- errors
def test_smd_errors_name_the_file(tmp_path):
    with pytest.raises(ParameterError):
        load_smd("machine-x", root=tmp_path)
    with pytest.raises(DatasetError, match=r"train/machine-1-2\.txt"):
        load_smd("machine-1-2", root=tmp_path)
    with pytest.raises(DatasetError, match="root folder not found"):
        load_smd("1-2", root=tmp_path / "nowhere")
    src = bundled_smd_root()
    for sub in ("train", "test", "test_label", "interpretation_label"):
        shutil.copytree(src / sub, tmp_path / sub)
    label = tmp_path / "test_label" / "machine-1-2.txt"
    label.write_text("0\n1\n")
    with pytest.raises(DatasetError, match=r"test_label/machine-1-2\.txt has 2 labels"):
        load_smd("1-2", root=tmp_path)
    shutil.copy(src / "test_label" / "machine-1-2.txt", label)
    interp = tmp_path / "interpretation_label" / "machine-1-2.txt"
    interp.write_text("10-20:1,2\nbroken line\n")
    with pytest.raises(DatasetError, match="line 2"):
        load_smd("1-2", root=tmp_path)
    interp.write_text("10-20:1,39\n")
    with pytest.raises(DatasetError, match="outside 1-38"):
        load_smd("1-2", root=tmp_path)


def test_default_root(monkeypatch, tmp_path):
    (tmp_path / "SMD").mkdir()
    monkeypatch.setenv("TSDIFF_DATA", str(tmp_path))
    assert tds.default_root("SMD") == tmp_path / "SMD"
    with pytest.raises(DatasetError, match="looked in") as info:
        tds.default_root("NO-SUCH-SET")
    assert str(tmp_path / "NO-SUCH-SET") in str(info.value)


def test_telemanom_sequences_are_json_not_eval(tmp_path):
    root = _telemanom(tmp_path)
    table = pd.read_csv(root / "labeled_anomalies.csv")
    table.loc[0, "anomaly_sequences"] = "__import__('os').getcwd()"
    table.to_csv(root / "labeled_anomalies.csv", index=False)
    with pytest.raises(DatasetError, match="cannot parse"):
        load_smap("A-1", root)
    assert json.loads("[[1, 2]]") == [[1, 2]]
