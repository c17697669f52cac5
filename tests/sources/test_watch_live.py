"""The whole loop against a live target: the session's exporter scraped every second by the shared
Prometheus, a model fitted on its last 40 seconds, ``tsdiff watch`` running and scraped by the same
server, and an injected jump flagged and read back through Prometheus' own query API.

Every wait is on a condition with a deadline. The watcher reads a row only once every series has a
later sample (the row cannot change any more), so the scores it logs and Prometheus stores equal,
row for row, the batch scores of the same rows read afterwards: nothing is tolerated.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import numpy as np
import pandas as pd

JOB = "tsdiff-live"


def _logged(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_an_injected_jump_is_flagged_and_visible_through_prometheus(prometheus, live_exporter, tmp_path):
    import tsdiff
    from tsdiff.sources.prometheus import PrometheusSource

    url = prometheus.url

    def samples_of_live_a() -> int:
        found = prometheus.query("count_over_time(live_a[60s])")
        return int(float(found[0]["value"][1])) if found else 0

    # 40 rows of normal data (the exporter is scraped every second from the session's start)
    prometheus.wait_for(lambda: samples_of_live_a() >= 42, "42 samples of live_a", deadline=120)
    query = ["--query", "a=live_a", "--query", "b=live_b", "--query", "c=live_c"]
    fit = subprocess.run(
        [sys.executable, "-m", "tsdiff.cli", "fit", "--prometheus", url, *query, "--start", "now-40s",
         "--end", "now-1s", "--step", "1s", "--detector", "pca", "-o", str(tmp_path / "model")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    log, rows = tmp_path / "watch.log", tmp_path / "rows.jsonl"
    with open(log, "w") as handle:
        watcher = subprocess.Popen(
            [sys.executable, "-m", "tsdiff.cli", "watch", str(tmp_path / "model"), "--listen", "127.0.0.1:0",
             "--interval", "0.5", "--output", str(rows)],
            stderr=handle,
        )  # fmt: skip
    try:

        def serving() -> bool:
            assert watcher.poll() is None, log.read_text()
            return re.search(r"serving http://127\.0\.0\.1:(\d+)/metrics", log.read_text()) is not None

        prometheus.wait_for(serving, "tsdiff watch to serve /metrics", deadline=60)
        port = re.search(r"serving http://127\.0\.0\.1:(\d+)/metrics", log.read_text()).group(1)
        prometheus.add_jobs({JOB: (f"127.0.0.1:{port}", 1.0)})
        prometheus.wait_for(lambda: len(_logged(rows)) >= 5, "five normal rows scored", deadline=60)

        def normal_rows_stored() -> bool:
            stored = prometheus.samples(f'tsdiff_anomaly{{job="{JOB}"}}', at=time.time(), span="1m")
            return len(stored) >= 3

        # the jump starts only once Prometheus holds normal rows to compare it with (its first scrape
        # of the watcher may come seconds after the job is added)
        prometheus.wait_for(normal_rows_stored, "three normal rows stored by Prometheus", deadline=60)
        jump_set = time.time()  # another test's jump (the alerting test's) lies before it
        with live_exporter.lock:
            live_exporter.jump, jumped = True, live_exporter.jumped
        prometheus.wait_for(lambda: live_exporter.jumped >= jumped + 6, "6 scrapes of the jump", deadline=60)
        with live_exporter.lock:
            live_exporter.jump = False
        # the rows whose last sample is surely a jumped one: from a second after the first jumped
        # scrape's exporter time to the last one; before: up to a second before the first
        jump_rows = _jumped_rows(prometheus, since=jump_set - 1)
        jump_from, jump_to = min(jump_rows), max(jump_rows)

        def flags_in_range() -> tuple[list[float], list[float]]:
            flags = prometheus.api(
                "/api/v1/query_range",
                {"query": f'tsdiff_anomaly{{job="{JOB}"}}', "start": int(jump_from) - 10,
                 "end": int(jump_to) + 6, "step": "1"},
            )["result"]  # fmt: skip
            flags = {float(t): float(v) for series in flags for t, v in series["values"]}
            during = [v for t, v in flags.items() if jump_from + 1 <= t <= jump_to]
            before = [v for t, v in flags.items() if t < jump_from - 1]
            return during, before

        def jump_final_and_stored() -> bool:
            assert watcher.poll() is None, log.read_text()
            seen = prometheus.query(f'tsdiff_last_scored_timestamp_seconds{{job="{JOB}"}}')
            return bool(seen) and float(seen[0]["value"][1]) >= jump_to + 1

        prometheus.wait_for(jump_final_and_stored, "the jump's rows in Prometheus", deadline=60)
        during, before = flags_in_range()
        assert during and max(during) == 1.0  # flagged, and visible through Prometheus' query API
        # a model fitted on 40 rows may raise a stray flag on normal rows, but the jump stands out
        assert before and np.mean(during) > np.mean(before) + 0.3
        det = tsdiff.load(tmp_path / "model")
        logged = _logged(rows)
        times = [pd.Timestamp(x["time"]) for x in logged]
        assert len(set(times)) == len(times)  # no row scored twice
        # every logged row, and every sample Prometheus stored (one per scrape, each stamped with its
        # row's time), is the batch score of the same rows read now
        frame = PrometheusSource.from_dict(det.source_).read(times[0], times[-1])
        expected = det.score(frame)
        np.testing.assert_allclose([x["score"] for x in logged], expected.loc[times].to_numpy(), rtol=1e-9)
        stored = prometheus.samples(f'tsdiff_anomaly_score{{job="{JOB}"}}', at=time.time(), span="10m")
        by_second = expected.set_axis([stamp.value / 1e9 for stamp in expected.index])
        assert len(stored) >= 5 and set(stored) <= set(by_second.index)
        assert max(abs(v - by_second[t]) for t, v in stored.items()) < 1e-9
    finally:
        watcher.terminate()
        watcher.wait(timeout=30)
        prometheus.remove_jobs([JOB])


def _jumped_rows(prometheus, since: float) -> list[float]:
    """Sample times of the jump, read back from the server: ``live_b - 2 live_a`` above 4."""
    found = prometheus.api(
        "/api/v1/query_range",
        {"query": "live_b - 2 * live_a > 4", "start": int(since), "end": int(time.time()) + 1, "step": "1"},
    )["result"]
    return [float(t) for series in found for t, _ in series["values"]]
