"""From a Prometheus fit to the page an on-call engineer receives: the session's exporter scraped
by the shared Prometheus, a model fitted from it with ``tsdiff fit --prometheus``, ``tsdiff watch``
scraped with ``honor_labels`` and evaluated by the example's own alerting rules, Debian's
``prometheus-alertmanager`` grouping the alerts by host and posting them to a webhook. The page
must name the monitored host (not the watcher's address) and the metrics the incident is about."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.prometheus_server import Alertmanager, Webhook, needs_alertmanager

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "prometheus"
JOB = "tsdiff-page"


def test_an_anomaly_pages_with_the_host_and_its_root_causes(prometheus, live_exporter, tmp_path):
    needs_alertmanager()
    hook = Webhook()
    manager = Alertmanager(tmp_path / "alertmanager", hook.url)
    # the example rules as they are, firing at once instead of after their hold time
    rules = re.sub(r"for: \d+m", "for: 0s", (EXAMPLES / "alerts.yml").read_text())
    (tmp_path / "alerts.yml").write_text(rules)
    prometheus.set_alerting(tmp_path / "alerts.yml", manager.address)
    watcher = None
    try:

        def samples_of_live_a() -> int:
            found = prometheus.query("count_over_time(live_a[60s])")
            return int(float(found[0]["value"][1])) if found else 0

        # 40 rows of normal data (the exporter is scraped every second from the session's start)
        prometheus.wait_for(lambda: samples_of_live_a() >= 42, "42 samples of live_a", deadline=120)
        # the exporter's series carry its instance and job: the model's columns share them
        selector = '{job="live",__name__=~"live_.*"}'
        fit = subprocess.run(
            [sys.executable, "-m", "tsdiff.cli", "fit", "--prometheus", prometheus.url,
             "--selector", selector, "--start", "now-40s", "--end", "now-1s", "--step", "1s",
             "--detector", "pca", "-o", str(tmp_path / "model")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert fit.returncode == 0, fit.stderr
        log = tmp_path / "watch.log"
        with open(log, "w") as handle:  # --label names the host as the page should (web-1)
            watcher = subprocess.Popen(
                [sys.executable, "-m", "tsdiff.cli", "watch", str(tmp_path / "model"), "--listen",
                 "127.0.0.1:0", "--interval", "0.5", "--label", "instance=web-1"],
                stderr=handle,
            )  # fmt: skip

        def serving() -> re.Match | None:
            assert watcher.poll() is None, log.read_text()
            return re.search(r"serving http://127\.0\.0\.1:(\d+)/metrics", log.read_text())

        prometheus.wait_for(serving, "tsdiff watch to serve /metrics", deadline=60)
        prometheus.add_jobs({JOB: (f"127.0.0.1:{serving().group(1)}", 1.0)}, honor_labels=True)

        def scored() -> bool:
            return bool(prometheus.query('tsdiff_anomaly_score{instance="web-1",job="live"}'))

        prometheus.wait_for(scored, "the watcher's scores under the host's labels", deadline=60)
        with live_exporter.lock:
            live_exporter.jump = True  # live_b leaves its relation to live_a

        def page() -> dict | None:
            for message in hook.received:
                for alert in message["alerts"]:
                    labels = alert["labels"]
                    if alert["status"] == "firing" and labels["alertname"] == "TsdiffAnomaly":
                        return alert
            return None

        prometheus.wait_for(lambda: page() is not None, "a page", deadline=90)
        alert = page()
    finally:
        with live_exporter.lock:
            live_exporter.jump = False
        if watcher is not None:
            watcher.terminate()
            watcher.wait(timeout=30)
        prometheus.remove_jobs([JOB])
        prometheus.set_alerting(None, None)
        manager.stop()
        hook.stop()
    labels, notes = alert["labels"], alert["annotations"]
    assert labels["instance"] == "web-1" and labels["job"] == "live" and labels["severity"] == "warning"
    assert notes["summary"].startswith("web-1 (live) behaves unlike its model: score ")
    assert re.search(r"score \d+\.\d x its threshold", notes["summary"])
    # PCA has no causal graph: its incident names the metrics that broke the learned relation
    # (live_b jumped away from 2 x live_a), by their names alone, without the host's labels
    causes = re.search(r"Likely root causes \(first: where it started\): (.*?)\.", notes["description"])
    assert causes is not None, notes["description"]
    named = causes.group(1).split(", ")
    assert named[0] in ("live_a", "live_b") and set(named) <= {"live_a", "live_b", "live_c"}, named
    assert "127.0.0.1" not in notes["summary"] + notes["description"]  # never the watcher's address
