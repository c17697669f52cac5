"""Imputing masked windows with a trained denoiser, and the imputation error at chosen steps.

Two ways to get the error, both under the two complementary grating masks:

* ``"chain"``: the reverse diffusion chain (deterministic DDIM updates over a subsequence of the
  steps). Targets start from pure noise; at each visited step the context entries are replaced by
  their forward-noised truth (unconditional imputation, as in ImDiffusion) or by the clean truth
  (conditional imputation), and the denoiser's estimate of the clean window gives the error at
  that step.
* ``"single"``: no chain: at each recorded step the whole window is forward-noised once and the
  denoiser's one-step estimate of the clean targets gives the error (a noise-prediction error).
  It costs one network pass per recorded step instead of one per visited step.
* ``"density"``: the passes of ``"single"``, and the errors at the recorded steps summed into the
  diffusion ELBO's denoising terms (squared errors weighted by ``SNR(t-1) - SNR(t)``): a density
  score, one voter per mask family (see :meth:`DiffusionConfig.density`).
* ``"direct"``: reconstruction-free: no noise is added and no chain is run; the clean window goes
  in as if it were noised to the recorded step, every entry a target, and the error is how far one
  denoising pass moves each value (the anomaly map is read from the denoiser's own output, as
  the norm of its predicted noise, which is proportional to it). One pass per recorded step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from tsdiff.diffusion.config import PREDICTIONS
from tsdiff.diffusion.denoiser import Denoiser
from tsdiff.diffusion.masks import GRATING
from tsdiff.diffusion.schedule import NoiseSchedule
from tsdiff.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from tsdiff.diffusion.config import DiffusionConfig


class DiffusionProcess:
    """Forward noising and one-step clean estimates for a schedule, with tensors on one device.

    ``prediction`` says what the denoiser's output means: the noise (``"eps"``, as DDPM, CSDI and
    ImDiffusion) or the clean values (``"x0"``). Both give the same pair of estimates
    (:meth:`estimates`); they differ in how errors grow at high noise. Recovering the clean values
    from a noise estimate divides by ``sqrt(alpha_bar_t)``, which is tiny at the last steps of the
    quad schedule, so a small noise error there becomes a huge value error; a clean-value output has
    no such amplification.
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        device: torch.device,
        clip: float | None = None,
        prediction: str = "eps",
    ) -> None:
        if prediction not in PREDICTIONS:
            raise ParameterError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        self.schedule = schedule
        self.sqrt_ab = torch.tensor(np.sqrt(schedule.alpha_bar), dtype=torch.float32, device=device)
        self.sqrt_1m_ab = torch.tensor(np.sqrt(1.0 - schedule.alpha_bar), dtype=torch.float32, device=device)
        self.clip = clip
        self.prediction = prediction

    def estimates(
        self, x_t: torch.Tensor, t: torch.Tensor | int, output: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Clean values (clipped to the scaler's range) and noise implied by a denoiser output."""
        if self.prediction == "eps":
            return self.clean_estimate(x_t, t, output), output
        x0 = output.clamp(-self.clip, self.clip) if self.clip is not None else output
        eps = (x_t - self._coef(self.sqrt_ab, t) * x0) / self._coef(self.sqrt_1m_ab, t)
        return x0, eps

    def training_target(self, x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """What the denoiser learns to output for a window noised with ``eps``."""
        return eps if self.prediction == "eps" else x0

    def _coef(self, table: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        if isinstance(t, int):
            return table[t]
        return table[t][:, None, None]

    def noise(self, x0: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor) -> torch.Tensor:
        """Forward-noised ``x_t`` for clean ``x0`` and standard noise ``eps``."""
        return self._coef(self.sqrt_ab, t) * x0 + self._coef(self.sqrt_1m_ab, t) * eps

    def clean_estimate(self, x_t: torch.Tensor, t: torch.Tensor | int, eps_hat: torch.Tensor) -> torch.Tensor:
        """Estimate of ``x0`` implied by a noise estimate, clipped to the range the scaler allows."""
        x0 = (x_t - self._coef(self.sqrt_1m_ab, t) * eps_hat) / self._coef(self.sqrt_ab, t)
        return x0.clamp(-self.clip, self.clip) if self.clip is not None else x0


def noise_draws(mode: str, n_visit: int, n_record: int) -> int:
    """Standard-normal draws per window and pass that :func:`imputation_errors` consumes."""
    return {"chain": 1 + n_visit, "single": n_record, "density": n_record}.get(mode, 1)


def window_noise(
    seed: int, starts: Sequence[int], shape: tuple[int, ...], device: torch.device
) -> torch.Tensor:
    """Noise for each window, keyed by (seed, start row): a window's noise never depends on its batch.

    Returns a tensor (len(starts), *shape).
    """
    out = torch.empty((len(starts), *shape))
    gen = torch.Generator()
    for i, start in enumerate(starts):
        gen.manual_seed((int(seed) * 1_000_003 + int(start)) % (2**63))
        out[i] = torch.randn(shape, generator=gen)
    return out.to(device)


@dataclass(frozen=True)
class Pass:
    """One imputation of a batch of windows: which entries are targets, which are context, and the
    mask strategy the denoiser is told (entries that are neither are hidden from it)."""

    targets: torch.Tensor  # (B, K, L) boolean
    context: torch.Tensor  # (B, K, L) boolean
    strategy: int


def grating_passes(config: DiffusionConfig, present: torch.Tensor, segments: int | None = None) -> list[Pass]:
    """The two complementary grating passes of one scale: each present entry a target once."""
    grating = config.grating(segments)
    out = []
    for phase in (0, 1):
        targets = grating.targets(phase, present)
        out.append(Pass(targets, present & ~targets, GRATING))
    return out


@torch.inference_mode()
def imputation_errors(
    model: Denoiser,
    process: DiffusionProcess,
    x0: torch.Tensor,
    present: torch.Tensor,
    noise: torch.Tensor,
    config: DiffusionConfig,
    truth: torch.Tensor | None = None,
    passes: Sequence[Pass] | None = None,
) -> torch.Tensor:
    """Absolute imputation error of every target entry at each recorded step.

    ``passes`` (default: the two complementary grating masks of the first scale, so each entry is
    a target in exactly one pass) say what is imputed from what; the config gives the steps the
    chain visits and those whose errors are recorded (:meth:`DiffusionConfig.steps`), the scoring
    mode and the conditioning (see the module docstring).

    Parameters
    ----------
    x0
        Windows (B, K, L) of scaled values; missing entries may hold anything.
    present
        (B, K, L) boolean, True where an entry holds a value.
    noise
        (B, P, D, K, L) standard normal draws: D from :func:`noise_draws`, one set per pass.
    truth
        Values (B, K, L) the imputations are compared with; default ``x0``. Passing the unclipped
        values while ``x0`` is clipped keeps the size of extreme values in the error.

    Returns
    -------
    torch.Tensor
        (len(record), B, K, L) errors; NaN where the entry is missing or no pass targets it.
    """
    mode = config.scoring
    if mode == "chain":
        truth = x0 if truth is None else truth
        chain = ChainImputation(model, process, x0, present, noise, config, passes, truth)
        chain.advance()
        return chain.errors()
    record = config.steps()[1]
    zero = torch.zeros((), device=x0.device)
    x0 = torch.where(present, x0, zero)
    truth = x0 if truth is None else torch.where(present, truth, zero)
    passes = grating_passes(config, present) if passes is None else passes
    errors = torch.full((len(record), *x0.shape), float("nan"), device=x0.device)
    slot = {int(t): i for i, t in enumerate(record)}

    for index, one in enumerate(passes):
        inputs = _PassInputs.of(model, one, present)
        visible = inputs.targets | inputs.observed
        draws = noise[:, index]
        if mode == "direct":
            for t in (int(s) for s in record):
                # no noise and no chain: the clean window goes in as if it were noised to step t,
                # and the error is how far one denoising pass moves each target
                x0_hat, _ = inputs.estimate(
                    process, config, x0, torch.where(visible, x0, zero), t, draws[:, 0]
                )
                _fold(errors, slot[t], inputs.targets, x0_hat, truth)
        else:
            for i, t in enumerate(int(s) for s in record):
                # one draw noises the whole window: targets and (unconditional) context alike
                noised = torch.where(visible, process.noise(x0, t, draws[:, i]), zero)
                x0_hat, _ = inputs.estimate(process, config, x0, noised, t, draws[:, i])
                _fold(errors, slot[t], inputs.targets, x0_hat, truth)
    return errors


@dataclass(frozen=True)
class _PassInputs:
    """What the denoiser is told about one pass: its targets and context among the present entries,
    the mask strategy per window, and the side information of the context."""

    model: Denoiser
    targets: torch.Tensor
    observed: torch.Tensor
    strategy: torch.Tensor
    side: list

    @classmethod
    def of(cls, model: Denoiser, one: Pass, present: torch.Tensor) -> _PassInputs:
        targets, observed = one.targets & present, one.context & present
        strategy = torch.full((present.shape[0],), one.strategy, dtype=torch.long, device=present.device)
        return cls(model, targets, observed, strategy, model.side_info(observed))

    def estimate(
        self,
        process: DiffusionProcess,
        config: DiffusionConfig,
        x0: torch.Tensor,
        state: torch.Tensor,
        t: int,
        eps: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Clean values and noise the denoiser estimates at step ``t`` for targets holding ``state``
        (the context clean, or noised with ``eps`` under unconditional imputation)."""
        context = process.noise(x0, t, eps) if config.conditioning == "unconditional" else x0
        zero = torch.zeros((), device=x0.device)
        x_in = torch.where(self.observed, context, torch.where(self.targets, state, zero))
        steps = torch.full((x0.shape[0],), t, dtype=torch.long, device=x0.device)
        return process.estimates(x_in, t, self.model(x_in, self.observed, steps, self.strategy, self.side))


def _fold(
    errors: torch.Tensor, slot: int, targets: torch.Tensor, x0_hat: torch.Tensor, truth: torch.Tensor
) -> None:
    """The absolute errors of the targets into ``errors[slot]`` (other entries kept)."""
    errors[slot] = torch.where(targets, (x0_hat - truth).abs(), errors[slot])


class ChainImputation:
    """The reverse chain of :func:`imputation_errors` (``scoring="chain"``) for one batch of windows,
    run a few denoising steps at a time.

    A stream uses it to start imputing a block as soon as the rows before it are in, spreading the
    chain's steps over the updates that bring the block's own rows (a target's value is never an
    input to its imputation, only to its error). Without ``truth`` the clean estimates at the
    recorded steps are kept, and :meth:`errors` compares them with values given later; with it the
    errors are folded in as the chain goes, as :func:`imputation_errors` does.
    """

    def __init__(
        self,
        model: Denoiser,
        process: DiffusionProcess,
        x0: torch.Tensor,
        present: torch.Tensor,
        noise: torch.Tensor,
        config: DiffusionConfig,
        passes: Sequence[Pass] | None = None,
        truth: torch.Tensor | None = None,
    ) -> None:
        self.visit, record = config.steps()
        self.slot = {int(t): i for i, t in enumerate(record)}
        self.model, self.process, self.config = model, process, config
        self.zero = torch.zeros((), device=x0.device)
        self.x0 = torch.where(present, x0, self.zero)
        self.passes = grating_passes(config, present) if passes is None else list(passes)
        self.present = present
        self.noise = noise
        self.truth = None if truth is None else torch.where(present, truth, self.zero)
        self._errors = torch.full((len(record), *x0.shape), float("nan"), device=x0.device)
        self._kept: list[tuple[int, torch.Tensor, torch.Tensor]] = []  # (slot, targets, estimate)
        self._done = 0  # steps taken, over every pass
        self._state: torch.Tensor | None = None
        self._pass: _PassInputs | None = None  # the pass in progress

    @property
    def total_steps(self) -> int:
        """Denoiser evaluations of the whole chain (every pass)."""
        return len(self.passes) * len(self.visit)

    @property
    def remaining(self) -> int:
        return self.total_steps - self._done

    def advance(self, steps: int | None = None) -> None:
        """Take ``steps`` more denoising steps (None: run to the end)."""
        todo = self.remaining if steps is None else min(int(steps), self.remaining)
        for _ in range(todo):
            self._step()

    def _step(self) -> None:
        index, i = divmod(self._done, len(self.visit))
        draws = self.noise[:, index]
        if i == 0:
            self._pass = _PassInputs.of(self.model, self.passes[index], self.present)
            self._state = draws[:, 0]
        t = int(self.visit[i])
        x0_hat, eps_hat = self._pass.estimate(
            self.process, self.config, self.x0, self._state, t, draws[:, 1 + i]
        )
        if t in self.slot:
            if self.truth is None:
                self._kept.append((self.slot[t], self._pass.targets, x0_hat))
            else:
                _fold(self._errors, self.slot[t], self._pass.targets, x0_hat, self.truth)
        if i + 1 < len(self.visit):  # deterministic DDIM step to the next visited step
            nxt = int(self.visit[i + 1])
            self._state = self.process.sqrt_ab[nxt] * x0_hat + self.process.sqrt_1m_ab[nxt] * eps_hat
        self._done += 1

    def errors(self, truth: torch.Tensor | None = None) -> torch.Tensor:
        """(len(record), B, K, L) absolute errors of the finished chain; ``truth`` (B, K, L) is
        needed when none was given at the start."""
        if self.remaining:
            raise RuntimeError("the chain has not finished")  # a programming error, not bad input
        if self.truth is None:
            if truth is None:
                raise RuntimeError("the chain kept no truth to compare with")
            truth = torch.where(self.present, truth, self.zero)
            for slot, targets, x0_hat in self._kept:
                _fold(self._errors, slot, targets, x0_hat, truth)
            self._kept = []
        return self._errors
