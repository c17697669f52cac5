"""The Dask client a fleet run uses: one given, one connected to a scheduler address, or a local cluster."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from tsdiff.errors import MissingDependencyError, ParameterError
from tsdiff.torch_runtime import THREADS_ENV

INSTALL_HINT = "install the fleet extra: pip install 'tsdiff[fleet]'"

#: Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in every worker process it spawns. Setting it turns off
#: glibc's adaptive mmap threshold, so each large tensor a torch model allocates is a fresh mmap
#: and page faults: training a tsai model took 22 s in a worker against 10 s in a plain process
#: (benchmarks/RESULTS.md, "Fleet"). Our local clusters leave glibc's defaults alone.
NO_MALLOC_TRIM = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise MissingDependencyError(f"tsdiff.fleet needs dask.distributed ({exc}): {INSTALL_HINT}") from None
    return distributed


@contextlib.contextmanager
def fleet_client(
    client: Any = None,
    address: str | None = None,
    n_workers: int = 2,
    threads_per_worker: int = 1,
    processes: bool = True,
) -> Iterator[Any]:
    """Yield a ``distributed.Client``; close afterwards only what was opened here.

    Parameters
    ----------
    client
        An existing client: used as it is (and left open).
    address
        A scheduler address (``tcp://host:8786``): connect to that cluster, whatever its size.
    n_workers, threads_per_worker, processes
        The local cluster started when neither is given. Each worker process caps torch at
        ``threads_per_worker`` threads (``$TSDIFF_NUM_THREADS``), so workers do not fight over cores.
    """
    distributed = _distributed()
    if client is not None:
        if address is not None:
            raise ParameterError("give either a client or a scheduler address, not both")
        yield client
        return
    if address is not None:
        try:
            opened = distributed.Client(address, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise ParameterError(f"cannot reach the Dask scheduler at {address!r}: {exc}") from None
        with opened:
            yield opened
        return
    if int(n_workers) < 1 or int(threads_per_worker) < 1:
        raise ParameterError("n_workers and threads_per_worker must be >= 1")
    with local_cluster(int(n_workers), int(threads_per_worker), bool(processes)) as cluster:
        with distributed.Client(cluster) as opened:
            yield opened


def local_cluster(n_workers: int, threads_per_worker: int = 1, processes: bool = True, **kwargs: Any) -> Any:
    """A ``distributed.LocalCluster`` set up for fleet work (use it as a context manager).

    Each worker process caps torch at ``threads_per_worker`` threads (``$TSDIFF_NUM_THREADS``) and
    keeps glibc's own memory trimming (see :data:`NO_MALLOC_TRIM`); the dashboard takes any free
    port, so several fleets may run on one machine. ``kwargs`` go to ``LocalCluster``.
    """
    import dask

    distributed = _distributed()
    options: dict[str, Any] = {
        "dashboard_address": ":0",
        "silence_logs": logging.ERROR,
        **kwargs,
    }
    if processes:
        options["env"] = {THREADS_ENV: str(threads_per_worker), **options.get("env", {})}
    with dask.config.set(NO_MALLOC_TRIM):  # read when the nannies are created
        return distributed.LocalCluster(
            n_workers=n_workers, threads_per_worker=threads_per_worker, processes=processes, **options
        )
