"""The registry: one list of detector names, classes and presets that the whole package reads."""

from __future__ import annotations

import inspect

import pytest

import tsdiff
from tsdiff import errors, registry
from tsdiff.base import BaseDetector
from tsdiff.cli import build_parser
from tsdiff.registry import DETECTORS, Preset, build


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_entry_names_a_detector_class_with_valid_presets(name):
    entry = DETECTORS[name]
    cls = entry.load_class()
    assert issubclass(cls, BaseDetector) and cls.__module__ == entry.module
    assert name == name.lower() and {"default", "quick", "tiny"} <= set(entry.preset_names)
    accepted = set(inspect.signature(cls).parameters)
    for preset, params in entry.presets.items():
        assert set(params) <= accepted, f"{name}/{preset}"
        nested = [v for v in params.values() if isinstance(v, Preset)]
        nested += [
            c[1] for v in params.values() if isinstance(v, list) for c in v if isinstance(c[1], Preset)
        ]
        assert all(p.name in DETECTORS for p in nested)


def test_the_package_face_serves_every_registered_class():
    for class_name in registry.detector_classes():
        assert class_name in tsdiff.__all__
        assert issubclass(getattr(tsdiff, class_name), BaseDetector)


def test_the_command_line_offers_every_registered_detector_and_preset():
    parser = build_parser()
    for name in DETECTORS:
        for preset in DETECTORS[name].preset_names:
            args = parser.parse_args(["fit", "data.csv", "-o", "m", "--detector", name, "--preset", preset])
            assert (args.detector, args.preset) == (name, preset)
    with pytest.raises(SystemExit):
        parser.parse_args(["fit", "data.csv", "-o", "m", "--detector", "prophet"])


def test_build_applies_the_preset_and_the_given_parameters():
    det = build("imdiffusion", "quick", window=32)
    assert (det.max_steps, det.scoring, det.ensemble_steps, det.window) == (300, "single", 5, 32)
    hybrid = build("hybrid", "quick", random_state=3, verbose=False)
    assert hybrid.diffusion.scoring == "single" and hybrid.diffusion.verbose is False
    assert hybrid.random_state == 3
    assert build("pca", "quick").get_params() == tsdiff.PCADetector().get_params()
    assert build("pca", verbose=False).get_params() == tsdiff.PCADetector().get_params()  # not taken: dropped


def test_the_low_latency_hybrid_trains_its_diffusion_model_as_the_default_hybrid_does():
    from tsdiff.hybrid import DIFFUSION_STEPS

    streaming = build("hybrid", "streaming")
    assert streaming.diffusion.max_steps == DIFFUSION_STEPS
    assert streaming.diffusion.score_masks == "tail" and streaming.causal.smooth_ahead == 3


def test_a_nested_detector_given_by_the_caller_is_left_alone():
    mine = tsdiff.ImDiffusionDetector(verbose=True)
    build("hybrid", diffusion=mine, verbose=False)
    assert mine.verbose is True


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: build("prophet"), "unknown detector 'prophet'; known: .*imdiffusion"),
        (lambda: build("pca", "fast"), "pca has no preset 'fast'"),
        (lambda: build("pca", window=3), r"PCADetector has no parameter\(s\) \['window'\]"),
    ],
)
def test_unknown_names_are_refused_with_what_is_known(call, message):
    with pytest.raises(errors.ParameterError, match=message):
        call()


def test_an_entry_whose_extra_is_missing_says_what_to_install(monkeypatch):
    monkeypatch.setitem(registry.EXTRAS, "tsai", ("a_module_that_is_not_installed",))
    assert not DETECTORS["tsai-forecast"].available()
    with pytest.raises(errors.MissingDependencyError, match=r"pip install 'tsdiff\[tsai\]'"):
        build("tsai-forecast")


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_preset_of_every_entry_builds_a_valid_detector(name):
    entry = DETECTORS[name]
    if not entry.available():
        pytest.skip(f"{name} needs the {entry.extra} extra")
    for preset in entry.preset_names:
        assert build(name, preset).min_fit_rows() >= 1  # a fusion checks its components here
