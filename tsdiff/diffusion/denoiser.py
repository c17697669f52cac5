"""The noise-prediction network: a CSDI-style stack of residual blocks over (metric, time) grids.

Each residual block adds the diffusion-step and mask-strategy embeddings, mixes information along
time with one transformer layer and across metrics with another, adds side information (time
position, metric identity, which entries are observed), and applies a gated activation; blocks
feed a residual path and a skip path (Tashiro et al., NeurIPS 2021; Chen et al., VLDB 2024).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def haar_approximations(values: torch.Tensor, observed: torch.Tensor, levels: int) -> torch.Tensor:
    """Multi-scale (wavelet-domain) views of windows (B, K, L): at each Haar level j = 1..levels,
    each row's block mean over the 2**j rows of its block (the Haar approximation coefficient,
    held over the block) of the values and of the context flags; (B, K, L, 2 * levels).

    Blocks start at the window's first row; a last block shorter than 2**j averages the rows it
    has. The details of the decomposition are differences of consecutive levels, which the
    denoiser's input layer can form itself.
    """
    b, k, n = values.shape
    out = []
    for j in range(1, levels + 1):
        size = 2**j
        blocks = -(-n // size)
        pad = blocks * size - n
        counts = torch.full((blocks,), float(size), device=values.device)
        counts[-1] = size - pad
        for series in (values, observed):
            padded = F.pad(series, (0, pad)).reshape(b, k, blocks, size)
            means = padded.sum(dim=-1) / counts
            out.append(means.repeat_interleave(size, dim=-1)[..., :n])
    return torch.stack(out, dim=-1)


def sinusoidal_embedding(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer-style sin/cos features of integer positions: shape (*positions.shape, dim)."""
    half = dim // 2
    freq = torch.exp(
        -math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=positions.device) / half
    )
    angles = positions.float().unsqueeze(-1) * freq
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


class StepEmbedding(nn.Module):
    """Diffusion step -> vector: fixed sinusoidal features passed through two SiLU layers."""

    def __init__(self, n_steps: int, dim: int = 128) -> None:
        super().__init__()
        self.register_buffer("table", sinusoidal_embedding(torch.arange(n_steps), dim), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim), nn.SiLU())

    def forward(self, step: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.table[step])


class AttentionLayer(nn.Module):
    """Post-norm transformer encoder layer (self-attention + feed-forward) over (batch, seq, channels).

    Written on ``scaled_dot_product_attention``, which on the CPU runs a fused kernel about twice as
    fast as ``nn.TransformerEncoderLayer`` for the short sequences and narrow heads used here.
    """

    def __init__(self, channels: int, heads: int, ff: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.norm1 = nn.LayerNorm(channels)
        self.ff1 = nn.Linear(channels, ff)
        self.ff2 = nn.Linear(ff, channels)
        self.norm2 = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c)
        x = self.norm1(x + self.proj(attended))
        return self.norm2(x + self.ff2(F.gelu(self.ff1(x))))


class ResidualBlock(nn.Module):
    """Step/strategy conditioning, time transformer, metric transformer, side info, gate.

    Tensors are kept channel-last, (B, K, N, C) with N patches of time, so the time transformer
    reads contiguous sequences and every 1x1 projection is a plain matrix product.
    """

    def __init__(
        self,
        channels: int,
        emb_dim: int,
        time_dim: int,
        metric_dim: int,
        heads: int,
        n_metrics: int,
        patch: int,
    ):
        super().__init__()
        self.step_proj = nn.Linear(emb_dim, channels)
        self.time_layer = AttentionLayer(channels, heads, channels)
        self.metric_layer = AttentionLayer(channels, heads, channels) if n_metrics > 1 else None
        self.mid = nn.Linear(channels, 2 * channels)
        # a linear map of the side information [time features, metric embedding, observed flags],
        # split by part: time and metric parts are computed once per window shape, not per token
        self.side_time = nn.Linear(time_dim, 2 * channels, bias=False)
        self.side_metric = nn.Linear(metric_dim, 2 * channels, bias=False)
        self.side_observed = nn.Linear(patch, 2 * channels, bias=False)
        self.out = nn.Linear(channels, 2 * channels)

    def side(self, time: torch.Tensor, metric: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """Projected side information (B, K, N, 2C) from time (N, Dt), metric (K, Dm), flags (B, K, N, p)."""
        fixed = self.side_metric(metric)[:, None, :] + self.side_time(time)[None, :, :]  # (K, N, 2C)
        return fixed[None] + self.side_observed(observed)

    def forward(
        self, x: torch.Tensor, side: torch.Tensor, emb: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, k, n, c = x.shape
        y = x + self.step_proj(emb)[:, None, None, :]
        # along time: one sequence of n steps per (window, metric)
        y = self.time_layer(y.reshape(b * k, n, c)).reshape(b, k, n, c)
        if self.metric_layer is not None:
            # across metrics: one sequence of k metrics per (window, time step)
            y = self.metric_layer(y.transpose(1, 2).reshape(b * n, k, c)).reshape(b, n, k, c).transpose(1, 2)
        y = self.mid(y) + side
        gate, value = y.chunk(2, dim=-1)
        residual, skip = self.out(torch.sigmoid(gate) * torch.tanh(value)).chunk(2, dim=-1)
        return (x + residual) / math.sqrt(2.0), skip


class Denoiser(nn.Module):
    """Predicts the noise in ``x_t`` given which entries are observed, the step, and the mask strategy.

    Parameters
    ----------
    n_metrics
        Number of metrics K (rows of the grid).
    n_steps
        Diffusion steps T (size of the step-embedding table).
    channels
        Width of the residual stream.
    layers
        Number of residual blocks.
    heads
        Attention heads in each transformer layer.
    n_strategies
        Number of mask strategies the model is told about (random, grating, ...).
    patch
        Time steps per token: each metric's window is cut into patches of this many steps, embedded
        together (values and observed flags) and decoded together. Tokens, and so the cost, fall by
        this factor; entries inside a patch can still be context or target individually.
    wavelet_levels
        Haar levels given as extra input features of every entry (:func:`haar_approximations`):
        block means of the values and context flags over 2, 4, ... rows. 0: none.
    time_dim, metric_dim, emb_dim
        Sizes of the time-position features, the learned metric embedding, and the step embedding.
    """

    def __init__(
        self,
        n_metrics: int,
        n_steps: int,
        channels: int = 64,
        layers: int = 4,
        heads: int = 8,
        n_strategies: int = 2,
        patch: int = 1,
        time_dim: int = 128,
        metric_dim: int = 16,
        emb_dim: int = 128,
        wavelet_levels: int = 0,
    ) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be a multiple of heads ({heads})")
        self.time_dim = time_dim
        self.patch = patch
        self.wavelet_levels = wavelet_levels
        self.input = nn.Linear((2 + 2 * wavelet_levels) * patch, channels)
        self.step_emb = StepEmbedding(n_steps, emb_dim)
        self.strategy_emb = nn.Embedding(n_strategies, emb_dim)
        self.metric_emb = nn.Embedding(n_metrics, metric_dim)
        self.blocks = nn.ModuleList(
            ResidualBlock(channels, emb_dim, time_dim, metric_dim, heads, n_metrics, patch)
            for _ in range(layers)
        )
        self.skip_out = nn.Linear(channels, channels)
        self.final = nn.Linear(channels, patch)
        nn.init.zeros_(self.final.weight)  # start by predicting zero noise: a stable first step
        nn.init.zeros_(self.final.bias)

    def _patches(self, x: torch.Tensor) -> torch.Tensor:
        b, k, n = x.shape
        if n % self.patch:
            raise ValueError(f"window length {n} is not a multiple of the patch size {self.patch}")
        return x.reshape(b, k, n // self.patch, self.patch)

    def side_info(self, observed: torch.Tensor) -> list[torch.Tensor]:
        """Each block's projected side information for masks ``observed`` (B, K, L)."""
        obs = self._patches(observed.float())
        time = sinusoidal_embedding(torch.arange(obs.shape[2], device=observed.device), self.time_dim)
        return [block.side(time, self.metric_emb.weight, obs) for block in self.blocks]

    def forward(
        self,
        x_t: torch.Tensor,
        observed: torch.Tensor,
        step: torch.Tensor,
        strategy: torch.Tensor,
        side: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Noise estimate for ``x_t`` (B, K, L); ``observed`` (B, K, L) is 1 where an entry is context.

        ``side`` (from :meth:`side_info`) may be passed in when the same masks are denoised at many
        steps, since it depends on the masks only.
        """
        b, k, n = x_t.shape
        flags = observed.to(x_t.dtype)
        tokens = torch.cat([self._patches(x_t), self._patches(flags)], dim=-1)
        if self.wavelet_levels:
            haar = haar_approximations(x_t, flags, self.wavelet_levels)  # (B, K, L, 2J)
            haar = haar.reshape(b, k, n // self.patch, self.patch * haar.shape[-1])
            tokens = torch.cat([tokens, haar], dim=-1)
        h = torch.relu(self.input(tokens))  # (B, K, N, C)
        emb = self.step_emb(step) + self.strategy_emb(strategy)
        if side is None:
            side = self.side_info(observed)
        skips = 0.0
        for block, block_side in zip(self.blocks, side, strict=True):
            h, skip = block(h, block_side, emb)
            skips = skips + skip
        out = torch.relu(self.skip_out(skips / math.sqrt(len(self.blocks))))
        return self.final(out).reshape(b, k, n)
