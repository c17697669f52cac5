"""The diffusion detector's settings, checked once and shared by training, scoring and voting.

:class:`DiffusionConfig` holds what the model is (window, masks, schedule, denoiser size), how it
is trained and how its errors are scored and voted on; everything derived from those settings
(the steps the chain visits, the votes a row needs, the smoothing length, the denoiser, the stream
reach) is computed here, in one place. Run-time choices that do not change results (device,
progress bars) are not part of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from tsdiff.base import StreamGeometry
from tsdiff.errors import ParameterError

COMBINE = ("vote", "mean")
SCORING_MODES = ("chain", "single", "density", "direct")
CONDITIONING = ("unconditional", "conditional")
RECORD_RULES = ("last", "informative")
SCORE_MASKS = ("all", "grating", "tail")
PREDICTIONS = ("x0", "eps")
#: held-out windows (at most) whose one-step imputation error decides when training stops
VALIDATION_WINDOWS = 256


@dataclass(frozen=True)
class DiffusionConfig:
    """The :class:`~tsdiff.diffusion.ImDiffusionDetector` parameters that shape a fit and its scores
    (see that class for what each means)."""

    window: int
    grating_segments: tuple[int, ...]
    grating_layout: str
    mask_ratio: float
    grating_fraction: float
    tail: int
    tail_fraction: float
    score_masks: str
    diffusion_steps: int
    schedule: str
    prediction: str
    scoring: str
    reverse_steps: int
    ensemble_steps: int
    record: str
    train_focus: float
    conditioning: str
    combine: str
    vote_fraction: float
    metric_norm: float
    metric_reduce: str
    smooth: int | None
    channels: int
    layers: int
    heads: int
    patch: int
    wavelet_levels: int
    batch_size: int
    learning_rate: float
    max_steps: int
    max_epochs: float
    max_seconds: float
    eval_every: int
    patience: int
    validation_fraction: float
    clip: float | None
    threshold: str
    risk: float

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> DiffusionConfig:
        """The settings among a detector's parameters, converted and checked (:class:`ParameterError`)."""
        from tsdiff.diffusion.masks import LAYOUTS
        from tsdiff.diffusion.voting import METRIC_REDUCTIONS

        p = {f.name: params[f.name] for f in fields(cls)}
        ints = ("window", "diffusion_steps", "reverse_steps", "ensemble_steps", "tail")
        ints += ("channels", "layers", "heads", "patch", "wavelet_levels", "batch_size", "max_steps")
        ints += ("eval_every", "patience")
        floats = ("mask_ratio", "grating_fraction", "vote_fraction", "learning_rate", "max_epochs")
        floats += (
            "max_seconds",
            "validation_fraction",
            "risk",
            "train_focus",
            "tail_fraction",
            "metric_norm",
        )
        try:
            scales = p["grating_segments"]
            scales = [scales] if isinstance(scales, (int, np.integer, float, str)) else list(scales)
            p["grating_segments"] = tuple(int(v) for v in scales)
            p.update({k: int(p[k]) for k in ints})
            p.update({k: float(p[k]) for k in floats})
            p["smooth"] = None if p["smooth"] is None else int(p["smooth"])
            p["clip"] = None if p["clip"] is None else float(p["clip"])
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"a diffusion parameter is not a number: {exc}") from None
        c = cls(**p)
        checks = [
            (c.window >= 4, "window must be >= 4"),
            (len(c.grating_segments) >= 1, "grating_segments needs at least one scale"),
            (all(2 <= v <= c.window for v in c.grating_segments), "grating_segments must be in [2, window]"),
            (0 <= c.tail < c.window, "tail must be in [0, window)"),
            (0.0 <= c.tail_fraction <= 1.0, "tail_fraction must be in [0, 1]"),
            (c.score_masks in SCORE_MASKS, f"score_masks must be one of {SCORE_MASKS}"),
            (c.score_masks != "tail" or c.tail > 0, "score_masks='tail' needs tail > 0"),
            (c.grating_layout in LAYOUTS, f"grating_layout must be one of {LAYOUTS}"),
            (0.0 < c.mask_ratio < 1.0, "mask_ratio must be in (0, 1)"),
            (0.0 <= c.grating_fraction <= 1.0, "grating_fraction must be in [0, 1]"),
            (c.prediction in PREDICTIONS, f"prediction must be one of {PREDICTIONS}"),
            (c.scoring in SCORING_MODES, f"scoring must be one of {SCORING_MODES}"),
            (c.conditioning in CONDITIONING, f"conditioning must be one of {CONDITIONING}"),
            (c.record in RECORD_RULES, f"record must be one of {RECORD_RULES}"),
            (0.0 <= c.metric_norm <= 1.0, "metric_norm must be in [0, 1]"),
            (c.metric_reduce in METRIC_REDUCTIONS, f"metric_reduce must be one of {METRIC_REDUCTIONS}"),
            (0.0 <= c.train_focus <= 1.0, "train_focus must be in [0, 1]"),
            (c.combine in COMBINE, f"combine must be one of {COMBINE}"),
            (0.0 < c.vote_fraction <= 1.0, "vote_fraction must be in (0, 1]"),
            (1 <= c.ensemble_steps <= c.reverse_steps, "need 1 <= ensemble_steps <= reverse_steps"),
            (c.reverse_steps <= c.diffusion_steps, "reverse_steps must be <= diffusion_steps"),
            (c.channels % c.heads == 0, "channels must be a multiple of heads"),
            (c.patch >= 1 and c.window % c.patch == 0, "window must be a multiple of patch"),
            (c.wavelet_levels >= 0, "wavelet_levels must be >= 0"),
            (c.batch_size >= 1 and c.max_steps >= 1, "batch_size and max_steps must be >= 1"),
            (c.max_seconds > 0 and c.eval_every >= 1, "max_seconds, eval_every must be > 0"),
            (c.patience >= 1, "patience must be >= 1"),
            (c.max_epochs > 0, "max_epochs must be > 0"),
            (c.smooth is None or c.smooth >= 0, "smooth must be None or >= 0"),
            (c.clip is None or c.clip > 0, "clip must be positive or None"),
        ]
        for ok, message in checks:
            if not ok:
                raise ParameterError(message)
        return c

    @classmethod
    def of(cls, **changes: Any) -> DiffusionConfig:
        """The detector's defaults with ``changes`` (e.g. for a study of one part)."""
        from tsdiff.diffusion.detector import ImDiffusionDetector

        return cls.from_params(ImDiffusionDetector(**changes).get_params(deep=False))

    # ----------------------------------------------------------------- rows
    @property
    def stride(self) -> int:
        """Rows between scored windows (half a window)."""
        return max(1, self.window // 2)

    def min_fit_rows(self) -> int:
        """A training part and a held-out part of at least one window each."""
        return max(2 * self.window, math.ceil(self.window / self.validation_fraction))

    def reduction(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~tsdiff.diffusion.voting.reduce_errors` (the scales apart)."""
        return {
            "smooth_length": self.smooth_length(),
            "trailing": self.trailing,
            "power": self.metric_norm,
            "metrics": self.metric_reduce,
        }

    def smooth_length(self) -> int:
        """Rows of the moving mean over the errors (None: one segment of the coarsest grating)."""
        if self.smooth is None:
            return max(1, self.window // min(self.grating_segments))
        return self.smooth

    @property
    def trailing(self) -> bool:
        """Whether the smoothing looks only back (scoring by the tail mask alone: no row waits for
        later rows beyond its own tail block), rather than centred."""
        return self.score_masks == "tail"

    def families(self) -> list[tuple[str, int]]:
        """The masks scoring uses, in order: ``("grating", segments)`` per scale, ``("tail", rows)``."""
        out = []
        if self.score_masks in ("all", "grating"):
            out += [("grating", int(s)) for s in self.grating_segments]
        if self.tail > 0 and self.score_masks in ("all", "tail"):
            out.append(("tail", self.tail))
        return out

    @property
    def haar_levels(self) -> int:
        """Haar levels the denoiser sees: ``wavelet_levels``, less any whose blocks (2**level rows)
        would be longer than the window."""
        return min(self.wavelet_levels, int(math.log2(self.window)))

    def n_strategies(self) -> int:
        """Mask strategies the denoiser is told about: random, grating, and tail when it is trained."""
        return 3 if self.tail > 0 else 2

    def train_steps(self, n_rows: int) -> int:
        """Optimisation steps on ``n_rows`` training rows: ``max_steps``, or fewer when
        ``max_epochs`` passes over the training windows come first."""
        n_windows = max(1, n_rows - self.window + 1)
        per_epoch = n_windows / self.batch_size
        return max(1, min(self.max_steps, math.ceil(self.max_epochs * per_epoch)))

    def smooth_ahead(self) -> int:
        """Rows past a row that its smoothed errors read: a centred smoothing reaches
        length - length//2 - 1 rows ahead, a trailing one none."""
        length = self.smooth_length()
        return 0 if self.trailing else length - length // 2 - 1

    def stream_geometry(self) -> StreamGeometry:
        length = self.smooth_length()
        ahead = self.smooth_ahead()
        geometry = StreamGeometry()
        for kind, _ in self.families():
            if kind == "grating":
                # windows every stride rows from the stream start; a row takes its errors from the
                # window it is most central in (reaching window - window//4 rows ahead, plus the last
                # window's shift)
                part = StreamGeometry(self.stride, 2 * self.window + length, self.window + ahead)
            else:
                # blocks of tail rows from the stream start, each imputed from the window that ends
                # with it
                part = StreamGeometry(self.tail, self.window + length, self.tail - 1 + ahead)
            geometry = geometry.combine(part)
        return geometry

    # ----------------------------------------------------------------- steps
    def noise_schedule(self) -> Any:
        from tsdiff.diffusion.schedule import NoiseSchedule

        return NoiseSchedule(self.diffusion_steps, self.schedule)

    def steps(self) -> tuple[np.ndarray, np.ndarray]:
        """Steps visited by the chain (decreasing) and steps whose errors are recorded.

        ``record="last"``: the last ``ensemble_steps`` visited (chain), or that many evenly spaced
        steps without step 0 (single, density, direct). ``record="informative"``: of those
        candidates (all visited steps, for the chain), only the ones whose context carries
        information (:meth:`informative`); at least the least noisy one.
        """
        schedule = self.noise_schedule()
        visit = schedule.ddim_steps(self.reverse_steps)
        if self.scoring == "chain":
            candidates = visit if self.record == "informative" else visit[len(visit) - self.ensemble_steps :]
        else:
            candidates = schedule.ddim_steps(self.ensemble_steps + 1)[:-1]  # evenly spaced, step 0 left out
        if self.record == "informative":
            keep = self.informative(candidates)
            candidates = candidates[keep] if keep.any() else candidates[-1:]
        return visit, candidates

    def informative(self, steps: np.ndarray) -> np.ndarray:
        """Whether the context seen at each step carries information about the targets.

        Under unconditional imputation the context is forward-noised to the same step, and its
        signal-to-noise ratio is ``alpha_bar / (1 - alpha_bar)``: a step is informative when that
        is at least 1 (with the default quad schedule, t <= 16 of 50). Past it, the imputation
        tends to each metric's mean and its error measures only magnitude. Under conditional
        imputation the context is clean at every step, so every step is informative.
        """
        steps = np.asarray(steps, dtype=int)
        if self.conditioning == "conditional":
            return np.ones(len(steps), dtype=bool)
        alpha_bar = self.noise_schedule().alpha_bar[steps]
        return alpha_bar >= 1.0 - alpha_bar

    def training_step_range(self) -> int:
        """Steps ``0 .. range - 1`` are the recorded ones and below: where ``train_focus`` of the
        training windows draw their step."""
        return int(self.steps()[1].max()) + 1

    def voters_per_family(self) -> int:
        """Each recorded step votes, except under ``scoring="density"``, where the steps' errors are
        summed into one ELBO term per entry (:meth:`density`)."""
        return 1 if self.scoring == "density" else len(self.steps()[1])

    def n_voters(self) -> int:
        """Voters: each recorded step (or density) of each scoring mask family."""
        return self.voters_per_family() * len(self.families())

    def density(self, errors: np.ndarray) -> np.ndarray:
        """One mask family's errors at the recorded steps (n, S, K) as the density score (n, 1, K):
        the ELBO-weighted sum of squared errors (NaN where the entry is missing)."""
        weights = self.noise_schedule().elbo_weights(self.steps()[1])
        return np.einsum("nsk,s->nk", np.square(errors, dtype=np.float64), weights)[:, None, :].astype(
            errors.dtype
        )

    def votes_needed(self) -> int:
        """Voters that must flag a row (``vote_fraction`` of them, at least one)."""
        return max(1, math.ceil(self.vote_fraction * self.n_voters()))

    # ----------------------------------------------------------------- parts
    def process(self, device: Any) -> Any:
        """The forward process and clean estimates on ``device``."""
        from tsdiff.diffusion.imputation import DiffusionProcess

        return DiffusionProcess(self.noise_schedule(), device, self.clip, self.prediction)

    def build_model(self, n_metrics: int, n_strategies: int | None = None) -> Any:
        """An untrained denoiser for ``n_metrics`` metrics (``n_strategies``: as saved, for a load)."""
        from tsdiff.diffusion.denoiser import Denoiser

        return Denoiser(
            n_metrics,
            self.diffusion_steps,
            channels=self.channels,
            layers=self.layers,
            heads=self.heads,
            patch=self.patch,
            wavelet_levels=self.haar_levels,
            n_strategies=self.n_strategies() if n_strategies is None else n_strategies,
        )

    def grating(self, segments: int | None = None) -> Any:
        """The two complementary scoring masks of one scale (default: the first)."""
        from tsdiff.diffusion.masks import GratingMask

        return GratingMask(self.window, segments or self.grating_segments[0], self.grating_layout)
