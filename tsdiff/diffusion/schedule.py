"""Noise schedules of the diffusion chain and the DDIM update used to walk it backwards."""

from __future__ import annotations

import numpy as np

from tsdiff.errors import ParameterError

SCHEDULES = ("quad", "linear", "cosine")


class NoiseSchedule:
    """Variances beta_1..beta_T of the forward process and the cumulative products derived from them.

    ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps`` with ``alpha_bar_t = prod(1 - beta)``.
    Steps are numbered 0..T-1 (step 0 is the least noisy).

    Parameters
    ----------
    n_steps
        Number of diffusion steps T.
    kind
        ``"quad"``: beta = linspace(sqrt(beta_start), sqrt(beta_end), T)^2 (the CSDI/ImDiffusion
        default, which spends more steps at low noise); ``"linear"``: beta = linspace(beta_start,
        beta_end, T); ``"cosine"``: alpha_bar follows a squared cosine (Nichol & Dhariwal 2021),
        with beta capped at ``beta_end``.
    beta_start, beta_end
        Smallest and largest variance.
    """

    def __init__(
        self, n_steps: int = 50, kind: str = "quad", beta_start: float = 1e-4, beta_end: float = 0.5
    ):
        if n_steps < 2:
            raise ParameterError(f"the diffusion needs at least 2 steps, got {n_steps}")
        if kind not in SCHEDULES:
            raise ParameterError(f"schedule must be one of {SCHEDULES}, got {kind!r}")
        if not 0.0 < beta_start < beta_end < 1.0:
            raise ParameterError(f"need 0 < beta_start < beta_end < 1, got {beta_start}, {beta_end}")
        self.n_steps, self.kind = int(n_steps), kind
        if kind == "quad":
            beta = np.linspace(beta_start**0.5, beta_end**0.5, n_steps) ** 2
        elif kind == "linear":
            beta = np.linspace(beta_start, beta_end, n_steps)
        else:
            s = 0.008
            t = np.linspace(0, n_steps, n_steps + 1) / n_steps
            f = np.cos((t + s) / (1 + s) * np.pi / 2) ** 2
            beta = np.clip(1.0 - f[1:] / f[:-1], beta_start, beta_end)
        self.beta = beta
        self.alpha = 1.0 - beta
        self.alpha_bar = np.cumprod(self.alpha)

    @property
    def snr(self) -> np.ndarray:
        """Signal-to-noise ratio ``alpha_bar / (1 - alpha_bar)`` of each step."""
        return self.alpha_bar / (1.0 - self.alpha_bar)

    def ddim_steps(self, n_reverse: int) -> np.ndarray:
        """``n_reverse`` steps to visit, from T-1 down to 0, evenly spaced (all T when n_reverse >= T)."""
        n = int(min(max(n_reverse, 1), self.n_steps))
        return np.unique(np.round(np.linspace(0, self.n_steps - 1, n)).astype(int))[::-1]

    def elbo_weights(self, steps: np.ndarray) -> np.ndarray:
        """Weight of a clean-value squared error at each of ``steps`` in the diffusion ELBO,
        ``SNR(t - 1) - SNR(t)`` with ``SNR = alpha_bar / (1 - alpha_bar)`` (Kingma et al. 2021; for
        step 0, ``SNR(0)``), normalised to sum to 1 over the steps given."""
        steps = np.asarray(steps, dtype=int)
        snr = self.snr
        before = np.where(steps > 0, snr[np.maximum(steps - 1, 0)], 2.0 * snr[0])
        weights = before - snr[steps]
        return weights / weights.sum()
