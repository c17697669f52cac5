"""Every detector tsdiff ships, by name, with its presets: the one list the package reads.

The package face (``tsdiff.ImDiffusionDetector``), persistence (which classes a model folder may
name), the command line (``--detector``, ``--preset``), the contract tests and the benchmarks all
read :data:`DETECTORS`. A new detector is one module plus one :class:`Entry` here.

A preset is a set of constructor parameters. Every entry has ``"default"`` (the class's own
defaults), ``"quick"`` (a faster configuration; the defaults where they are fast already) and
``"tiny"`` (small enough to fit in about a second: for tests and examples); others are named where
they are useful. A parameter that is itself a detector is written
``Preset(name, preset)`` and built when the preset is.

Importing this module imports no detector (and so neither torch nor scikit-learn).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from dataclasses import dataclass, field
from typing import Any

from tsdiff.errors import MissingDependencyError, ParameterError

#: presets every entry has, the entry's defaults unless it gives them
IMPLIED_PRESETS = ("default", "quick", "tiny")
#: pip extra -> modules it provides (an entry that needs an extra is unavailable without them)
EXTRAS = {"tsai": ("tsai", "fastai")}


@dataclass(frozen=True)
class Preset:
    """A detector parameter that is itself a registered detector in one of its presets (``params``:
    constructor arguments on top, as ``(name, value)`` pairs)."""

    name: str
    preset: str = "default"
    params: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Entry:
    """One registered detector.

    Attributes
    ----------
    name
        What users type (``tsdiff fit --detector NAME``), lower case.
    target
        ``"module:ClassName"``: where the class lives; it is imported on first use.
    presets
        Preset name -> constructor parameters (``"quick"`` and ``"tiny"`` are the ``"default"``
        parameters unless given; ``"default"`` is ``{}``, the class's own defaults, unless given).
    extra
        The pip extra the detector needs (``pip install 'tsdiff[EXTRA]'``), or None.
    """

    name: str
    target: str
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: str | None = None

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    @property
    def class_name(self) -> str:
        return self.target.partition(":")[2]

    @property
    def preset_names(self) -> list[str]:
        return [*IMPLIED_PRESETS, *(p for p in self.presets if p not in IMPLIED_PRESETS)]

    def available(self) -> bool:
        """Whether the modules of the entry's extra are installed (checked without importing them)."""
        modules = EXTRAS.get(self.extra, ()) if self.extra else ()
        return all(importlib.util.find_spec(m) is not None for m in modules)

    def load_class(self) -> type:
        return getattr(importlib.import_module(self.module), self.class_name)

    def params(self, preset: str = "default") -> dict[str, Any]:
        """The preset's parameters, with nested detectors built."""
        if preset not in self.preset_names:
            raise ParameterError(f"{self.name} has no preset {preset!r}; it has {self.preset_names}")
        given = self.presets.get(preset, self.presets.get("default", {}))  # implied: the defaults
        return {key: _built(value) for key, value in given.items()}


def _built(value: Any) -> Any:
    if isinstance(value, Preset):
        return build(value.name, value.preset, **dict(value.params))
    if isinstance(value, (list, tuple)):
        return type(value)(_built(v) for v in value)
    return value


TINY_DIFFUSION = {
    "window": 16,
    "grating_segments": 4,
    "channels": 8,
    "layers": 1,
    "heads": 1,
    "patch": 2,
    "max_steps": 30,
    "eval_every": 10,
    "reverse_steps": 3,
    "ensemble_steps": 3,
    "batch_size": 16,
    "verbose": False,
}
# the causal tail mask alone, trailing smoothing of 16 rows (chosen on the development split: 8, 16,
# 32 and 64 rows measured)
STREAMING_DIFFUSION = {"tail": 4, "tail_fraction": 0.5, "score_masks": "tail", "smooth": 16}
TINY_TSAI = {"window": 16, "epochs": 3, "n_threads": 1, "verbose": False}
DIFFUSION_PRESETS = {
    # shorter training, one denoising pass per recorded step instead of the chain
    # (single mode records evenly spaced steps, as these presets were measured with)
    "quick": {"max_steps": 300, "scoring": "single", "ensemble_steps": 5, "record": "last"},
    "fast": {"scoring": "single", "ensemble_steps": 5, "record": "last"},
    # the denoiser predicts the noise, as the reference does
    "eps": {"prediction": "eps"},
    # scored by the causal tail mask alone: a live row's final score within a few rows
    "streaming": STREAMING_DIFFUSION,
    "tiny": TINY_DIFFUSION,
}
HYBRID_PRESETS = {
    "quick": {"diffusion": Preset("imdiffusion", "quick"), "causal": Preset("causal")},
    "eps": {"diffusion": Preset("imdiffusion", "eps")},
    # the diffusion component trains as many steps as in the default hybrid (hybrid.DIFFUSION_STEPS)
    "streaming": {
        "diffusion": Preset("imdiffusion", "streaming", (("max_steps", 600),)),
        "causal": Preset("causal", "streaming"),
    },
    "tiny": {
        "diffusion": Preset("imdiffusion", "tiny"),
        "causal": Preset("causal", "tiny"),
        "verbose": False,
    },
}
FORECAST_CAUSAL_PRESETS = {
    "default": {
        "components": [("forecast", Preset("tsai-forecast"), 0.5), ("causal", Preset("causal"), 0.5)]
    },
    "tiny": {
        "components": [
            ("forecast", Preset("tsai-forecast", "tiny"), 0.5),
            ("causal", Preset("causal", "tiny"), 0.5),
        ],
        "verbose": False,
    },
}
FORECAST_PRESETS = {
    "tiny": {"arch_config": {"d_model": 16, "n_heads": 2, "n_layers": 1, "d_ff": 32}, **TINY_TSAI}
}
RECON_PRESETS = {"tiny": {"arch_config": {"nf": 4, "depth": 2}, "latent": 4, **TINY_TSAI}}
CAUSAL_PRESETS = {
    "tiny": {"max_lag": 2, "max_rows": 500},
    # the default's 16-row smoothing reaching 3 rows ahead instead of 7 (chosen on the development
    # split over centred 8 rows, 12-32 rows and exponential means, each 3 rows ahead): a live row's
    # score waits 3 rows
    "streaming": {"smooth": 16, "smooth_ahead": 3},
}
IFOREST_TINY = {"n_estimators": 20, "max_samples": 64}
KMEANS_PRESETS = {
    "tiny": {"window": 10, "n_clusters": 4},
    # TSB-AD's tuned multivariate setting (its HP_list: 30 clusters, 40-row windows)
    "tsbad": {"window": 40, "n_clusters": 30},
}

#: every detector, one entry each (name, "module:Class", presets, extra)
DETECTORS: dict[str, Entry] = {
    e.name: e
    for e in [
        Entry("random", "tsdiff.baselines.random_score:RandomDetector"),
        Entry("pca", "tsdiff.baselines.pca:PCADetector", {"tiny": {"n_components": 2}}),
        Entry("iforest", "tsdiff.baselines.iforest:IsolationForestDetector", {"tiny": IFOREST_TINY}),
        Entry("window-pca", "tsdiff.baselines.window_pca:WindowPCADetector", {"tiny": {"window": 8}}),
        Entry("kmeans", "tsdiff.baselines.kmeans:KMeansDetector", KMEANS_PRESETS),
        Entry("causal", "tsdiff.causal.detector:CausalDetector", CAUSAL_PRESETS),
        Entry("imdiffusion", "tsdiff.diffusion.detector:ImDiffusionDetector", DIFFUSION_PRESETS),
        Entry("hybrid", "tsdiff.hybrid:HybridDetector", HYBRID_PRESETS),
        Entry("forecast-causal", "tsdiff.fusion:FusionDetector", FORECAST_CAUSAL_PRESETS, extra="tsai"),
        Entry("tsai-forecast", "tsdiff.tsai.forecast:TsaiForecastDetector", FORECAST_PRESETS, "tsai"),
        Entry("tsai-recon", "tsdiff.tsai.reconstruction:TsaiReconstructionDetector", RECON_PRESETS, "tsai"),
    ]
}


def get(name: str) -> Entry:
    """The entry called ``name``; :class:`ParameterError` listing the known names otherwise."""
    try:
        return DETECTORS[name]
    except (KeyError, TypeError):
        raise ParameterError(f"unknown detector {name!r}; known: {', '.join(DETECTORS)}") from None


def build(name: str, preset: str = "default", **params: Any) -> Any:
    """A configured (unfitted) detector: ``name`` in ``preset``, with ``params`` on top.

    ``verbose`` goes to the detector and to the preset's nested detectors where they take it (and
    is dropped where they do not).
    """
    entry = get(name)
    if not entry.available():
        raise MissingDependencyError(
            f"the {name} detector needs the {entry.extra} extra: pip install 'tsdiff[{entry.extra}]'"
        )
    cls = entry.load_class()
    preset_params = entry.params(preset)
    if "verbose" in params:
        for value in preset_params.values():
            _set_verbose(value, params["verbose"])
    accepted = inspect.signature(cls).parameters
    if "verbose" not in accepted:
        params.pop("verbose", None)
    merged = {**preset_params, **params}
    unknown = sorted(set(merged) - set(accepted))
    if unknown:
        raise ParameterError(f"{cls.__name__} has no parameter(s) {unknown}")
    return cls(**merged)


def _set_verbose(value: Any, verbose: bool) -> None:
    if isinstance(value, (list, tuple)):
        for v in value:
            _set_verbose(v, verbose)
    elif hasattr(value, "get_params") and "verbose" in value.get_params(deep=False):
        value.set_params(verbose=verbose)


def preset_names() -> list[str]:
    """Every preset name of any entry."""
    return list(dict.fromkeys(p for e in DETECTORS.values() for p in e.preset_names))


def detector_classes() -> dict[str, str]:
    """Class name -> module of every detector class a saved model may name."""
    return {e.class_name: e.module for e in DETECTORS.values()}
