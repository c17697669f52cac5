"""What the tsai detectors share: parameters, training on a held-out split, batched scoring, weights.

The models come from tsai (``TSTPlus``, ``InceptionTimePlus``, ``ResNetPlus``) and are trained by
fastai's ``Learner.fit_one_cycle``; tsai and fastai are imported only when a detector is fitted or
loaded, so ``import tsdiff`` never pays for them. A subclass says what one training example is
(:meth:`_batches`) and how model outputs become per-entry errors (:meth:`_entry_errors`).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np

from tsdiff.base import BaseDetector
from tsdiff.errors import ParameterError
from tsdiff.frame import centered_mean, mean_over_present
from tsdiff.torch_runtime import (
    cpu_threads,
    load_module_arrays,
    make_seed,
    module_arrays,
    network_input,
    resolve_device,
)
from tsdiff.tsai.compat import ARCHS

ARCH_NAMES = tuple(ARCHS)


class TsaiDetector(BaseDetector):
    """Base of the detectors built on tsai models (see :class:`TsaiForecastDetector` for parameters).

    Training uses the first ``1 - validation_fraction`` of the rows; fastai reports the loss on the
    rest, and the label threshold is fitted on the scores of those held-out rows (scores of rows the
    model was trained on would be optimistic). Inputs are scaled robustly, missing cells carried
    forward (:func:`tsdiff.frame.fill_missing`) and clipped to ``[-clip, clip]`` for the network;
    errors are measured against the unclipped values, and a missing cell is no evidence (error 0).
    """

    # ----------------------------------------------------------------- for subclasses
    @abstractmethod
    def _head(self) -> Any:
        """``head(nf, c_out, seq_len)`` that tsai's architecture puts on its backbone."""

    @abstractmethod
    def _batches(self, x: Any, present: Any) -> tuple[Any, np.ndarray, np.ndarray]:
        """(make_batch(positions) -> (input, target, present), train positions, validation positions)."""

    @abstractmethod
    def _entry_errors(self, values: np.ndarray) -> np.ndarray:
        """Absolute error of every entry (n_rows, n_metrics) in robust units; NaN where missing."""

    # ----------------------------------------------------------------- parameters
    def _window(self) -> int:
        return int(self.window)

    def _check_params(self) -> None:
        super()._check_params()
        checks = [
            (self.arch in ARCH_NAMES, f"arch must be one of {ARCH_NAMES}, got {self.arch!r}"),
            (
                self.arch_config is None or isinstance(self.arch_config, dict),
                "arch_config must be a dict or None",
            ),
            (int(self.window) >= 2, "window must be >= 2"),
            (int(self.epochs) >= 1, "epochs must be >= 1"),
            (int(self.batch_size) >= 1, "batch_size must be >= 1"),
            (float(self.learning_rate) > 0, "learning_rate must be > 0"),
            (float(self.weight_decay) >= 0, "weight_decay must be >= 0"),
            (int(self.max_train_windows) >= 1, "max_train_windows must be >= 1"),
            (int(self.smooth) >= 1, "smooth must be >= 1 (1: no smoothing)"),
            (float(self.clip) > 0, "clip must be > 0"),
            (self.n_threads is None or int(self.n_threads) >= 1, "n_threads must be None or >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ParameterError(message)
        reserved = {"custom_head", "c_in", "c_out", "seq_len"} & set(self.arch_config or {})
        if reserved:
            raise ParameterError(f"arch_config may not set {sorted(reserved)}: the detector sets them")

    def _threads(self) -> int | None:
        return None if self.n_threads is None else int(self.n_threads)

    def min_fit_rows(self) -> int:
        return 2 * self._window() + 2

    def _holdout_bounds(self) -> tuple[int, int]:
        # at least one window and one row on each side
        return self._window() + 1, self._window() + 1

    def _thin(self, positions: np.ndarray) -> np.ndarray:
        """At most ``max_train_windows`` positions, evenly spaced (bounds an epoch's cost)."""
        step = max(1, int(np.ceil(len(positions) / int(self.max_train_windows))))
        return positions[::step]

    def _network_input(self, values: np.ndarray) -> tuple[Any, Any]:
        """float32 tensors (n, k): values with gaps filled and clipped, and the present-mask."""
        return network_input(values, float(self.clip), fill="carry")

    # ----------------------------------------------------------------- fit
    def _build(self, n_metrics: int) -> Any:
        from tsdiff.tsai.compat import load_tsai

        load_tsai()
        from tsdiff.tsai.training import build_model

        try:
            return build_model(
                self.arch, n_metrics, self._window(), self._head(), dict(self.arch_config or {})
            )
        except (TypeError, ValueError, RuntimeError, AssertionError) as exc:
            raise ParameterError(
                f"{self.arch} cannot be built with arch_config={self.arch_config}: {exc}"
            ) from None

    def _fit(self, values: np.ndarray) -> None:
        from tsdiff.tsai.compat import load_tsai

        load_tsai()
        from tsdiff.tsai.training import seeded, train

        self.seed_ = make_seed(self.random_state)
        device = resolve_device(self.device)
        x, present = self._network_input(values)
        make_batch, train_pos, valid_pos = self._batches(x, present)
        with cpu_threads(self._threads()), seeded(self.seed_):
            model = self._build(values.shape[1])
            self.history_ = train(
                model,
                make_batch,
                (self._thin(train_pos), valid_pos),
                epochs=int(self.epochs),
                batch_size=int(self.batch_size),
                learning_rate=float(self.learning_rate),
                weight_decay=float(self.weight_decay),
                device=device,
                verbose=bool(self.verbose),
            )
        self.model_ = model.cpu().eval()

    # ----------------------------------------------------------------- score
    def _predict(self, make_input: Any, n: int) -> np.ndarray:
        from tsdiff.tsai.training import predict

        with cpu_threads(self._threads()):
            return predict(
                self.model_, make_input, n, max(256, int(self.batch_size)), resolve_device(self.device)
            )

    def _smooth_rows(self) -> tuple[int, int]:
        """Rows before and after a row that the centred smoothing reaches."""
        length = int(self.smooth)
        return length // 2, length - length // 2 - 1

    def _score(
        self, values: np.ndarray, offset: int = 0, memo: dict | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        errors = self._entry_errors(values)
        row = centered_mean(mean_over_present(errors, axis=1), int(self.smooth))
        feature = centered_mean(np.nan_to_num(errors, nan=0.0), int(self.smooth))
        return row, feature

    # ----------------------------------------------------------------- persistence
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"seed": self.seed_, "history": self.history_}, module_arrays(self.model_)

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.seed_ = int(state["seed"])
        self.history_ = list(state["history"])
        if self.n_train_rows_ is None and "n_train_rows" in state:  # saved before the base class kept it
            self.n_train_rows_ = int(state["n_train_rows"])
        if self.calibration_scores_ is None and "calibration" in arrays:
            self.calibration_scores_ = np.asarray(arrays["calibration"], dtype=np.float64)
        self.model_ = load_module_arrays(self._build(len(self.feature_names_in_)), arrays).eval()
