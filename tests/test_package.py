"""Package-level promises: a cheap import and the public names."""

from __future__ import annotations

import json
import subprocess
import sys

import tsdiff


def test_import_loads_no_heavy_library():
    code = (
        "import sys, json, tsdiff; "
        "print(json.dumps(sorted(m for m in ('torch', 'tsai', 'dask', 'fastai', 'sklearn', 'statsmodels', "
        "'causallearn', 'matplotlib', 'scipy') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_public_names_resolve():
    for name in tsdiff.__all__:
        assert getattr(tsdiff, name) is not None
    assert tsdiff.PCADetector.__module__ == "tsdiff.baselines.pca"
    assert issubclass(tsdiff.TsdiffError, ValueError)
    assert callable(tsdiff.load) and callable(tsdiff.evaluate)
