"""One Prometheus server for every live test of this folder.

The server is started once for this folder (and stopped after its last test): a slice of the
bundled SMD machine backfilled under ``smd_*{machine="1-2"}`` (2024 times, read back by the source
and replayed by watchers), a live exporter of three related gauges scraped every second from the
start (``live_*{job="live"}``), and the out-of-order window that lets a replaying watcher's
2024-stamped scores be stored. Tests add the scrape jobs they need with unique names
(:meth:`PrometheusServer.add_jobs`) and remove them when done, so they stay independent of each
other and of their order.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from tests.prometheus_server import Exporter, PrometheusServer, needs_prometheus

START = pd.Timestamp("2024-06-01T00:00:00Z")
ROWS, METRICS = 600, ["m1", "m2", "m3", "m4", "m5"]


class LiveExporter(Exporter):
    """Three related gauges computed from the wall clock at each scrape: ``live_b`` is twice
    ``live_a`` (plus 8 while :attr:`jump` is on), ``live_c`` a quarter period apart. It counts the
    scrapes it answers, and those it answered with the jump on."""

    def __init__(self) -> None:
        super().__init__()
        self.jump = False
        self.scrapes = 0
        self.jumped = 0
        self.lock = threading.Lock()

    def body(self) -> bytes:
        t = time.time()
        rng = np.random.default_rng(int(t))
        with self.lock:
            jump = self.jump
            self.scrapes += 1
            self.jumped += int(jump)
        a = math.sin(t / 5.0) + 0.05 * rng.standard_normal()
        b = 2.0 * a + 0.05 * rng.standard_normal() + (8.0 if jump else 0.0)
        c = math.cos(t / 5.0) + 0.05 * rng.standard_normal()  # one phase: a 2-d plane PCA learns
        return f"live_a {a!r}\nlive_b {b!r}\nlive_c {c!r}\n".encode()


@pytest.fixture(scope="package")
def smd_slice() -> pd.DataFrame:
    from tsdiff.datasets import load_bundled

    frame = load_bundled().train.iloc[:ROWS][METRICS].copy()
    frame.index = pd.date_range(START, periods=ROWS, freq="min", name="timestamp")
    return frame


@pytest.fixture(scope="package")
def live_exporter() -> Iterator[LiveExporter]:
    exporter = LiveExporter().start()
    yield exporter
    exporter.stop()


@pytest.fixture(scope="package")
def prometheus(tmp_path_factory, smd_slice, live_exporter) -> Iterator[PrometheusServer]:
    needs_prometheus()
    jobs = {"live": (live_exporter.target, 1.0)}
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"), smd_slice, jobs=jobs)
    yield server
    server.stop()


@pytest.fixture
def server(prometheus) -> str:
    """The shared server's URL."""
    return prometheus.url
