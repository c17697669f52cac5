"""ImDiffusionDetector: anomalies are where a diffusion model trained on normal windows imputes badly."""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import asdict
from typing import Any, ClassVar

import numpy as np

from tsdiff.base import BaseDetector, StreamGeometry
from tsdiff.errors import ParameterError
from tsdiff.frame import centered_mean, window_starts, windows_to_rows
from tsdiff.torch_runtime import cpu_threads, load_module_arrays, make_seed, module_arrays, resolve_device

logger = logging.getLogger(__name__)

COMBINE = ("vote", "mean")


class ImDiffusionDetector(BaseDetector):
    """Imputation diffusion (ImDiffusion-style) anomaly detector.

    A denoising diffusion model learns to impute masked entries of normal windows. To score a
    series, each window is cut by two complementary grating masks (time segments alternately
    hidden); each half is imputed from the other, and the imputation error of every entry is
    measured at several denoising steps. Steps form an ensemble:

    * each step's per-row error (mean absolute error over the metrics, in robust units) gets its
      own threshold fitted on held-out training rows (POT by default), and its error is divided by
      that threshold;
    * ``combine="vote"`` (default): a row's score is the ``m``-th largest of these ratios, where
      ``m = ceil(vote_fraction * steps)``; the label threshold is 1, so a row is flagged exactly
      when at least ``m`` steps vote for it, and the score stays continuous for ranking;
    * ``combine="mean"``: the score is the mean ratio and one threshold is fitted on it.

    Windows overlap by half; each row takes its error from the window in which it lies closest to
    the centre (first and last rows from the first and last windows). ``feature_scores`` is the
    per-metric imputation error averaged over the steps. Missing (NaN) entries are never used as
    context and never counted in the error.

    Parameters
    ----------
    window
        Rows per window; windows are scored every ``window // 2`` rows.
    grating_segments
        Time segments per window for the grating masks (each mask hides every other segment).
    grating_layout
        ``"time"`` (the reference: a mask hides the same segments of every metric) or
        ``"checker"`` (the hidden segments alternate from one metric to the next, so an
        imputation also sees the other metrics at the same times).
    mask_ratio
        Share of observed entries hidden by a random training mask.
    grating_fraction
        Share of training windows masked with a grating mask instead of a random one, so the
        model practises the masks it meets when scoring (the mask strategy is an input).
    diffusion_steps, schedule
        Number of diffusion steps T and the noise schedule (``"quad"``, ``"linear"``, ``"cosine"``).
    prediction
        What the denoiser outputs: ``"x0"`` (default), the clean values, or ``"eps"``, the noise
        (as the reference). The loss is the squared error of that output on the imputation
        targets. With ``"eps"`` the clean estimate divides by ``sqrt(alpha_bar_t)``, which the
        quad schedule drives towards 0 at its last steps: the chain's first estimates are mostly
        clipped noise and the chain does not recover (on the synthetic benchmark its final
        imputation error was 1.5 standard deviations, against 0.19 with ``"x0"`` for the same
        training budget), so the imputation error carried little evidence.
    scoring
        ``"chain"`` runs the reverse chain (deterministic DDIM updates) over ``reverse_steps``
        evenly spaced steps and records the error at the last ``ensemble_steps`` of them;
        ``"single"`` (fast) skips the chain and takes one noise-prediction pass at each of
        ``ensemble_steps`` evenly spaced steps.
    reverse_steps, ensemble_steps
        Steps visited by the chain, and steps whose errors vote.
    conditioning
        ``"unconditional"`` (context entries forward-noised to the current step, as ImDiffusion)
        or ``"conditional"`` (context entries given clean, as CSDI).
    combine, vote_fraction
        How the steps are combined (see above).
    smooth
        Length (rows) of a centred moving mean applied to the errors before thresholds and votes;
        ``None`` uses one grating segment (``window // grating_segments``), 0 or 1 turns it off.
        Anomalies in operations data last for many rows while single-row errors are noisy, so
        averaging over a segment ranks whole anomalous stretches above isolated noisy rows. It
        delays a live row's score by ``smooth // 2`` rows beyond the window.
    channels, layers, heads
        Size of the denoiser.
    patch
        Time steps per token (``window`` must be a multiple): the denoiser embeds each metric's
        window in patches of this many steps, which cuts its cost by this factor on the CPU.
    batch_size, learning_rate
        Training mini-batch (windows) and Adam step size.
    max_steps, max_epochs
        Training stops after ``max_steps`` optimisation steps or ``max_epochs`` passes over the
        training windows, whichever comes first (the step size decays over that span).
    max_seconds
        A safety net on training wall time; when it stops training first, results depend on the
        machine's speed (a warning says so), so the defaults keep it from binding.
    eval_every, patience
        Validation every ``eval_every`` steps; stop after ``patience`` evaluations without improvement.
    validation_fraction
        Share of the training rows (the last ones) held out for early stopping and thresholds.
    clip
        Scaled inputs are clipped to [-clip, clip] robust units (keeps rare huge values from
        dominating training); errors are measured in the same units.
    threshold, risk
        Method and target risk of the per-step thresholds (see :class:`~tsdiff.base.BaseDetector`).
    random_state
        Seed of weights, masks, noise and batches.
    device
        ``"auto"`` (CUDA when present, else CPU on every available core), ``"cpu"`` or ``"cuda"``.
    verbose
        Show tqdm progress bars for training and scoring.
    """

    #: values for parameters that a saved model predates: it was trained and scored that way
    LEGACY_PARAMS: ClassVar[dict[str, Any]] = {"prediction": "eps", "grating_layout": "time"}

    def __init__(
        self,
        window: int = 64,
        grating_segments: int = 4,
        grating_layout: str = "time",
        mask_ratio: float = 0.7,
        grating_fraction: float = 0.5,
        diffusion_steps: int = 50,
        schedule: str = "quad",
        prediction: str = "x0",
        scoring: str = "chain",
        reverse_steps: int = 10,
        ensemble_steps: int = 10,
        conditioning: str = "unconditional",
        combine: str = "vote",
        vote_fraction: float = 0.5,
        smooth: int | None = None,
        channels: int = 32,
        layers: int = 3,
        heads: int = 2,
        patch: int = 4,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        max_steps: int = 900,
        max_epochs: float = 20.0,
        max_seconds: float = 600.0,
        eval_every: int = 100,
        patience: int = 5,
        validation_fraction: float = 0.2,
        clip: float = 10.0,
        threshold: str = "pot",
        risk: float = 1e-3,
        random_state: int | None = None,
        device: str = "auto",
        verbose: bool = True,
    ) -> None:
        self.window = window
        self.grating_segments = grating_segments
        self.grating_layout = grating_layout
        self.mask_ratio = mask_ratio
        self.grating_fraction = grating_fraction
        self.diffusion_steps = diffusion_steps
        self.schedule = schedule
        self.prediction = prediction
        self.scoring = scoring
        self.reverse_steps = reverse_steps
        self.ensemble_steps = ensemble_steps
        self.conditioning = conditioning
        self.combine = combine
        self.vote_fraction = vote_fraction
        self.smooth = smooth
        self.channels = channels
        self.layers = layers
        self.heads = heads
        self.patch = patch
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_steps = max_steps
        self.max_epochs = max_epochs
        self.max_seconds = max_seconds
        self.eval_every = eval_every
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.clip = clip
        self.threshold = threshold
        self.risk = risk
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # ----------------------------------------------------------------- configuration
    def _clip(self) -> float | None:
        return float(self.clip) if self.clip is not None else None

    def min_rows(self) -> int:
        return int(self.window)

    def min_fit_rows(self) -> int:
        # a validation part of at least one window, and a training part of at least one window
        return max(2 * int(self.window), math.ceil(int(self.window) / float(self.validation_fraction)))

    def _holdout_bounds(self) -> tuple[int, int]:
        return int(self.window), int(self.window)

    def _check_params(self) -> None:
        super()._check_params()
        from tsdiff.diffusion.imputation import CONDITIONING, PREDICTIONS, SCORING_MODES
        from tsdiff.diffusion.masks import LAYOUTS

        checks = [
            (int(self.window) >= 4, "window must be >= 4"),
            (2 <= int(self.grating_segments) <= int(self.window), "grating_segments must be in [2, window]"),
            (self.grating_layout in LAYOUTS, f"grating_layout must be one of {LAYOUTS}"),
            (0.0 < float(self.mask_ratio) < 1.0, "mask_ratio must be in (0, 1)"),
            (0.0 <= float(self.grating_fraction) <= 1.0, "grating_fraction must be in [0, 1]"),
            (self.prediction in PREDICTIONS, f"prediction must be one of {PREDICTIONS}"),
            (self.scoring in SCORING_MODES, f"scoring must be one of {SCORING_MODES}"),
            (self.conditioning in CONDITIONING, f"conditioning must be one of {CONDITIONING}"),
            (self.combine in COMBINE, f"combine must be one of {COMBINE}"),
            (0.0 < float(self.vote_fraction) <= 1.0, "vote_fraction must be in (0, 1]"),
            (
                1 <= int(self.ensemble_steps) <= int(self.reverse_steps),
                "need 1 <= ensemble_steps <= reverse_steps",
            ),
            (
                int(self.reverse_steps) <= int(self.diffusion_steps),
                "reverse_steps must be <= diffusion_steps",
            ),
            (int(self.channels) % int(self.heads) == 0, "channels must be a multiple of heads"),
            (
                int(self.patch) >= 1 and int(self.window) % int(self.patch) == 0,
                "window must be a multiple of patch",
            ),
            (int(self.batch_size) >= 1 and int(self.max_steps) >= 1, "batch_size and max_steps must be >= 1"),
            (
                float(self.max_seconds) > 0 and int(self.eval_every) >= 1,
                "max_seconds, eval_every must be > 0",
            ),
            (int(self.patience) >= 1, "patience must be >= 1"),
            (float(self.max_epochs) > 0, "max_epochs must be > 0"),
            (self.smooth is None or int(self.smooth) >= 0, "smooth must be None or >= 0"),
            (self.clip is None or float(self.clip) > 0, "clip must be positive or None"),
        ]
        for ok, message in checks:
            if not ok:
                raise ParameterError(message)

    def _steps(self) -> tuple[np.ndarray, np.ndarray]:
        """Steps visited by the chain (decreasing) and steps whose errors are recorded."""
        from tsdiff.diffusion.schedule import NoiseSchedule

        sched = NoiseSchedule(int(self.diffusion_steps), self.schedule)
        visit = sched.ddim_steps(int(self.reverse_steps))
        if self.scoring == "chain":
            record = visit[len(visit) - int(self.ensemble_steps) :]
        else:
            record = sched.ddim_steps(int(self.ensemble_steps) + 1)[:-1]  # evenly spaced, step 0 left out
        return visit, record

    def _votes_needed(self) -> int:
        return max(1, math.ceil(float(self.vote_fraction) * len(self._steps()[1])))

    # ----------------------------------------------------------------- fit
    def _fit(self, values: np.ndarray) -> None:
        import torch

        from tsdiff.diffusion.training import TrainingConfig, ValidationSet, WindowSource, train_denoiser

        self.seed_ = make_seed(self.random_state)
        device = resolve_device(self.device)
        train_part, val_part = values[: self.n_train_rows_], values[self.n_train_rows_ :]
        with cpu_threads(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed_)
            model = self._build_model(values.shape[1]).to(device)
            generator = torch.Generator(device=device).manual_seed(self.seed_)
            process = self._process(device)
            config = TrainingConfig(
                window=int(self.window),
                batch_size=int(self.batch_size),
                learning_rate=float(self.learning_rate),
                max_steps=self._train_steps(len(train_part)),
                max_seconds=float(self.max_seconds),
                eval_every=int(self.eval_every),
                patience=int(self.patience),
                mask_ratio=float(self.mask_ratio),
                grating_fraction=float(self.grating_fraction),
                grating_segments=int(self.grating_segments),
                grating_layout=self.grating_layout,
                conditioning=self.conditioning,
            )
            train_src = WindowSource(*self._tensors(train_part, device), int(self.window))
            val_src = WindowSource(*self._tensors(val_part, device), int(self.window))
            validation = ValidationSet(
                val_src,
                process,
                self._steps()[1],
                int(self.grating_segments),
                self.conditioning,
                256,
                generator,
                self.grating_layout,
            )
            self.history_ = train_denoiser(
                model, process, train_src, validation, config, generator, self.verbose
            )
        self.model_ = model.cpu()

    def _train_steps(self, n_rows: int) -> int:
        """Optimisation steps: ``max_steps``, or fewer when ``max_epochs`` passes come first."""
        n_windows = max(1, n_rows - int(self.window) + 1)
        per_epoch = n_windows / int(self.batch_size)
        return max(1, min(int(self.max_steps), math.ceil(float(self.max_epochs) * per_epoch)))

    def _build_model(self, n_metrics: int) -> Any:
        from tsdiff.diffusion.denoiser import Denoiser
        from tsdiff.diffusion.masks import N_STRATEGIES

        return Denoiser(
            n_metrics,
            int(self.diffusion_steps),
            channels=int(self.channels),
            layers=int(self.layers),
            heads=int(self.heads),
            patch=int(self.patch),
            n_strategies=N_STRATEGIES,
        )

    def _process(self, device: Any) -> Any:
        from tsdiff.diffusion.imputation import DiffusionProcess
        from tsdiff.diffusion.schedule import NoiseSchedule

        schedule = NoiseSchedule(int(self.diffusion_steps), self.schedule)
        return DiffusionProcess(schedule, device, self._clip(), self.prediction)

    def _tensors(self, values: np.ndarray, device: Any, clip: bool = True) -> tuple[Any, Any]:
        """(K, n) float32 values (NaN -> 0; clipped to the model's range) and the present-mask."""
        import torch

        present = ~np.isnan(values)
        x = np.where(present, values, 0.0)
        if clip and self.clip is not None:
            x = np.clip(x, -float(self.clip), float(self.clip))
        x = torch.from_numpy(x.T.astype(np.float32).copy()).to(device)
        return x, torch.from_numpy(present.T.copy()).to(device)

    def _calibrate(self, values: np.ndarray) -> np.ndarray:
        """Per-step thresholds from the held-out rows' errors (the steps' votes are set here).

        The held-out rows are scored on their own, windows starting at their first row.
        """
        from tsdiff.thresholds import make_threshold

        step_errors, _ = self._reduce(self._entry_errors(values[self.n_train_rows_ :]))
        models = [make_threshold(self.threshold, risk=float(self.risk)).fit(e) for e in step_errors.T]
        self.step_threshold_models_ = models
        tiny = np.finfo(np.float64).tiny
        self.step_thresholds_ = np.array([max(float(m.threshold_), tiny) for m in models])
        return self._combine(step_errors)

    # ----------------------------------------------------------------- score
    def _entry_errors(self, values: np.ndarray, offset: int = 0, memo: dict | None = None) -> np.ndarray:
        """Imputation error of every entry at each recorded step: (n, S, K), NaN where missing.

        Errors compare the imputation with the unclipped scaled value, so a value far outside the
        model's range still counts at its full size. ``offset`` is the row number of ``values[0]``
        in a longer stream (it keys the noise, so a window's noise does not depend on the call).
        ``memo`` maps a window's stream position to its errors: a stream rescoring its buffer
        computes only the windows it has not seen (a window's rows never change once received).
        """
        import torch
        from tqdm.auto import tqdm

        from tsdiff.diffusion.imputation import imputation_errors, noise_draws, window_noise
        from tsdiff.diffusion.masks import GratingMask

        w = int(self.window)
        n, k = values.shape
        stride = max(1, w // 2)
        starts = window_starts(n, w, stride)
        visit, record = self._steps()
        device = resolve_device(self.device)
        model = self.model_.to(device).eval()
        process = self._process(device)
        grating = GratingMask(w, int(self.grating_segments), self.grating_layout)
        draws = noise_draws(self.scoring, len(visit), len(record))
        x_all, present_all = self._tensors(values, device)
        truth_all, _ = self._tensors(values, device, clip=False)
        per_window = np.empty((len(starts), w, len(record), k), dtype=np.float32)
        todo = np.arange(len(starts))
        if memo is not None:
            known = np.array([offset + int(s) in memo for s in starts], dtype=bool)
            for i in np.flatnonzero(known):
                per_window[i] = memo[offset + int(starts[i])]
            todo = np.flatnonzero(~known)
        batch = max(1, int(self.batch_size) * 2)
        progress = tqdm(total=len(todo), desc="scoring", unit="window", disable=not self.verbose, leave=False)
        with cpu_threads(), torch.inference_mode():
            for b in range(0, len(todo), batch):
                rows = todo[b : b + batch]
                chunk = starts[rows]
                idx = torch.as_tensor(chunk, device=device)[:, None] + torch.arange(w, device=device)
                x0 = x_all[:, idx].transpose(0, 1)  # (B, K, L)
                truth = truth_all[:, idx].transpose(0, 1)
                present = present_all[:, idx].transpose(0, 1)
                noise = window_noise(self.seed_, chunk + offset, (2, draws, k, w), device)
                err = imputation_errors(
                    model,
                    process,
                    x0,
                    present,
                    grating,
                    visit,
                    record,
                    noise,
                    self.scoring,
                    self.conditioning,
                    truth,
                )  # (S, B, K, L)
                per_window[rows] = err.permute(1, 3, 0, 2).cpu().numpy()
                if memo is not None:  # grid windows only: the last, end-aligned one moves each call
                    for i in rows:
                        if (offset + int(starts[i])) % stride == 0:
                            memo[offset + int(starts[i])] = per_window[i].copy()
                progress.update(len(chunk))
        progress.close()
        self.model_ = model.cpu()
        return windows_to_rows(per_window, starts, n, how="center")  # (n, S, K)

    def _reduce(self, entry: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-row error at each step (n, S) and per-row, per-metric error (n, K), in robust units.

        Means over the metrics present in a row (and over the steps, for a metric); a row with no
        value at all gets 0 (no evidence). Both are then smoothed over time (``smooth``).
        """
        with warnings.catch_warnings():  # rows entirely missing give NaN means, replaced below
            warnings.simplefilter("ignore", category=RuntimeWarning)
            step_errors = np.nanmean(entry, axis=2)
            metric_errors = np.nanmean(entry, axis=1)
        length = self._smooth_length()
        step_errors = centered_mean(np.nan_to_num(step_errors, nan=0.0), length)
        return step_errors, centered_mean(np.nan_to_num(metric_errors, nan=0.0), length)

    def _smooth_length(self) -> int:
        if self.smooth is None:
            return max(1, int(self.window) // int(self.grating_segments))
        return int(self.smooth)

    def _combine(self, step_errors: np.ndarray) -> np.ndarray:
        ratios = step_errors / self.step_thresholds_[None, :]
        if self.combine == "mean":
            return ratios.mean(axis=1)
        m = self._votes_needed()
        return -np.partition(-ratios, m - 1, axis=1)[:, m - 1]  # the m-th largest ratio

    def _score(
        self, values: np.ndarray, offset: int = 0, memo: dict | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        step_errors, metric_errors = self._reduce(self._entry_errors(values, offset, memo))
        return self._combine(step_errors), metric_errors

    def stream_geometry(self) -> StreamGeometry:
        # windows every window//2 rows from the stream start; a row takes its errors from the window
        # it is most central in (reaching window - window//4 rows ahead, plus the last window's
        # shift), then the centred smoothing reaches length - length//2 - 1 rows further
        w, length = int(self.window), self._smooth_length()
        ahead = length - length // 2 - 1
        return StreamGeometry(period=max(1, w // 2), history=2 * w + length, lookahead=w + ahead)

    def _fit_threshold(self, calibration_scores: np.ndarray) -> None:
        if self.combine == "mean":
            super()._fit_threshold(calibration_scores)
            return
        self.threshold_model_ = None
        self.threshold_ = 1.0
        self.threshold_method_ = (
            f"vote: at least {self._votes_needed()} of {len(self.step_thresholds_)} denoising steps "
            f"above their own {self.threshold} thresholds"
        )

    # ----------------------------------------------------------------- persistence
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = module_arrays(self.model_)
        arrays["step_thresholds"] = self.step_thresholds_
        state = {
            "seed": self.seed_,
            "n_metrics": int(self.model_.metric_emb.num_embeddings),
            "step_threshold_models": [m.to_dict() for m in self.step_threshold_models_],
            "history": asdict(self.history_),
        }
        return state, arrays

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        from tsdiff.diffusion.training import TrainingHistory
        from tsdiff.thresholds import BaseThreshold

        self.seed_ = int(state["seed"])
        self.model_ = load_module_arrays(self._build_model(int(state["n_metrics"])), arrays).eval()
        self.step_thresholds_ = np.asarray(arrays["step_thresholds"], dtype=np.float64)
        self.step_threshold_models_ = [BaseThreshold.from_dict(d) for d in state["step_threshold_models"]]
        self.history_ = TrainingHistory(**state["history"])
