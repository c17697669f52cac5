"""A real Prometheus server (Debian's ``prometheus`` package) on 127.0.0.1, for the live tests and
the benchmarks that need one.

:class:`PrometheusServer` backfills a frame with ``promtool tsdb create-blocks-from openmetrics``,
starts ``prometheus`` on a port the kernel picks (read back from its log, so two servers never race
for a port), and lets a test add and remove scrape jobs while it runs (the configuration is
rewritten and reloaded through ``/-/reload``). Every wait is on a condition with a deadline, never a
fixed sleep: :meth:`PrometheusServer.add_jobs` returns once every new target has been scraped
(Prometheus applies new targets on its own five-second tick), and :meth:`PrometheusServer.wait_for`
polls a query until a test's condition holds.

The process is ended when the server is stopped, and also when the process that started it dies
(``PR_SET_PDEATHSIG`` on Linux), so a killed test run leaves no server behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

BINARIES = [shutil.which("prometheus"), shutil.which("promtool")]
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def needs_prometheus() -> None:
    """Skip the calling test when the binaries are missing; in CI (``$CI`` set) fail instead."""
    import pytest

    if all(BINARIES):
        return
    if os.environ.get("CI"):
        pytest.fail("CI must have Debian's prometheus package (apt-get install -y prometheus)")
    pytest.skip("the prometheus and promtool binaries are not installed (apt-get install prometheus)")


def needs_alertmanager() -> None:
    """As :func:`needs_prometheus`, for Debian's ``prometheus-alertmanager`` too."""
    import pytest

    needs_prometheus()
    if ALERTMANAGER is not None:
        return
    if os.environ.get("CI"):
        pytest.fail("CI must have Debian's prometheus-alertmanager package")
    pytest.skip("prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)")


def free_port() -> int:
    """A port nothing listens on (for tests that need a refused connection)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openmetrics(frame: pd.DataFrame, prefix: str = "smd_", labels: str = 'machine="1-2"') -> str:
    """``frame`` as OpenMetrics text: one gauge ``<prefix><column>{labels}`` per column, a sample per
    finite cell stamped with its row's time (what ``promtool`` backfills)."""
    lines = []
    for column in frame.columns:
        name = f"{prefix}{column}"
        lines.append(f"# TYPE {name} gauge")
        for stamp, value in frame[column].items():
            if np.isfinite(value):
                lines.append(f"{name}{{{labels}}} {value!r} {pd.Timestamp(stamp).value // 10**9}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


try:  # resolved here, not in the forked child (loading a library there can deadlock)
    _PRCTL = ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None
except (OSError, AttributeError):  # pragma: no cover
    _PRCTL = None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: ended when the starting thread ends


def await_listening(proc: subprocess.Popen, log_path: Path, offset: int, deadline: float) -> str:
    """The URL of a Prometheus-family server (``prometheus``, ``prometheus-alertmanager``) once it
    answers ``/-/ready``: its port is read from its log from ``offset`` on (it was started on port
    0, so two servers never race for a port)."""
    until = time.monotonic() + deadline
    url = None
    while True:
        if url is None:
            found = re.search(r'msg="Listening on" address=(\S+)', log_path.read_text()[offset:])
            url = f"http://{found.group(1)}" if found else None
        if url is not None:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return url
        if proc.poll() is not None or time.monotonic() > until:
            raise RuntimeError(f"{proc.args[0]} did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.05)


class PrometheusServer:
    """One ``prometheus`` process serving ``root/tsdb`` on 127.0.0.1 (see the module docstring).

    Parameters
    ----------
    root
        A folder of its own (configuration, storage, log).
    frame
        Optional rows to backfill before the start (:func:`openmetrics` with ``prefix`` and ``labels``);
        ``text``: OpenMetrics text to backfill instead.
    out_of_order
        How far back scraped samples with their own timestamps are accepted (a replay of 2024 rows).
    jobs
        Scrape jobs present from the start: name -> (``host:port``, interval in seconds).
    rules, alertmanager
        An alerting rules file to evaluate every second, and the ``host:port`` of an Alertmanager
        to send its alerts to.
    honor_labels
        Keep the labels a target exports (a ``tsdiff watch`` exports its monitored host's).
    """

    def __init__(
        self,
        root: Path,
        frame: pd.DataFrame | None = None,
        prefix: str = "smd_",
        labels: str = 'machine="1-2"',
        out_of_order: str = "10y",
        jobs: Mapping[str, tuple[str, float]] | None = None,
        text: str | None = None,
        rules: str | Path | None = None,
        alertmanager: str | None = None,
        honor_labels: bool = False,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.out_of_order = out_of_order
        self.rules, self.alertmanager = rules, alertmanager
        self.honored: set[str] = set(self.jobs) if honor_labels else set()  # jobs with honor_labels
        self.jobs: dict[str, tuple[str, float]] = dict(jobs or {})
        if frame is not None or text is not None:
            (self.root / "data.om").write_text(
                text if text is not None else openmetrics(frame, prefix, labels)
            )
            subprocess.run(
                [BINARIES[1], "tsdb", "create-blocks-from", "openmetrics", str(self.root / "data.om"),
                 str(self.root / "tsdb")],
                check=True, capture_output=True,
            )  # fmt: skip
        self._write_config()
        self.log_path = self.root / "prometheus.log"
        self.url = ""
        self.start()

    # ----------------------------------------------------------------- life
    def start(self) -> None:
        """Start the process: on a port the kernel picks the first time, on the same port after a
        :meth:`stop` (an outage and a recovery, as a watcher sees them)."""
        address = self.url.removeprefix("http://") or "127.0.0.1:0"
        self._log = open(self.log_path, "a")
        start = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            [BINARIES[0], f"--config.file={self.root / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.root / 'tsdb'}", "--storage.tsdb.retention.time=100y",
             f"--web.listen-address={address}", "--web.enable-lifecycle"],
            stdout=subprocess.DEVNULL, stderr=self._log, preexec_fn=_die_with_parent,
        )  # fmt: skip
        try:  # the jobs given here are scraped soon after: a test waits for what it needs of them
            self.url = self._await_start(start, deadline=60)
        except BaseException:
            self.stop()
            raise

    def _await_start(self, offset: int, deadline: float) -> str:
        """The server's URL once it answers ``/-/ready`` (the port is read from its log)."""
        return await_listening(self.proc, self.log_path, offset, deadline)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._log.close()

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- scrape jobs
    def _write_config(self) -> None:
        text = "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        text += f"storage:\n  tsdb:\n    out_of_order_time_window: {self.out_of_order}\n"
        if self.rules is not None:
            text += f"rule_files:\n  - '{self.rules}'\n"
        if self.alertmanager is not None:
            text += "alerting:\n  alertmanagers:\n    - static_configs:\n"
            text += f"        - targets: ['{self.alertmanager}']\n"
        if self.jobs:
            text += "scrape_configs:\n"
        for name, (target, interval) in self.jobs.items():
            every = f"{round(interval * 1000)}ms"
            text += (
                f"  - job_name: '{name}'\n    scrape_interval: {every}\n    scrape_timeout: {every}\n"
                f"    honor_labels: {str(name in self.honored).lower()}\n"
                f"    static_configs:\n      - targets: ['{target}']\n"
            )
        tmp = self.root / "prometheus.yml.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.root / "prometheus.yml")

    def _reload(self) -> None:
        self._write_config()
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=30):
            pass

    def add_jobs(
        self, jobs: Mapping[str, tuple[str, float]], deadline: float = 60, honor_labels: bool = False
    ) -> None:
        """Scrape ``jobs`` (name -> (``host:port``, interval in seconds)), keeping the labels the
        targets export with ``honor_labels``; returns once each target has answered a scrape."""
        clash = set(jobs) & set(self.jobs)
        if clash:
            raise ValueError(f"jobs {sorted(clash)} are already scraped")
        self.jobs.update(jobs)
        if honor_labels:
            self.honored |= set(jobs)
        self._reload()
        self._await_targets(jobs, deadline)

    def set_alerting(self, rules: str | Path | None, alertmanager: str | None) -> None:
        """Evaluate ``rules`` (a rules file; None: none) and send alerts to ``alertmanager``
        (``host:port``), from the next reload on."""
        self.rules, self.alertmanager = rules, alertmanager
        self._reload()

    def remove_jobs(self, names: list[str]) -> None:
        for name in names:
            self.jobs.pop(name, None)
            self.honored.discard(name)
        if self.proc.poll() is None:
            self._reload()

    def _await_targets(self, jobs: Mapping[str, Any], deadline: float) -> None:
        def scraped() -> bool:
            answer = self.api("/api/v1/targets", {"state": "active"})
            up = {t["labels"]["job"] for t in answer["activeTargets"] if t["health"] == "up"}
            return set(jobs) <= up

        self.wait_for(scraped, f"the targets of {sorted(jobs)} to be scraped", deadline)

    # ----------------------------------------------------------------- reading
    def api(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """The ``data`` of a JSON answer of the HTTP API."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as answer:
            return json.loads(answer.read())["data"]

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query's result (at ``at``, Unix seconds; default now)."""
        params: dict[str, Any] = {"query": promql}
        if at is not None:
            params["time"] = at
        return self.api("/api/v1/query", params)["result"]

    def samples(self, selector: str, at: float, span: str = "1d") -> dict[float, float]:
        """The raw samples of ``selector`` in the ``span`` before ``at``: time -> value."""
        found = self.query(f"{selector}[{span}]", at)
        return {float(t): float(v) for series in found for t, v in series["values"]}

    def wait_for(self, condition: Callable[[], bool], what: str, deadline: float = 60) -> None:
        """Poll ``condition`` until it holds; fail naming ``what`` (and the log) after ``deadline`` s."""
        until = time.monotonic() + deadline
        while not condition():
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log_path.read_text()[-2000:]}")
            if time.monotonic() > until:
                raise AssertionError(f"waited {deadline:g} s for {what}")
            time.sleep(0.05)


class Exporter(ThreadingHTTPServer):
    """A scrape target on 127.0.0.1 (a free port) serving :meth:`body` at every path; subclasses
    say what it exposes. :meth:`start` serves it on a daemon thread, :meth:`stop` ends it."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ExporterHandler)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def body(self) -> bytes:
        raise NotImplementedError

    def start(self) -> Exporter:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _ExporterHandler(BaseHTTPRequestHandler):
    server: Exporter

    def do_GET(self) -> None:
        body = self.server.body()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class Webhook(ThreadingHTTPServer):
    """An HTTP receiver on 127.0.0.1 keeping every JSON body POSTed to it (an on-call bridge)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _WebhookHandler)
        self.received: list[Any] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _WebhookHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append(json.loads(body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Alertmanager:
    """Debian's ``prometheus-alertmanager`` on 127.0.0.1 (a port of its own, read from its log),
    grouping alerts by host and sending each group at once to ``webhook``."""

    def __init__(self, root: Path, webhook: str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "alertmanager.yml").write_text(
            "route:\n  receiver: hook\n  group_by: [alertname, instance, job]\n  group_wait: 0s\n"
            "  group_interval: 1s\n  repeat_interval: 1h\n"
            f"receivers:\n  - name: hook\n    webhook_configs:\n      - url: '{webhook}'\n"
            "        send_resolved: true\n"
        )
        self.log_path = self.root / "alertmanager.log"
        self._log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [ALERTMANAGER, f"--config.file={self.root / 'alertmanager.yml'}",
             f"--storage.path={self.root / 'data'}", "--web.listen-address=127.0.0.1:0",
             "--cluster.listen-address="],
            stdout=subprocess.DEVNULL, stderr=self._log, preexec_fn=_die_with_parent,
        )  # fmt: skip
        try:
            self.url = await_listening(self.proc, self.log_path, 0, deadline=60)
        except BaseException:
            self.stop()
            raise

    @property
    def address(self) -> str:
        return self.url.removeprefix("http://")

    def alerts(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=10) as answer:
            return json.loads(answer.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self._log.close()
