"""Which entries of a window are imputed (targets) and which are context.

Training draws a random mask (a share of the observed entries become targets) or a grating mask;
scoring uses the two complementary grating masks, so every entry of a window is imputed exactly
once per pass. Missing (NaN) entries are never context and never targets.
"""

from __future__ import annotations

import torch

from tsdiff.errors import ParameterError

RANDOM, GRATING = 0, 1  # mask-strategy ids told to the denoiser
N_STRATEGIES = 2
LAYOUTS = ("time", "checker")


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
    n_segments: int,
    generator: torch.Generator,
    layout: str = "time",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets and strategy ids for a training batch.

    Each window gets either a random mask (each present entry a target with probability
    ``ratio``) or, with probability ``grating_fraction``, a grating mask of random phase, so the
    model also learns the masks it will meet at scoring time.

    Parameters
    ----------
    present
        (B, K, L) boolean: entries that hold a value.
    """
    b, k, length = present.shape
    device = present.device
    random_t = torch.rand(present.shape, generator=generator, device=device) < ratio
    use_grating = torch.rand(b, generator=generator, device=device) < grating_fraction
    phase = torch.randint(0, 2, (b,), generator=generator, device=device)
    grating_t = grating_pattern(length, k, n_segments, layout).to(device)[phase]  # (B, K, L)
    targets = torch.where(use_grating[:, None, None], grating_t, random_t) & present
    strategy = torch.where(use_grating, GRATING, RANDOM)
    return targets, strategy
