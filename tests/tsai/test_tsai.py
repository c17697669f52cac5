"""The tsai detectors beyond the contract suite, and the torchvision stand-in that lets tsai load."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import tsdiff
from tsdiff import errors
from tsdiff.registry import DETECTORS as REGISTRY
from tsdiff.tsai import TsaiForecastDetector, TsaiReconstructionDetector, compat

from tests.detectors import DETECTORS
from tests.helpers import make_frame

needs_tsai = pytest.mark.skipif(not compat.tsai_installed(), reason="tsai is not installed")
TSAI = ["tsai-forecast", "tsai-recon"]


def run_python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter (sys.modules stays clean here); it prints one JSON object."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------- the torchvision stand-in
def test_stand_in_has_what_fastai_reads_and_refuses_to_be_used():
    modules = compat.torchvision_stand_in()
    assert set(modules) == {
        "torchvision",
        "torchvision.models",
        "torchvision.transforms",
        "torchvision.transforms.functional",
    }
    root = modules["torchvision"]
    assert getattr(root, compat.STAND_IN_FLAG) and isinstance(root.__version__, str)
    assert root.models.__all__ == []  # `from torchvision.models import *` brings nothing
    with pytest.raises(RuntimeError, match="not available"):
        root.transforms.functional.pad(None, 1)


def test_a_working_torchvision_is_left_alone():
    result = run_python(
        """
        import json, sys, types
        real = types.ModuleType("torchvision")
        sys.modules["torchvision"] = real
        from tsdiff.tsai.compat import ensure_torchvision
        replaced = ensure_torchvision()
        print(json.dumps({"replaced": replaced, "same": sys.modules["torchvision"] is real}))
        """
    )
    assert result == {"replaced": False, "same": True}


def test_stand_in_replaces_a_torchvision_that_fails_to_import():
    # a finder that behaves like a torchvision built for another torch: it leaves a submodule behind
    # and raises RuntimeError half-way through its import
    result = run_python(
        """
        import importlib.abc, importlib.util, json, sys, types

        class Broken(importlib.abc.MetaPathFinder, importlib.abc.Loader):
            def find_spec(self, name, path=None, target=None):
                return importlib.util.spec_from_loader(name, self) if name == "torchvision" else None
            def create_module(self, spec):
                return None
            def exec_module(self, module):
                sys.modules["torchvision.extension"] = types.ModuleType("torchvision.extension")
                raise RuntimeError("operator torchvision::nms does not exist")

        sys.meta_path.insert(0, Broken())
        from tsdiff.tsai.compat import STAND_IN_FLAG, ensure_torchvision
        replaced = ensure_torchvision()
        import torchvision
        again = ensure_torchvision()
        print(json.dumps({
            "replaced": replaced,
            "again": again,
            "stand_in": getattr(torchvision, STAND_IN_FLAG, False),
            "leftover": "torchvision.extension" in sys.modules,
        }))
        """
    )
    assert result == {"replaced": True, "again": True, "stand_in": True, "leftover": False}


def test_stand_in_when_torchvision_is_not_installed():
    result = run_python(
        """
        import json, sys
        sys.modules["torchvision"] = None  # what Python does for a module that cannot be found
        from tsdiff.tsai.compat import STAND_IN_FLAG, ensure_torchvision
        print(json.dumps({"replaced": ensure_torchvision(),
                          "stand_in": getattr(sys.modules["torchvision"], STAND_IN_FLAG, False)}))
        """
    )
    assert result == {"replaced": True, "stand_in": True}


@needs_tsai
def test_tsai_loads_in_this_environment_and_stays_out_of_the_core_import():
    result = run_python(
        """
        import json, sys
        import tsdiff
        from tsdiff.tsai import TsaiForecastDetector
        det = TsaiForecastDetector()
        heavy_before = sorted(m for m in ("tsai", "fastai", "torch") if m in sys.modules)
        from tsdiff.tsai.compat import load_tsai
        load_tsai()
        from tsai.models.TSTPlus import TSTPlus
        print(json.dumps({"before": heavy_before, "after": "fastai.learner" in sys.modules}))
        """
    )
    assert result == {"before": [], "after": True}


def test_missing_tsai_is_a_typed_error_with_the_install_hint(monkeypatch, train_frame):
    monkeypatch.setattr(compat, "tsai_installed", lambda: False)
    with pytest.raises(errors.MissingDependencyError, match=r"tsdiff\[tsai\]") as info:
        TsaiForecastDetector(window=8, epochs=1, verbose=False).fit(train_frame)
    assert isinstance(info.value, ImportError) and isinstance(info.value, errors.TsdiffError)


@needs_tsai
def test_loading_a_saved_model_without_tsai_says_so(monkeypatch, train_frame, tmp_path):
    DETECTORS["tsai-recon"](random_state=0).fit(train_frame).save(tmp_path / "m")
    monkeypatch.setattr(compat, "tsai_installed", lambda: False)
    with pytest.raises(errors.MissingDependencyError):
        tsdiff.load(tmp_path / "m")


# ----------------------------------------------------------------- the detectors
@needs_tsai
@pytest.mark.parametrize("name", TSAI)
@pytest.mark.parametrize("n_rows", [100, 300, 40000])
def test_input_sizes_score_every_row(name, n_rows, train_frame):
    det = DETECTORS[name](random_state=0).fit(train_frame)
    test = make_frame(n_rows, 4, seed=2)
    scores = det.score(test)
    assert len(scores) == n_rows and np.isfinite(scores.to_numpy()).all()
    # a later slice (started on the detector's period, with enough history) gives the same scores for
    # its last rows: nothing depends on how windows fall into batches
    g = det.stream_geometry()
    start = max(0, (n_rows - 50 - g.history) // g.period * g.period)
    part = det.score(test.iloc[start:]).iloc[-50:]
    np.testing.assert_allclose(part.to_numpy(), scores.iloc[-50:].to_numpy(), rtol=1e-5, atol=1e-7)


@needs_tsai
def test_training_learns_with_fastai_one_cycle(train_frame):
    det = TsaiForecastDetector(
        **{**REGISTRY["tsai-forecast"].presets["tiny"], "epochs": 6}, random_state=0
    ).fit(train_frame)
    assert len(det.history_) == 6
    assert {"train_loss", "valid_loss"} <= set(det.history_[0])
    assert det.history_[-1]["valid_loss"] < 0.5 * det.history_[0]["valid_loss"]
    assert det.n_train_rows_ == 240  # the last 20% of the rows are held out for the threshold


@needs_tsai
@pytest.mark.parametrize("name", TSAI)
def test_different_seeds_give_different_models(name, train_frame, test_frame):
    a = DETECTORS[name](random_state=0).fit(train_frame).score(test_frame)
    b = DETECTORS[name](random_state=1).fit(train_frame).score(test_frame)
    assert not np.allclose(a.to_numpy(), b.to_numpy())


@needs_tsai
@pytest.mark.parametrize("name", TSAI)
def test_verbose_false_is_silent_and_bars_show_only_on_a_terminal(name, train_frame, capfd):
    DETECTORS[name](random_state=0, verbose=False).fit(train_frame)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    # verbose draws a bar only on a terminal: captured stderr (a pipe, a log file) stays clean
    DETECTORS[name](random_state=0, verbose=True).fit(train_frame)
    out, err = capfd.readouterr()
    assert out == "" and "training" not in err


@needs_tsai
@pytest.mark.parametrize(
    "params",
    [
        {"arch": "LSTM"},
        {"arch_config": {"c_in": 3}},
        {"arch_config": {"no_such_argument": 1}},
        {"window": 1},
        {"epochs": 0},
        {"validation_fraction": 1.0},
        {"smooth": 0},
        {"n_threads": 0},
    ],
)
def test_bad_parameters_are_typed_errors(params, train_frame):
    with pytest.raises(errors.ParameterError):
        TsaiForecastDetector(**{**REGISTRY["tsai-forecast"].presets["tiny"], **params}).fit(train_frame)


def test_reconstruction_stride_and_latent_are_checked(train_frame):
    with pytest.raises(errors.ParameterError, match="stride"):
        TsaiReconstructionDetector(window=8, stride=9, verbose=False).fit(train_frame)
    with pytest.raises(errors.ParameterError, match="latent"):
        TsaiReconstructionDetector(window=8, latent=0, verbose=False).fit(train_frame)


@needs_tsai
def test_other_architectures(train_frame, test_frame):
    det = TsaiReconstructionDetector(
        arch="ResNetPlus", arch_config={"nf": 4}, window=16, latent=4, epochs=2, n_threads=1, verbose=False
    ).fit(train_frame)
    assert det.score(test_frame).iloc[120:126].max() > det.score(test_frame).iloc[:100].median()
    forecast = TsaiForecastDetector(
        arch="InceptionTimePlus",
        arch_config={"nf": 4, "depth": 1},
        window=16,
        epochs=2,
        n_threads=1,
        verbose=False,
    ).fit(train_frame)
    assert isinstance(forecast.score(test_frame), pd.Series)


def test_thread_cap_from_the_environment(monkeypatch):
    import torch

    from tsdiff.torch_runtime import THREADS_ENV, available_cpus, cpu_threads, default_threads

    monkeypatch.setenv(THREADS_ENV, "1")
    assert default_threads() == 1
    before = torch.get_num_threads()
    with cpu_threads():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    monkeypatch.setenv(THREADS_ENV, "not a number")
    assert default_threads() == available_cpus()
    monkeypatch.delenv(THREADS_ENV)
    assert default_threads() == available_cpus()


def test_module_arrays_round_trip():
    import torch

    from tsdiff.torch_runtime import load_module_arrays, module_arrays

    torch.manual_seed(0)
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    arrays = module_arrays(a)
    assert set(arrays) == {"model.weight", "model.bias"}
    load_module_arrays(b, arrays)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    with pytest.raises(RuntimeError):
        load_module_arrays(torch.nn.Linear(4, 2), arrays)
