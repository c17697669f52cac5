"""Which entries of a window are imputed (targets) and which are context.

Training draws a random mask (a share of the observed entries become targets), a grating mask (of
one of the configured scales) or a tail mask; scoring uses the two complementary grating masks of
each scale, so every entry of a window is imputed exactly once per scale, and the tail mask, which
imputes the last rows of a window from the rows before them only (a forecast of every metric).
Missing (NaN) entries are never context and never targets.
"""

from __future__ import annotations

import torch

from tsdiff.errors import ParameterError

RANDOM, GRATING, TAIL = 0, 1, 2  # mask-strategy ids told to the denoiser
LAYOUTS = ("time", "checker")


def tail_pattern(length: int, n_metrics: int, tail: int, position: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets and context (each (K, L) boolean) of a tail mask whose targets start at ``position``.

    The targets are time steps ``position .. position + tail - 1`` of every metric; the context is
    every step before them. Steps after the targets are neither (a tail mask never looks ahead), so
    a target's imputation uses only what a live monitor has already seen.
    """
    if not 1 <= tail <= length or not 0 <= position <= length - tail:
        raise ParameterError(f"a tail of {tail} rows at {position} does not fit a window of {length}")
    steps = torch.arange(length)
    targets = ((steps >= position) & (steps < position + tail))[None, :].expand(n_metrics, length)
    context = (steps < position)[None, :].expand(n_metrics, length)
    return targets, context


def grating_segments(length: int, n_segments: int) -> torch.Tensor:
    """Segment number (0..n_segments-1) of each of ``length`` time steps, segments as equal as can be."""
    if not 2 <= n_segments <= length:
        raise ParameterError(f"grating needs 2 <= segments <= window length, got {n_segments} for {length}")
    return torch.div(torch.arange(length) * n_segments, length, rounding_mode="floor")


def grating_targets(length: int, n_segments: int, phase: int) -> torch.Tensor:
    """Time steps hidden by one grating mask: the even segments (phase 0) or the odd ones (phase 1).

    The two phases are complementary: together they hide every time step exactly once.
    """
    return (grating_segments(length, n_segments) % 2) == phase


def grating_pattern(length: int, n_metrics: int, n_segments: int, layout: str = "time") -> torch.Tensor:
    """Entries hidden by each of the two complementary grating masks: (2, K, L) boolean.

    ``layout="time"`` hides the same time segments for every metric (each imputation sees only
    other times); ``"checker"`` alternates the phase from one metric to the next, so while a
    metric's segment is hidden, its neighbours' values at the same times are context and the
    imputation can use the relations between metrics as well as those in time. Either way, the
    two phases together hide every entry exactly once.
    """
    if layout not in LAYOUTS:
        raise ParameterError(f"grating layout must be one of {LAYOUTS}, got {layout!r}")
    seg = grating_segments(length, n_segments)[None, :]
    shift = torch.arange(n_metrics)[:, None] if layout == "checker" else torch.zeros((n_metrics, 1))
    parity = ((seg + shift) % 2).to(torch.long)  # (K, L)
    return torch.stack([parity == 0, parity == 1])


class GratingMask:
    """The pair of complementary grating masks used at scoring time.

    Parameters
    ----------
    length
        Window length.
    n_segments
        Number of time segments the window is cut into; phase 0 hides the even ones, phase 1 the odd
        (for the first metric, under the ``"checker"`` layout; see :func:`grating_pattern`).
    layout
        ``"time"`` or ``"checker"``.
    """

    def __init__(self, length: int, n_segments: int, layout: str = "time") -> None:
        self.length = length
        self.n_segments = n_segments
        self.layout = layout
        grating_pattern(length, 1, n_segments, layout)  # checks the arguments now

    def targets(self, phase: int, present: torch.Tensor) -> torch.Tensor:
        """Target entries (B, K, L) for one phase: hidden entries that hold a value."""
        pattern = grating_pattern(self.length, present.shape[1], self.n_segments, self.layout)
        return pattern[phase].to(present.device)[None] & present


def training_targets(
    present: torch.Tensor,
    ratio: float,
    grating_fraction: float,
    n_segments: int | tuple[int, ...],
    generator: torch.Generator,
    layout: str = "time",
    tail: int = 0,
    tail_fraction: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Targets, context and strategy ids for a training batch.

    Each window gets a random mask (each present entry a target with probability ``ratio``), or,
    with probability ``grating_fraction``, a grating mask of random phase and of one of the scales
    in ``n_segments``, or, with probability ``tail_fraction`` (when ``tail`` > 0), a tail mask, so
    the model learns the masks it meets at scoring time. A tail mask's targets end the window half
    the time (as when scoring a live row) and start anywhere else, so the model also learns to
    forecast from shorter contexts (the first rows of a series).

    Parameters
    ----------
    present
        (B, K, L) boolean: entries that hold a value.

    Returns
    -------
    (targets, context, strategy): (B, K, L), (B, K, L) boolean and (B,) ids. Context is every present
    entry that is not a target, except after a tail mask's targets.
    """
    b, k, length = present.shape
    device = present.device
    scales = (n_segments,) if isinstance(n_segments, int) else tuple(n_segments)
    random_t = torch.rand(present.shape, generator=generator, device=device) < ratio
    use_grating = torch.rand(b, generator=generator, device=device) < grating_fraction
    phase = torch.randint(0, 2, (b,), generator=generator, device=device)
    grating_t = grating_pattern(length, k, scales[0], layout).to(device)[phase]  # (B, K, L)
    if len(scales) > 1:  # each grating window draws its scale
        scale = torch.randint(0, len(scales), (b,), generator=generator, device=device)
        patterns = torch.stack([grating_pattern(length, k, s, layout).to(device) for s in scales])
        grating_t = patterns[scale, phase]
    targets = torch.where(use_grating[:, None, None], grating_t, random_t) & present
    strategy = torch.where(use_grating, GRATING, RANDOM)
    context = present & ~targets
    if tail > 0 and tail_fraction > 0:
        use_tail = torch.rand(b, generator=generator, device=device) < tail_fraction
        last = length - tail
        at_end = torch.rand(b, generator=generator, device=device) < 0.5
        anywhere = torch.randint(0, last + 1, (b,), generator=generator, device=device)
        position = torch.where(at_end, torch.full_like(anywhere, last), anywhere)
        steps = torch.arange(length, device=device)[None, None, :]
        pos = position[:, None, None]
        tail_t = (steps >= pos) & (steps < pos + tail) & present
        tail_c = (steps < pos) & present
        pick = use_tail[:, None, None]
        targets = torch.where(pick, tail_t, targets)
        context = torch.where(pick, tail_c, context)
        strategy = torch.where(use_tail, TAIL, strategy)
    return targets, context, strategy
