"""What the torch-based detectors share: device, CPU threads, seeds, weights, and windows as tensors."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from tsdiff.errors import ParameterError
from tsdiff.serialize import prefixed, unprefixed


def resolve_device(device: str) -> Any:
    """``"auto"``: CUDA when present, else the CPU; otherwise the named torch device (checked)."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ParameterError(f"unknown device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device {device!r} was asked for but CUDA is not available here")
    return dev


def available_cpus() -> int:
    """CPUs this process may run on (respects affinity masks and container limits where visible)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


#: environment variable capping the torch threads of a process (e.g. one of several workers on a machine)
THREADS_ENV = "TSDIFF_NUM_THREADS"


def default_threads() -> int:
    """Threads torch uses when a detector does not say: ``$TSDIFF_NUM_THREADS`` if set, else every CPU."""
    cap = os.environ.get(THREADS_ENV, "").strip()
    if cap.isdigit() and int(cap) > 0:
        return min(int(cap), available_cpus())
    return available_cpus()


@contextlib.contextmanager
def cpu_threads(n: int | None = None) -> Iterator[None]:
    """Run torch on ``n`` threads (default: :func:`default_threads`), restoring the previous count after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n or default_threads())
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_seed(random_state: int | None) -> int:
    """The seed to use: ``random_state`` itself, or a fresh one drawn from the OS when it is None."""
    if random_state is None:
        return int(np.random.SeedSequence().entropy % (2**62))
    return int(random_state) % (2**62)


def module_arrays(module: Any, prefix: str = "model") -> dict[str, np.ndarray]:
    """A torch module's state as named numpy arrays (``prefix.<parameter>``), ready for safetensors."""
    return prefixed(prefix, {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()})


def load_module_arrays(module: Any, arrays: dict[str, np.ndarray], prefix: str = "model") -> Any:
    """Load what :func:`module_arrays` wrote into ``module`` (every tensor must match) and return it."""
    import torch

    weights = {k: torch.from_numpy(v.copy()) for k, v in unprefixed(arrays, prefix).items()}
    module.load_state_dict(weights, strict=True)
    return module


def network_input(values: np.ndarray, clip: float | None, fill: str = "zero") -> tuple[Any, Any]:
    """Scaled rows (n, k) as a network reads them: float32 values and the bool mask of present cells.

    A missing cell becomes 0 (``fill="zero"``: the training median, with the mask telling the
    model it is missing) or the last value seen in its column (``"carry"``, see
    :func:`tsdiff.frame.fill_missing`); values are then clipped to ``[-clip, clip]`` (None: not
    clipped), so rare huge values cannot dominate a network, while errors can still be measured
    against the unclipped values.
    """
    import torch

    from tsdiff.frame import fill_missing

    present = ~np.isnan(values)
    x = np.where(present, values, 0.0) if fill == "zero" else fill_missing(values)
    if clip is not None:
        x = np.clip(x, -clip, clip)
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(present)


def window_batch(x: Any, starts: Any, window: int) -> Any:
    """The windows of ``x`` (n, k) that begin at rows ``starts``, as (len(starts), k, window)."""
    import torch

    first = torch.as_tensor(np.asarray(starts, dtype=np.int64), device=x.device)
    return x[first[:, None] + torch.arange(window, device=x.device)].transpose(1, 2)
