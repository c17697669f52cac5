"""Forecasting residuals with a tsai model: a row the model could not predict from its past is anomalous."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from tsdiff.base import StreamGeometry
from tsdiff.torch_runtime import window_batch
from tsdiff.tsai.base import TsaiDetector


class TsaiForecastDetector(TsaiDetector):
    """Predict each row from the ``window`` rows before it; score = the prediction error.

    A tsai architecture (``TSTPlus`` by default) reads the window (metrics as channels) and a
    linear head over all its time steps predicts every metric of the next row; fastai's
    ``fit_one_cycle`` trains it with the mean squared error on normal data. A row's score is the
    mean absolute error over its metrics in robust units (median / IQR of the training data),
    smoothed over ``smooth`` rows; ``feature_scores`` are the per-metric errors. The
    first rows of an input, which have fewer than ``window`` rows before them, are predicted from a
    history padded with the first row.

    Parameters
    ----------
    arch
        tsai architecture: ``"TSTPlus"``, ``"InceptionTimePlus"`` or ``"ResNetPlus"``.
    arch_config
        Keyword arguments of the architecture (e.g. ``{"d_model": 64, "n_layers": 2}``); None keeps
        tsai's defaults.
    window
        Rows of history the model sees.
    epochs, batch_size, learning_rate, weight_decay
        fastai one-cycle training: passes over the training windows, mini-batch, peak step size,
        decoupled weight decay.
    max_train_windows
        Training windows are thinned to at most this many, evenly spaced (bounds an epoch on long
        series).
    validation_fraction
        Share of the training rows (the last ones) held out: fastai's validation loss and the rows
        the label threshold is fitted on.
    smooth
        Length (rows) of a centred moving mean over the errors (default: a quarter window, as the
        diffusion detector smooths over one grating segment); 1 turns it off. Anomalies in
        operations data last many rows while one row's error is noisy. A live row's final score
        waits for ``smooth // 2`` later rows.
    clip
        Scaled inputs are clipped to ``[-clip, clip]`` before reaching the network.
    threshold, risk
        Label threshold on the held-out rows' scores, see :class:`~tsdiff.base.BaseDetector`.
    random_state
        Seed of weights and batch order: the same seed gives the same scores.
    device
        ``"auto"`` (CUDA when present, else the CPU), ``"cpu"`` or ``"cuda"``.
    n_threads
        torch CPU threads; None: every available core, or ``$TSDIFF_NUM_THREADS`` when set. Small
        models on a busy machine run much faster on 1 thread.
    verbose
        A tqdm progress bar over training batches on stderr.
    """

    def __init__(
        self,
        arch: str = "TSTPlus",
        arch_config: dict | None = None,
        window: int = 32,
        epochs: int = 5,
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

    def _head(self) -> Any:
        from tsdiff.tsai.training import ForecastHead

        return ForecastHead

    @staticmethod
    def _history_input(x: Any, window: int) -> Any:
        """``make_input(rows)``: the ``window`` rows before each row, as (batch, metrics, window).

        ``x`` is padded in front with ``window`` copies of its first row, so every row has a history.
        """
        import torch

        padded = torch.cat([x[:1].expand(window, -1), x])
        return partial(window_batch, padded, window=window)  # row r's history starts at r in padded

    def _batches(self, x: Any, present: Any) -> tuple[Any, np.ndarray, np.ndarray]:
        import torch

        w = self._window()
        make_input = self._history_input(x, w)

        def make_batch(rows: np.ndarray) -> tuple[Any, Any, Any]:
            idx = torch.from_numpy(rows)
            return make_input(rows), x[idx], present[idx]

        # training targets have a full history of real rows; held-out targets follow the training rows
        return make_batch, np.arange(w, self.n_train_rows_), np.arange(self.n_train_rows_, x.shape[0])

    def _entry_errors(self, values: np.ndarray) -> np.ndarray:
        x, _ = self._network_input(values)
        predicted = self._predict(self._history_input(x, self._window()), len(values))
        return np.abs(predicted - values)

    def stream_geometry(self) -> StreamGeometry:
        before, after = self._smooth_rows()
        return StreamGeometry(period=1, history=self._window() + before, lookahead=after)
