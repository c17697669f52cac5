"""Saved models: round trips are covered by the contract suite; here, refusing what is not ours."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

import tsdiff
from tsdiff import errors
from tsdiff.baselines import KMeansDetector, PCADetector
from tsdiff.persist import ARRAYS_FILE, CONFIG_FILE

from tests.helpers import make_frame


@pytest.fixture
def saved(tmp_path):
    det = PCADetector(n_components=2).fit(make_frame(200, 4))
    return det, det.save(tmp_path / "m")


def _edit_config(path, **changes):
    config = json.loads((path / CONFIG_FILE).read_text())
    config.update(changes)
    (path / CONFIG_FILE).write_text(json.dumps(config))


def test_config_is_plain_json_with_versions(saved):
    _, path = saved
    config = json.loads((path / CONFIG_FILE).read_text())
    assert config["class"] == "PCADetector" and config["params"]["n_components"] == 2
    assert config["feature_names"] == ["m0", "m1", "m2", "m3"]
    assert {"tsdiff", "numpy", "python"} <= set(config["versions"])
    assert sorted(p.name for p in path.iterdir()) == sorted([CONFIG_FILE, ARRAYS_FILE])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "something-else"}, "not a tsdiff model config"),
        ({"format_version": 99}, "upgrade tsdiff"),
        ({"class": "os.system"}, "unknown detector class"),
        ({"scaler": {"center": [0.0]}}, "incomplete or corrupt"),
    ],
)
def test_foreign_or_corrupt_config_refused(saved, change, message):
    _, path = saved
    _edit_config(path, **change)
    with pytest.raises(errors.ModelFormatError, match=message):
        tsdiff.load(path)


def test_other_tsdiff_version_warns(saved):
    det, path = saved
    config = json.loads((path / CONFIG_FILE).read_text())
    config["versions"]["tsdiff"] = "0.0.1"
    (path / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="saved by tsdiff 0.0.1"):
        back = tsdiff.load(path)
    frame = make_frame(50, 4, seed=3)
    np.testing.assert_array_equal(back.score(frame), det.score(frame))


def test_missing_corrupt_or_pickled_files_refused(tmp_path, saved):
    _, path = saved
    with pytest.raises(errors.ModelFormatError, match="not a directory"):
        tsdiff.load(tmp_path / "nowhere")
    (path / ARRAYS_FILE).write_bytes(b"\x00garbage")
    with pytest.raises(errors.ModelFormatError, match="cannot be read"):
        tsdiff.load(path)
    (path / CONFIG_FILE).write_text("{not json")
    with pytest.raises(errors.ModelFormatError, match="not valid JSON"):
        tsdiff.load(path)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "model.pkl").write_bytes(pickle.dumps(PCADetector()))
    with pytest.raises(errors.ModelFormatError, match=r"no config\.json"):
        tsdiff.load(pickled)


def test_missing_array_refused(saved):
    from safetensors.numpy import load_file, save_file

    _, path = saved
    arrays = load_file(str(path / ARRAYS_FILE))
    arrays.pop("components")
    save_file(arrays, str(path / ARRAYS_FILE))
    with pytest.raises(errors.ModelFormatError, match="components"):
        tsdiff.load(path)


def test_save_refuses_unfitted(tmp_path):
    with pytest.raises(errors.NotFittedError):
        PCADetector().save(tmp_path / "a")


def test_random_state_must_be_a_plain_seed():
    # a seed, unlike a generator object, can be saved and gives the same scores after loading
    with pytest.raises(errors.ParameterError, match="random_state"):
        KMeansDetector(random_state=np.random.default_rng(0)).fit(make_frame(100, 2))


def test_a_model_saved_before_calibration_scores_were_kept_loads_and_saves_again(tmp_path):
    from safetensors.numpy import load_file, save_file

    det = PCADetector(n_components=2).fit(make_frame(200, 3))
    det.save(tmp_path / "old")
    config_path, arrays_path = tmp_path / "old" / CONFIG_FILE, tmp_path / "old" / ARRAYS_FILE
    config = json.loads(config_path.read_text())
    del config["n_train_rows"], config["components"]
    config_path.write_text(json.dumps(config))
    arrays = load_file(str(arrays_path))
    del arrays["calibration_scores"]
    save_file(arrays, str(arrays_path))
    back = tsdiff.load(tmp_path / "old")
    assert back.calibration_scores_ is None and back.n_train_rows_ is None
    back.save(tmp_path / "again")
    test = make_frame(50, 3, seed=2)
    pd.testing.assert_series_equal(tsdiff.load(tmp_path / "again").score(test), det.score(test))
