"""The fleet: one model per entity on a real local Dask cluster; failures stay with their entity."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from tsdiff import errors
from tsdiff.baselines import KMeansDetector, PCADetector

from tests.helpers import make_frame

distributed = pytest.importorskip("distributed", reason="the fleet extra (dask.distributed) is not installed")

from tsdiff.fleet import entity_dirname, entity_path, fit_fleet, score_fleet  # noqa: E402
from tsdiff.fleet.cluster import local_cluster  # noqa: E402
from tsdiff.fleet.runner import _records  # noqa: E402
from tsdiff.fleet.storage import INDEX_FILE  # noqa: E402

GOOD = ["web-1", "web/2", ".."]  # a slash and a dot-dot must not escape the model directory


def long_table(entities=GOOD, n_rows=300, anomaly_in="web-1", seed=0) -> pd.DataFrame:
    """Rows of several hosts, interleaved as a monitoring database returns them."""
    parts = []
    for i, host in enumerate(entities):
        frame = make_frame(n_rows, 3, seed=seed + i)
        if host == anomaly_in:
            frame.iloc[200:206, 1] += 8.0
        parts.append(frame.reset_index().rename(columns={"time": "timestamp"}).assign(host=host))
    return pd.concat(parts, ignore_index=True).sort_values("timestamp", kind="stable").reset_index(drop=True)


def with_bad_entities(table: pd.DataFrame) -> pd.DataFrame:
    tiny = long_table(["tiny"], n_rows=5, seed=7)  # fewer rows than one window
    text = long_table(["texty"], seed=8).astype({"m2": object})
    text.loc[text.index[17], "m2"] = "oops"  # a non-numeric cell
    return pd.concat([table, tiny, text], ignore_index=True)


@pytest.fixture(scope="module")
def client():
    with local_cluster(2, threads_per_worker=1) as cluster, distributed.Client(cluster) as c:
        yield c


def test_local_cluster_workers_cap_torch_threads_and_keep_glibc_memory_defaults(client):
    def worker_env() -> tuple:
        return os.environ.get("TSDIFF_NUM_THREADS"), os.environ.get("MALLOC_TRIM_THRESHOLD_")

    seen = client.run(worker_env)
    assert len(seen) == 2
    # Dask's nanny would set MALLOC_TRIM_THRESHOLD_, which makes torch training about twice as slow;
    # a worker sees only what this process itself has
    assert set(seen.values()) == {("1", os.environ.get("MALLOC_TRIM_THRESHOLD_"))}


def detector():
    return KMeansDetector(window=10, n_clusters=3, random_state=0)


def test_fit_and_score_a_fleet_with_failing_entities(client, tmp_path):
    train = with_bad_entities(long_table(anomaly_in=None))
    fit = fit_fleet(train, detector(), tmp_path, entity_col="host", client=client, verbose=False)
    assert sorted(fit.ok) == sorted(GOOD)
    failed = dict(fit.failed.itertuples(index=False))
    assert set(failed) == {"tiny", "texty"}
    assert "TooFewRowsError" in failed["tiny"]
    assert "NonNumericColumnError" in failed["texty"] and "'m2'" in failed["texty"]
    assert sorted(p.name for p in (tmp_path / "entities").iterdir()) == sorted(map(entity_dirname, GOOD))
    index = json.loads((tmp_path / INDEX_FILE).read_text())
    assert set(index["entities"]) == set(GOOD) and set(index["failed"]) == {"tiny", "texty"}
    assert index["detector"]["class"] == "KMeansDetector"

    test = with_bad_entities(long_table(seed=10)).assign(host=lambda d: d["host"].replace("texty", "new"))
    result = score_fleet(test, tmp_path, client=client, verbose=False)
    assert list(result.scores.columns) == [
        "host",
        "timestamp",
        "score",
        "label",
        "top_metrics",
        "root_causes",
    ]
    assert len(result.scores) == 300 * len(GOOD)
    failed = dict(result.failed.itertuples(index=False))
    assert set(failed) == {"tiny", "new"} and "no model" in failed["new"]
    assert "its fit failed" in failed["tiny"]
    web1 = result.scores[result.scores["host"] == "web-1"].set_index("timestamp")
    assert web1["label"].iloc[200:206].any() and web1["label"].iloc[:150].sum() == 0
    assert "m1" in web1["top_metrics"].iloc[200:206].str.cat()

    # the fleet's scores are exactly those of the same detector fitted on that entity alone
    def rows_of(table):
        return table[table["host"] == "web-1"].drop(columns="host").set_index("timestamp")

    alone = detector().fit(rows_of(train)).score(rows_of(test))
    np.testing.assert_allclose(web1["score"].to_numpy(), alone.to_numpy())


def test_scheduler_address_and_dask_dataframe_input(client, tmp_path):
    dd = pytest.importorskip("dask.dataframe")
    table = long_table(anomaly_in=None)
    lazy = dd.from_pandas(table, npartitions=3)
    fit = fit_fleet(
        lazy,
        PCADetector(n_components=2),
        tmp_path,
        entity_col="host",
        address=client.scheduler.address,
        verbose=False,
    )
    assert sorted(fit.ok) == sorted(GOOD) and fit.failed.empty
    result = score_fleet(
        dd.from_pandas(long_table(seed=3), npartitions=2),
        tmp_path,
        address=client.scheduler.address,
        verbose=False,
    )
    assert result.failed.empty and len(result.scores) == 900
    assert result.scores.groupby("host")["timestamp"].is_monotonic_increasing.all()


def test_refit_keeps_other_entities_and_metric_columns_may_differ_by_entity(client, tmp_path):
    table = long_table(anomaly_in=None)
    table.loc[table["host"] == "..", "m2"] = np.nan  # this host does not report m2
    fit_fleet(table, detector(), tmp_path, entity_col="host", client=client, verbose=False)
    index = json.loads((tmp_path / INDEX_FILE).read_text())
    assert index["entities"][".."]["columns"] == ["m0", "m1"]
    fit_fleet(
        table[table["host"] == "web-1"], detector(), tmp_path, entity_col="host", client=client, verbose=False
    )
    assert set(json.loads((tmp_path / INDEX_FILE).read_text())["entities"]) == set(GOOD)
    changed = long_table(seed=5)
    changed.loc[changed["host"] == "..", "m2"] = np.nan  # still not reported there: fine
    changed.loc[changed["host"] == "web-1", "m2"] = np.nan  # a metric the model needs is gone
    changed.loc[changed["host"] == "web/2", "m3"] = 1.0  # a metric the model never saw
    result = score_fleet(changed, tmp_path, client=client, verbose=False)
    failed = dict(result.failed.itertuples(index=False))
    assert failed.keys() == {"web-1", "web/2"}
    assert "AllNaNColumnError: column 'm2'" in failed["web-1"]
    assert "unexpected column(s) 'm3'" in failed["web/2"]
    assert set(result.scores["host"]) == {".."}


def test_a_lost_task_is_a_failure_of_its_entity_only():
    records, _ = _records(
        [("a", [{"entity": "a", "status": "ok"}]), ("b", RuntimeError("worker died"))], False
    )
    assert records[1] == {
        "entity": "b",
        "status": "failed",
        "rows": 0,
        "seconds": 0.0,
        "error": "RuntimeError: worker died",
    }


def test_bad_tables_are_typed_errors(tmp_path):
    table = long_table()
    with pytest.raises(errors.InputError, match="'node'"):
        fit_fleet(table, detector(), tmp_path, entity_col="node", verbose=False)
    with pytest.raises(errors.InputError, match="no readable timestamp"):
        fit_fleet(table.assign(timestamp="soon"), detector(), tmp_path, entity_col="host", verbose=False)
    with pytest.raises(errors.ParameterError):
        fit_fleet(table, "kmeans", tmp_path, entity_col="host", verbose=False)
    with pytest.raises(errors.ModelFormatError):
        score_fleet(table, tmp_path / "nothing-here", verbose=False)


@pytest.mark.parametrize(
    "entity, name",
    [
        ("web-01.dc1", "web-01.dc1"),
        ("a/b", "a%2Fb"),
        ("..", "%2E."),
        (".", "%2E"),
        ("../../etc", "%2E.%2F..%2Fetc"),
        ("C:\\x", "C%3A%5Cx"),
        (42, "42"),
        ("50%", "50%25"),
    ],
)
def test_entity_names_become_safe_directory_names(entity, name, tmp_path):
    assert entity_dirname(entity) == name
    assert entity_path(tmp_path, entity).parent == tmp_path / "entities"


def test_unusable_entity_names_are_refused(tmp_path):
    with pytest.raises(errors.InputError):
        entity_dirname("")
    with pytest.raises(errors.InputError, match="too long"):
        entity_path(tmp_path, "x" * 300)


def test_cli_fleet_fit_and_score(tmp_path, capsys):
    from tsdiff.cli import EXIT_BAD_INPUT, main

    train, test = with_bad_entities(long_table(anomaly_in=None)), long_table()
    # the time column is found by its name wherever it stands (here after the entity)
    for table, name in ((train, "train.csv"), (test, "test.csv")):
        table = table.rename(columns={"timestamp": "Time"})
        table[["host", *table.columns.drop("host")]].to_csv(tmp_path / name, index=False)
    models, out = tmp_path / "models", tmp_path / "scores.csv"
    common = ["--entity-column", "host", "--workers", "1"]
    code = main(
        [
            "fleet",
            "fit",
            str(tmp_path / "train.csv"),
            "-o",
            str(models),
            "--detector",
            "kmeans",
            *common,
            "--failures",
            str(tmp_path / "failed.csv"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 4  # some entities failed; the others were fitted
    assert "timestamps from column 'Time'" in err and "3 of 5 entities" in err
    assert "failed: tiny: TooFewRowsError" in err
    assert set(pd.read_csv(tmp_path / "failed.csv")["entity"]) == {"tiny", "texty"}
    args = ["fleet", "score", str(models), str(tmp_path / "test.csv"), "-o", str(out), "--workers", "1"]
    assert main(args) == 0
    assert main([*args, "--fail-on-anomaly"]) == 1
    scored = pd.read_csv(out)
    assert list(scored.columns[:4]) == ["host", "Time", "score", "label"] and len(scored) == 900
    assert (
        main(
            [
                "fleet",
                "fit",
                str(tmp_path / "train.csv"),
                "-o",
                str(models),
                "--entity-column",
                "nope",
                "--workers",
                "1",
            ]
        )
        == EXIT_BAD_INPUT
    )


def test_entities_that_would_share_a_model_are_refused(client, tmp_path):
    table = long_table(["1", "web"])
    mixed = pd.concat([table, long_table(["x"]).assign(host=1)], ignore_index=True)
    with pytest.raises(errors.InputError, match=r"1 \(int\) .* '1' \(str\)|'1' \(str\) .* 1 \(int\)"):
        fit_fleet(mixed, detector(), tmp_path, entity_col="host", client=client, verbose=False)
    assert not (tmp_path / "entities").exists()  # refused before anything was fitted
    fit_fleet(table, detector(), tmp_path, entity_col="host", client=client, verbose=False)
    later = long_table(["x"]).assign(host=1)
    with pytest.raises(errors.InputError, match="fitted earlier"):
        fit_fleet(later, detector(), tmp_path, entity_col="host", client=client, verbose=False)
    index = json.loads((tmp_path / INDEX_FILE).read_text())
    assert index["entities"]["1"]["type"] == "str"


UPDATER = """
import sys
from tsdiff.fleet.storage import update_index
for i in range(int(sys.argv[3])):
    update_index(sys.argv[1], {}, {f"{sys.argv[2]}-{i}": {"rows": i}}, {})
"""


def test_index_updates_from_two_processes_keep_every_entity(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    procs = [
        subprocess.Popen([sys.executable, "-c", UPDATER, str(tmp_path), name, "300"], cwd=root)
        for name in ("a", "b")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    index = json.loads((tmp_path / INDEX_FILE).read_text())
    assert len(index["entities"]) == 600
