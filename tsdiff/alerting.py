"""Incidents posted to Alertmanager, and kept alive there while they are open.

Alertmanager's ``/api/v2/alerts`` takes a JSON array of alerts. An alert without ``endsAt`` is
active only for Alertmanager's ``resolve_timeout`` (5 minutes by default) unless it is sent
again, so a client must re-send its open alerts; Prometheus re-sends every minute.
:class:`AlertmanagerPoster` does the same for the incidents of a stream: it posts an incident when
it opens and when it resolves (with ``endsAt``), and re-sends the open ones every ``resend``
seconds from a thread of its own, so an incident stays active while no rows arrive. A failed post
is logged and retried with the next one; the stream never waits on Alertmanager for more than
``timeout`` seconds, and never stops because of it.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from typing import Any

from tsdiff.errors import ParameterError
from tsdiff.incidents import alertmanager_alert

logger = logging.getLogger(__name__)

#: seconds between re-sends of the open alerts (Prometheus' own default)
RESEND_SECONDS = 60.0


class AlertmanagerPoster:
    """Post incidents to an Alertmanager and re-send the open ones (see the module docstring).

    Parameters
    ----------
    url
        The Alertmanager, ``http://host:9093`` (``/api/v2/alerts`` is added).
    labels
        Labels on every alert (what is monitored: ``{"instance": "web-1"}``), beside
        ``alertname="TsdiffAnomaly"`` and the incident's number.
    resend
        Seconds between re-sends of the open alerts (0: never, for a caller that calls
        :meth:`resend` itself).
    timeout
        Seconds one post may take.
    top_k
        Root causes named in each alert.

    Use it as a context manager, or call :meth:`close`, to stop the re-sending thread.
    """

    def __init__(
        self,
        url: str,
        labels: dict[str, str] | None = None,
        resend: float = RESEND_SECONDS,
        timeout: float = 10.0,
        top_k: int = 3,
    ) -> None:
        if not str(url).startswith(("http://", "https://")):
            raise ParameterError(f"the Alertmanager URL must start with http:// or https://, got {url!r}")
        if not resend >= 0 or not timeout > 0:
            raise ParameterError(f"resend must be >= 0 and timeout > 0 seconds, got {resend!r}, {timeout!r}")
        self.endpoint = str(url).rstrip("/") + "/api/v2/alerts"
        self.labels = dict(labels or {})
        self.timeout = float(timeout)
        self.top_k = int(top_k)
        self.active: dict[int, dict[str, Any]] = {}  # incident id -> its alert, while open
        self.pending: list[dict[str, Any]] = []  # resolved alerts not delivered yet
        self.posted = 0  # successful posts
        self.failures = 0  # failed posts
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        if resend > 0:
            self._thread = threading.Thread(target=self._resend_every, args=(float(resend),), daemon=True)
            self._thread.start()

    def __enter__(self) -> AlertmanagerPoster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, changes: list[tuple[str, Any]]) -> None:
        """Post the incident changes of a stream update (``("opened" | "resolved", incident)``)."""
        if not changes:
            return
        with self._lock:
            for kind, incident in changes:
                alert = alertmanager_alert(incident, self.labels, top_k=self.top_k)
                if kind == "resolved" or "endsAt" in alert:
                    self.active.pop(incident.id, None)
                    self.pending.append(alert)
                else:
                    self.active[incident.id] = alert
            self._post_all()

    def resend(self) -> None:
        """Post the open alerts (and any resolved one not delivered yet) again."""
        with self._lock:
            self._post_all()

    def close(self) -> None:
        """Stop re-sending; one last attempt delivers resolved alerts still pending."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 1)
        with self._lock:
            if self.pending:
                self._post_all()

    # ----------------------------------------------------------------- internals
    def _resend_every(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            self.resend()

    def _post_all(self) -> None:
        alerts = [*self.pending, *self.active.values()]
        if not alerts:
            return
        request = urllib.request.Request(
            self.endpoint,
            data=json.dumps(alerts).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.failures += 1
            reason = getattr(exc, "reason", exc)
            logger.warning("could not post %d alert(s) to %s (retried with the next post): %s",
                           len(alerts), self.endpoint, reason)  # fmt: skip
            return
        self.posted += 1
        self.pending.clear()
