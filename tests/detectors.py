"""Every detector class of tsdiff, in a tiny configuration for fast tests.

A new detector joins the contract suite by adding one entry here.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tsdiff.baselines import (
    IsolationForestDetector,
    KMeansDetector,
    PCADetector,
    RandomDetector,
    TsaiForecastDetector,
    TsaiReconstructionDetector,
)
from tsdiff.baselines._tsai_compat import tsai_installed
from tsdiff.causal import CausalDetector
from tsdiff.diffusion import ImDiffusionDetector
from tsdiff.hybrid import HybridDetector

#: a diffusion detector small enough to train in about a second
TINY_DIFFUSION = dict(
    window=16,
    grating_segments=4,
    channels=8,
    layers=1,
    heads=1,
    patch=2,
    max_steps=30,
    eval_every=10,
    reverse_steps=3,
    ensemble_steps=3,
    batch_size=16,
    verbose=False,
)

#: tsai detectors small enough to train in about a second (tests using them skip without tsai)
TINY_TSAI = dict(window=16, epochs=3, n_threads=1, verbose=False)
TINY_TSAI_FORECAST = dict(arch_config=dict(d_model=16, n_heads=2, n_layers=1, d_ff=32), **TINY_TSAI)
TINY_TSAI_RECON = dict(arch_config=dict(nf=4, depth=2), latent=4, **TINY_TSAI)


def needs_tsai(cls: type, tiny: dict) -> Callable[..., object]:
    """A factory of ``cls`` in its tiny configuration that skips the calling test when tsai is missing."""

    def make(**kw: object) -> object:
        if not tsai_installed():
            pytest.skip("tsai is not installed (pip install 'tsdiff[tsai]')")
        return cls(**{**tiny, **kw})

    return make


DETECTORS: dict[str, Callable[..., object]] = {
    "pca": lambda **kw: PCADetector(n_components=2, **kw),
    "iforest": lambda **kw: IsolationForestDetector(n_estimators=20, max_samples=64, **kw),
    "kmeans": lambda **kw: KMeansDetector(window=10, n_clusters=4, **kw),
    "random": lambda **kw: RandomDetector(**kw),
    "imdiffusion": lambda **kw: ImDiffusionDetector(**{**TINY_DIFFUSION, **kw}),
    "causal": lambda **kw: CausalDetector(max_lag=2, max_rows=500, **kw),
    "hybrid": lambda **kw: HybridDetector(
        diffusion=ImDiffusionDetector(**TINY_DIFFUSION),
        causal=CausalDetector(max_lag=2, max_rows=500),
        verbose=False,
        **kw,
    ),
    "tsai-forecast": needs_tsai(TsaiForecastDetector, TINY_TSAI_FORECAST),
    "tsai-recon": needs_tsai(TsaiReconstructionDetector, TINY_TSAI_RECON),
}
#: detectors whose scores carry information (the random score is excluded from accuracy checks)
INFORMATIVE = [name for name in DETECTORS if name != "random"]
