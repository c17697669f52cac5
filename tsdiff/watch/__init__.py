"""``tsdiff watch``: score a Prometheus server's metrics as they arrive and export the result.

:class:`Watcher` (``tsdiff.watch.watcher``) polls the server for the rows that are complete,
scores them with a :class:`~tsdiff.stream.StreamScorer`, logs them
(``tsdiff.watch.rowlog``) and keeps what :func:`serve` exports at ``/metrics`` for Prometheus to
scrape (``tsdiff.watch.exposition``). Their docstrings say what is exported and what the watcher
guarantees under a kill, an outage, a second process or a clock skew.
"""

from tsdiff.watch.exposition import serve
from tsdiff.watch.watcher import STATE_FORMAT, STATE_VERSION, Watcher

__all__ = ["STATE_FORMAT", "STATE_VERSION", "Watcher", "serve"]
