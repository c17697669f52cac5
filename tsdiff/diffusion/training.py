"""Training the denoiser: random windows, random or grating masks, squared-error loss on targets.

Adam on mini-batches of windows drawn at random from the training rows, with a short warm-up and a
cosine decay of the step size over ``max_steps``; every ``eval_every`` steps the imputation error
on a fixed set of held-out windows is measured, the best weights are kept, and training stops
after ``patience`` evaluations without improvement or after ``max_steps`` optimisation steps.
``max_seconds`` is a safety net: when it stops training first, the result depends on the speed of
the machine (and a warning says so).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from tsdiff.diffusion.config import VALIDATION_WINDOWS, DiffusionConfig
from tsdiff.diffusion.denoiser import Denoiser
from tsdiff.diffusion.imputation import DiffusionProcess
from tsdiff.diffusion.masks import GRATING, TAIL, grating_pattern, tail_pattern, training_targets
from tsdiff.torch_runtime import cpu_threads, network_input

logger = logging.getLogger(__name__)


@dataclass
class TrainingHistory:
    """What happened during training (kept on the detector as ``history_``)."""

    steps: int = 0
    seconds: float = 0.0
    train_loss: list[float] = field(default_factory=list)
    val_error: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    best_step: int = 0
    best_val_error: float = math.inf
    stopped_because: str = ""


class WindowSource:
    """Windows of an (n, K) series, drawn by start row without copying the series."""

    def __init__(self, values: torch.Tensor, present: torch.Tensor, window: int) -> None:
        self.values = values.unfold(0, window, 1)  # (n_windows, K, L) view
        self.present = present.unfold(0, window, 1)
        self.n_windows = self.values.shape[0]

    def take(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows (B, K, L) and their present-masks for the given start rows."""
        return self.values[starts], self.present[starts]


def noised_input(
    process: DiffusionProcess,
    x0: torch.Tensor,
    visible: torch.Tensor,
    targets: torch.Tensor,
    t: torch.Tensor,
    eps: torch.Tensor,
    conditioning: str,
) -> torch.Tensor:
    """Training input: noised targets; context noised too (unconditional) or clean (conditional);
    0 outside ``visible`` (targets and context: missing entries, and what a tail mask hides)."""
    noisy = process.noise(x0, t, eps)
    if conditioning == "conditional":
        noisy = torch.where(targets, noisy, x0)
    return torch.where(visible, noisy, torch.zeros((), device=x0.device))


class ValidationSet:
    """Held-out windows under the scoring masks, at the scoring steps, with fixed noise.

    Each window is masked by one of the two grating masks and noised at one of the steps whose
    errors are scored, so the validation error tracks the quantity the detector uses, and a fixed
    draw keeps evaluations comparable. At most ``max_windows`` windows, evenly spaced.
    """

    def __init__(
        self,
        source: WindowSource,
        process: DiffusionProcess,
        config: DiffusionConfig,
        generator: torch.Generator,
        max_windows: int = VALIDATION_WINDOWS,
    ) -> None:
        stride = max(1, source.n_windows // max_windows)
        starts = torch.arange(0, source.n_windows, stride)[:max_windows]
        self.x0, self.present = source.take(starts)
        _, k, length = self.x0.shape
        device = self.present.device
        # windows take the scoring masks in turn: each family, and both phases of a grating
        families = config.families()
        targets, context, strategy = [], [], []
        for i in range(len(starts)):
            kind, size = families[i % len(families)]
            if kind == "grating":
                phase = (i // len(families)) % 2
                t_mask = grating_pattern(length, k, size, config.grating_layout)[phase]
                c_mask, code = ~t_mask, GRATING
            else:
                t_mask, c_mask = tail_pattern(length, k, size, length - size)
                code = TAIL
            targets.append(t_mask)
            context.append(c_mask)
            strategy.append(code)
        self.targets = torch.stack(targets).to(device) & self.present
        self.context = torch.stack(context).to(device) & self.present
        self.strategy = torch.tensor(strategy, dtype=torch.long, device=device)
        steps_t = torch.as_tensor(list(config.steps()[1]), dtype=torch.long)
        self.t = steps_t[torch.arange(len(starts)) // 2 % len(steps_t)].to(self.present.device)
        self.eps = torch.randn(self.x0.shape, generator=generator, device=generator.device)
        self.process = process
        self.conditioning = config.conditioning

    @torch.inference_mode()
    def error(self, model: Denoiser, batch_size: int) -> float:
        """Mean absolute error of the one-step clean estimate over the target entries."""
        total, count = 0.0, 0
        for i in range(0, len(self.t), batch_size):
            sl = slice(i, i + batch_size)
            x0, targets, context, t = self.x0[sl], self.targets[sl], self.context[sl], self.t[sl]
            visible = targets | context
            x_in = noised_input(self.process, x0, visible, targets, t, self.eps[sl], self.conditioning)
            output = model(x_in, context, t, self.strategy[sl])
            x0_hat, _ = self.process.estimates(x_in, t, output)
            total += float((x0_hat - x0).abs()[targets].sum())
            count += int(targets.sum())
        return total / max(count, 1)


def _on(device: torch.device, tensors: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(t.to(device) for t in tensors)


def fit_denoiser(
    values: np.ndarray,
    n_train_rows: int,
    config: DiffusionConfig,
    seed: int,
    device: torch.device,
    verbose: bool,
    initial: Denoiser | None = None,
    fraction: float = 1.0,
) -> tuple[Denoiser, TrainingHistory]:
    """A denoiser trained on the first ``n_train_rows`` rows of scaled ``values`` (NaN: missing),
    stopped early on the rest; its weights on the CPU, and what happened. With ``initial`` (a
    fitted denoiser of the same shape) training starts from a copy of its weights and runs
    ``fraction`` of the steps (a warm refit)."""
    train_part, val_part = values[:n_train_rows], values[n_train_rows:]
    with cpu_threads(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = config.build_model(values.shape[1])
        if initial is not None:
            model.load_state_dict(initial.state_dict())
        model = model.to(device)
        generator = torch.Generator(device=device).manual_seed(seed)
        process = config.process(device)
        train_src = WindowSource(*_on(device, network_input(train_part, config.clip)), config.window)
        val_src = WindowSource(*_on(device, network_input(val_part, config.clip)), config.window)
        validation = ValidationSet(val_src, process, config, generator)
        max_steps = max(1, math.ceil(fraction * config.train_steps(len(train_part))))
        history = train_denoiser(model, process, train_src, validation, config, max_steps, generator, verbose)
    return model.cpu(), history


def train_denoiser(
    model: Denoiser,
    process: DiffusionProcess,
    train: WindowSource,
    validation: ValidationSet,
    config: DiffusionConfig,
    max_steps: int,
    generator: torch.Generator,
    verbose: bool = False,
) -> TrainingHistory:
    """Fit ``model`` in place for at most ``max_steps`` steps and leave it holding the weights with
    the best validation error."""
    from tqdm.auto import tqdm

    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    warmup = max(1, min(100, max_steps // 10))

    def lr_factor(step: int) -> float:
        # linear warm-up, then a cosine decay to a tenth of the step size at max_steps
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, max_steps - warmup)
        return 0.1 + 0.45 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    history = TrainingHistory()
    best_state = copy.deepcopy(model.state_dict())
    n_steps = process.schedule.n_steps
    focus_range = config.training_step_range()
    stale = 0
    started = time.perf_counter()
    bar = tqdm(total=max_steps, desc="training", unit="step", disable=None if verbose else True, leave=False)
    running = 0.0
    history.stopped_because = "max_steps"
    for step in range(1, max_steps + 1):
        model.train()
        starts = torch.randint(0, train.n_windows, (config.batch_size,), generator=generator)
        x0, present = train.take(starts)
        targets, context, strategy = training_targets(
            present,
            config.mask_ratio,
            config.grating_fraction,
            config.grating_segments,
            generator,
            config.grating_layout,
            config.tail,
            config.tail_fraction,
        )
        t = torch.randint(0, n_steps, (config.batch_size,), generator=generator)
        if config.train_focus > 0:  # a share of the windows practise the recorded steps
            focus = torch.rand(config.batch_size, generator=generator) < config.train_focus
            low = torch.randint(0, focus_range, (config.batch_size,), generator=generator)
            t = torch.where(focus, low, t)
        eps = torch.randn(x0.shape, generator=generator)
        x_in = noised_input(process, x0, targets | context, targets, t, eps, config.conditioning)
        output = model(x_in, context, t, strategy)
        loss = ((output - process.training_target(x0, eps)) ** 2)[targets].mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        value = loss.item()
        running = value if step == 1 else 0.95 * running + 0.05 * value
        bar.update(1)
        history.steps = step
        out_of_time = time.perf_counter() - started > config.max_seconds
        if step % config.eval_every == 0 or out_of_time or step == max_steps:
            model.eval()
            val = validation.error(model, config.batch_size * 2)
            history.train_loss.append(running)
            history.val_error.append(val)
            history.val_steps.append(step)
            bar.set_postfix(loss=f"{running:.3f}", val=f"{val:.3f}")
            if val < history.best_val_error:
                history.best_val_error, history.best_step = val, step
                best_state = copy.deepcopy(model.state_dict())
                stale = 0
            else:
                stale += 1
            if stale >= config.patience:
                history.stopped_because = "early_stopping"
                break
        if out_of_time:
            history.stopped_because = "max_seconds"
            logger.warning(
                "training stopped by max_seconds=%s after %d of %d steps; results now depend on this "
                "machine's speed (raise max_seconds or lower max_steps for reproducible fits)",
                config.max_seconds,
                step,
                max_steps,
            )
            break
    bar.close()
    history.seconds = time.perf_counter() - started
    model.load_state_dict(best_state)
    model.eval()
    logger.info(
        "trained %d steps in %.1fs (%s); best validation error %.4f at step %d",
        history.steps,
        history.seconds,
        history.stopped_because,
        history.best_val_error,
        history.best_step,
    )
    return history
