"""Reconstruction through a bottleneck with a tsai model: a window the model cannot rebuild is anomalous."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from tsdiff.base import StreamGeometry
from tsdiff.errors import ParameterError
from tsdiff.frame import sliding_windows, window_starts, windows_to_rows
from tsdiff.torch_runtime import window_batch
from tsdiff.tsai.base import TsaiDetector


class TsaiReconstructionDetector(TsaiDetector):
    """Rebuild each window from a narrow code; score = the reconstruction error of each row.

    A tsai architecture (``InceptionTimePlus`` by default) encodes a window of ``window`` rows
    (metrics as channels); a head squeezes the features into ``latent`` numbers and decodes the whole
    window from them. fastai's ``fit_one_cycle`` trains it on every window of the normal data with
    the mean squared error. Windows are scored every ``stride`` rows; an entry's error is the mean
    absolute reconstruction error (robust units) over the windows that cover it, a row's score the
    mean over its metrics (smoothed over ``smooth`` rows), and ``feature_scores`` the
    per-metric errors.

    Parameters
    ----------
    arch, arch_config
        tsai architecture (``"TSTPlus"``, ``"InceptionTimePlus"``, ``"ResNetPlus"``) and its keyword
        arguments (None: tsai's defaults).
    window
        Rows per window.
    latent
        Size of the code a window is squeezed into.
    stride
        Step between scored windows (None: ``window // 4``); smaller costs more and averages more.
    epochs, batch_size, learning_rate, weight_decay, max_train_windows, validation_fraction, smooth, clip
        As for :class:`~tsdiff.tsai.forecast.TsaiForecastDetector`.
    threshold, risk
        Label threshold on the held-out rows' scores, see :class:`~tsdiff.base.BaseDetector`.
    random_state, device, n_threads, verbose
        Seed, torch device (``"auto"``, ``"cpu"``, ``"cuda"``), CPU threads (None: all cores or
        ``$TSDIFF_NUM_THREADS``) and a tqdm bar while training.
    """

    def __init__(
        self,
        arch: str = "InceptionTimePlus",
        arch_config: dict | None = None,
        window: int = 32,
        latent: int = 16,
        stride: int | None = None,
        epochs: int = 8,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-2,
        max_train_windows: int = 10000,
        validation_fraction: float = 0.2,
        smooth: int = 8,
        clip: float = 10.0,
        threshold: str = "pot",
        risk: float = 1e-3,
        random_state: int | None = None,
        device: str = "auto",
        n_threads: int | None = None,
        verbose: bool = True,
    ) -> None:
        self.arch = arch
        self.arch_config = arch_config
        self.window = window
        self.latent = latent
        self.stride = stride
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.max_train_windows = max_train_windows
        self.validation_fraction = validation_fraction
        self.smooth = smooth
        self.clip = clip
        self.threshold = threshold
        self.risk = risk
        self.random_state = random_state
        self.device = device
        self.n_threads = n_threads
        self.verbose = verbose

    def _check_params(self) -> None:
        super()._check_params()
        if int(self.latent) < 1:
            raise ParameterError(f"latent must be >= 1, got {self.latent!r}")
        if not 1 <= self._stride() <= self._window():
            raise ParameterError(f"stride must be in [1, window], got {self.stride!r}")

    def _stride(self) -> int:
        return max(1, self._window() // 4) if self.stride is None else int(self.stride)

    def min_rows(self) -> int:
        return self._window()

    def _head(self) -> Any:
        from tsdiff.tsai.training import BottleneckHead

        return partial(BottleneckHead, latent=int(self.latent))

    @staticmethod
    def _window_input(x: Any, window: int, starts: np.ndarray) -> Any:
        """``make_input(i)``: windows number ``i`` (starting at ``starts[i]``) as (batch, metrics, window)."""
        starts = np.asarray(starts, dtype=np.int64)
        return lambda i: window_batch(x, starts[i], window)

    def _batches(self, x: Any, present: Any) -> tuple[Any, np.ndarray, np.ndarray]:
        w, n_train = self._window(), self.n_train_rows_
        all_starts = np.arange(x.shape[0] - w + 1)
        make_x = self._window_input(x, w, all_starts)
        make_present = self._window_input(present, w, all_starts)

        def make_batch(i: np.ndarray) -> tuple[Any, Any, Any]:
            window = make_x(i)
            return window, window, make_present(i)

        # training windows lie inside the training rows, held-out ones inside the held-out rows
        return make_batch, all_starts[: n_train - w + 1], all_starts[n_train:]

    def _entry_errors(self, values: np.ndarray) -> np.ndarray:
        w = self._window()
        starts = window_starts(values.shape[0], w, self._stride())
        x, _ = self._network_input(values)
        rebuilt = self._predict(self._window_input(x, w, starts), len(starts))  # (windows, metrics, w)
        per_window = np.abs(
            rebuilt.transpose(0, 2, 1) - sliding_windows(values, w, starts)
        )  # (windows, w, metrics)
        return windows_to_rows(per_window, starts, values.shape[0], how="mean")

    def stream_geometry(self) -> StreamGeometry:
        # grid windows every `stride` rows from the stream start; the last, end-aligned window
        # reaches at most `window` rows back from the end, so rows `window` rows before it are final
        w, stride = self._window(), self._stride()
        before, after = self._smooth_rows()
        return StreamGeometry(period=stride, history=w + stride + before, lookahead=w + after)
