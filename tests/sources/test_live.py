"""The whole loop against a live target: an exporter scraped every second by a real Prometheus,
a model fitted on its last 40 seconds, ``tsdiff watch`` running and scraped by the same server,
and an injected jump flagged and read back through Prometheus' own query API."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from tests.sources.test_prometheus import free_port, needs_prometheus, run_prometheus

JUMP = {"on": False}


class Exporter(BaseHTTPRequestHandler):
    """Three related gauges computed from the wall clock; ``live_b`` jumps while JUMP is on."""

    def do_GET(self) -> None:
        t = time.time()
        rng = np.random.default_rng(int(t))
        a = math.sin(t / 5.0) + 0.05 * rng.standard_normal()
        b = 2.0 * a + 0.05 * rng.standard_normal() + (8.0 if JUMP["on"] else 0.0)
        c = math.cos(t / 5.0) + 0.05 * rng.standard_normal()  # one phase: a 2-d plane PCA learns
        body = f"live_a {a!r}\nlive_b {b!r}\nlive_c {c!r}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _query_range(url: str, query: str, start: float, end: float) -> dict[float, float]:
    # whole seconds: the evaluation times then fall on the rows' one-second grid
    params = urllib.parse.urlencode({"query": query, "start": int(start), "end": int(end), "step": "1"})
    with urllib.request.urlopen(f"{url}/api/v1/query_range?{params}", timeout=10) as answer:
        result = json.loads(answer.read())["data"]["result"]
    return {float(t): float(v) for series in result for t, v in series["values"]}


def test_an_injected_jump_is_flagged_and_visible_through_prometheus(tmp_path):
    needs_prometheus()
    exporter = ThreadingHTTPServer(("127.0.0.1", 0), Exporter)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    watch_port = free_port()
    target = "  - job_name: {}\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n"
    config = (
        "global:\n  scrape_interval: 1s\nscrape_configs:\n"
        + target.format("live", exporter.server_address[1])
        + target.format("tsdiff", watch_port)
    )
    prom, url = run_prometheus(tmp_path, config)
    watcher = None
    try:
        time.sleep(42)  # 40 seconds of normal data
        query = ["--query", "a=live_a", "--query", "b=live_b", "--query", "c=live_c"]
        fit = subprocess.run(
            [sys.executable, "-m", "tsdiff.cli", "fit", "--prometheus", url, *query, "--start", "now-40s",
             "--end", "now-1s", "--step", "1s", "--detector", "pca", "-o", str(tmp_path / "model")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert fit.returncode == 0, fit.stderr
        watcher = subprocess.Popen(
            [sys.executable, "-m", "tsdiff.cli", "-q", "watch", str(tmp_path / "model"), "--listen",
             f"127.0.0.1:{watch_port}", "--delay", "5s", "--interval", "0.5",
             "--output", str(tmp_path / "rows.jsonl")],
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(6)
        jump_from = time.time()
        JUMP["on"] = True
        time.sleep(6)
        JUMP["on"] = False
        jump_to = time.time()
        deadline = time.monotonic() + 40  # the jump's rows become final, then are scraped
        while True:
            assert watcher.poll() is None, watcher.stderr.read() if watcher.stderr else ""
            flags = _query_range(url, "tsdiff_anomaly", jump_from - 10, jump_to + 6)
            during = [v for t, v in flags.items() if jump_from + 2 <= t <= jump_to - 1]
            before = [v for t, v in flags.items() if t < jump_from - 1]
            if (during and max(during) == 1.0 and before) or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert during and max(during) == 1.0  # flagged, and visible through Prometheus' query API
        # a model fitted on 40 rows may raise a stray flag on normal rows, but the jump stands out
        assert before and np.mean(during) > np.mean(before) + 0.3
        # the scores Prometheus stored are the model's scores of the same rows
        import tsdiff
        from tsdiff.sources.prometheus import PrometheusSource

        det = tsdiff.load(tmp_path / "model")
        # the raw samples Prometheus stored (each stamped with its row's time): one per scrape, so a
        # row that became final between two scrapes together with a later one is not among them
        params = urllib.parse.urlencode({"query": "tsdiff_anomaly_score[2m]", "time": time.time()})
        with urllib.request.urlopen(f"{url}/api/v1/query?{params}", timeout=10) as answer:
            result = json.loads(answer.read())["data"]["result"]
        stored = {float(t): float(v) for series in result for t, v in series["values"]}
        rows = PrometheusSource.from_dict(det.source_).read(min(stored) - 30, max(stored))
        expected = det.score(rows).set_axis([ts.value / 1e9 for ts in rows.index])
        common = [t for t in stored if t in expected.index]
        assert len(common) >= 5
        # a row read before its scrape landed holds the previous sample (the --delay knob); on a
        # loaded machine a few rows can race, every other one must match to 1e-6
        same = [abs(stored[t] - expected[t]) < 1e-6 for t in common]
        assert np.mean(same) >= 0.9, (sum(same), len(same))
        logged = [json.loads(x) for x in (tmp_path / "rows.jsonl").read_text().splitlines()]
        assert len({x["time"] for x in logged}) == len(logged)  # no row scored twice
    finally:
        if watcher is not None:
            watcher.terminate()
            watcher.wait(timeout=30)
        prom.terminate()
        prom.wait(timeout=30)
        exporter.shutdown()
