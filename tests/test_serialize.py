"""JSON values, the format envelope and array bundles: how tsdiff writes what it keeps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tsdiff import errors
from tsdiff.serialize import envelope, json_ready, open_envelope, prefixed, to_json, unprefixed


def test_json_ready_writes_standard_json():
    value = {1: (np.int64(3), np.float32(0.5)), "x": [np.nan, np.bool_(True), "a"], "inf": np.inf}
    ready = json_ready(value)
    assert ready == {"1": [3, 0.5], "x": [None, True, "a"], "inf": float("inf")}
    assert json.loads(to_json({"a": [np.nan, np.int8(2)]}, "a test value")) == {"a": [None, 2]}


def test_an_object_that_is_not_json_is_named():
    with pytest.raises(errors.ParameterError, match="cannot save the settings"):
        to_json({"a": object()}, "the settings")


def test_envelope_round_trip_and_refusals():
    doc = envelope("tsdiff-thing", 2, {"x": 1})
    assert doc == {"format": "tsdiff-thing", "format_version": 2, "x": 1}
    assert open_envelope(doc, "tsdiff-thing", 2, errors.ModelFormatError, "thing") is doc
    assert open_envelope({"format": "tsdiff-thing"}, "tsdiff-thing", 1, errors.ModelFormatError, "thing")
    with pytest.raises(errors.ModelFormatError, match=r"f\.json: not a thing \(no 'format'"):
        open_envelope({"format": "other"}, "tsdiff-thing", 2, errors.ModelFormatError, "thing", "f.json")
    with pytest.raises(errors.ParameterError, match="version 3; this tsdiff reads up to 2: upgrade"):
        open_envelope(envelope("tsdiff-thing", 3, {}), "tsdiff-thing", 2, errors.ParameterError, "thing")
    with pytest.raises(errors.ParameterError, match="not a thing"):
        open_envelope([1, 2], "tsdiff-thing", 2, errors.ParameterError, "thing")


def test_array_bundles_keep_each_part_under_its_prefix():
    arrays = {**prefixed("model", {"w": np.ones(2)}), **prefixed("model.head", {"w": np.zeros(1)})}
    assert sorted(arrays) == ["model.head.w", "model.w"]
    assert sorted(unprefixed(arrays, "model")) == ["head.w", "w"]
    assert list(unprefixed(arrays, "model.head")) == ["w"]
    assert unprefixed(arrays, "mod") == {}
