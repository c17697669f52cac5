"""The Dask client a fleet run uses: one given, one connected to a scheduler address, or a local cluster."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from tsdiff.errors import MissingDependencyError, ParameterError
from tsdiff.torch_runtime import THREADS_ENV

INSTALL_HINT = "install the fleet extra: pip install 'tsdiff[fleet]'"


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
    options: dict[str, Any] = {}
    if processes:
        options["env"] = {THREADS_ENV: str(int(threads_per_worker))}
    cluster = distributed.LocalCluster(
        n_workers=int(n_workers),
        threads_per_worker=int(threads_per_worker),
        processes=bool(processes),
        dashboard_address=":0",  # any free port: several fleets may run on one machine
        silence_logs=logging.ERROR,
        **options,
    )
    with cluster, distributed.Client(cluster) as opened:
        yield opened
