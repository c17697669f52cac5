"""Every registered detector, in its tiny preset, for the contract suite and other fast tests.

The list is :data:`tsdiff.registry.DETECTORS`: a detector joins the contract suite by joining the
registry. Detectors whose extra is not installed skip the tests that build them.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tsdiff.registry import DETECTORS as REGISTRY
from tsdiff.registry import build


def tiny(name: str) -> Callable[..., object]:
    """A factory of detector ``name`` in its tiny preset (keyword arguments on top) that skips the
    calling test when the detector's extra is not installed."""
    entry = REGISTRY[name]

    def make(**kw: object) -> object:
        if not entry.available():
            pytest.skip(f"{name} needs the {entry.extra} extra (pip install 'tsdiff[{entry.extra}]')")
        return build(name, "tiny", **kw)

    return make


def variant(name: str, **params: object) -> Callable[..., object]:
    """``name`` in its tiny preset with ``params`` changed (keyword arguments on top)."""
    make = tiny(name)
    return lambda **kw: make(**{**params, **kw})


#: the diffusion model's scoring modes and masks, each a tiny configuration of the same detector
DIFFUSION_MODES: dict[str, Callable[..., object]] = {
    "imdiffusion-single": variant("imdiffusion", scoring="single", ensemble_steps=2),
    "imdiffusion-density": variant("imdiffusion", scoring="density", ensemble_steps=2),
    "imdiffusion-direct": variant("imdiffusion", scoring="direct", ensemble_steps=2),
    "imdiffusion-conditional": variant("imdiffusion", conditioning="conditional"),
    "imdiffusion-informative": variant("imdiffusion", record="informative", train_focus=0.5),
    "imdiffusion-normalised": variant("imdiffusion", metric_norm=1.0, metric_reduce="blend-top3"),
    "imdiffusion-wavelet": variant("imdiffusion", wavelet_levels=3),
    "imdiffusion-masks": variant("imdiffusion", grating_segments=[2, 4], tail=4),
    "imdiffusion-streaming": variant("imdiffusion", tail=4, tail_fraction=0.5, score_masks="tail"),
    "hybrid-streaming": lambda **kw: build(
        "hybrid",
        "tiny",
        **{
            "diffusion": build("imdiffusion", "tiny", tail=4, tail_fraction=0.5, score_masks="tail"),
            "causal": build("causal", "tiny", smooth=16, smooth_ahead=3),
            **kw,
        },
    ),
}
#: the causal model's streaming smoothing (16 rows, 3 of them ahead), as its streaming preset has it
STREAMING_CAUSAL = {"causal-streaming": variant("causal", smooth=16, smooth_ahead=3)}
DETECTORS: dict[str, Callable[..., object]] = (
    {name: tiny(name) for name in REGISTRY} | DIFFUSION_MODES | STREAMING_CAUSAL
)
#: detectors whose scores carry information (the random score is excluded from accuracy checks)
INFORMATIVE = [name for name in DETECTORS if name != "random"]
