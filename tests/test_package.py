"""Package-level promises: a cheap import and the public names."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert tsdiff.TsaiForecastDetector.__module__ == "tsdiff.tsai.forecast"
    assert issubclass(tsdiff.TsdiffError, ValueError)
    assert callable(tsdiff.load) and callable(tsdiff.evaluate)


PACKAGE = Path(tsdiff.__file__).resolve().parent


def _command_line(module: str) -> bool:
    """The ``tsdiff`` command line: the ``tsdiff.cli`` package and ``tsdiff.fleet.cli``."""
    return module.split(".")[:2] == ["tsdiff", "cli"] or module == "tsdiff.fleet.cli"


#: private modules any module may import from (the version string, the bundled data)
SHARED_PRIVATE = {"tsdiff._version", "tsdiff._bundled"}


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every tsdiff import in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tsdiff"):
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("tsdiff")]
    return out


def test_the_library_never_imports_its_command_line_nor_another_module_s_private_names():
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(("tsdiff", *path.relative_to(PACKAGE).with_suffix("").parts))
        for source, names in _imports(path):
            if not _command_line(module):
                assert not _command_line(source), f"{module} imports {source}"
            private = [p for p in source.split(".") if p.startswith("_")]
            assert not private or source in SHARED_PRIVATE, f"{module} imports the private module {source}"
            hidden = [n for n in names if n.startswith("_") and not n.startswith("__")]
            assert not hidden, f"{module} imports {hidden} from {source}"


def test_pyproject_lists_every_package():
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {
        ".".join(("tsdiff", *p.parent.relative_to(PACKAGE).parts)) for p in PACKAGE.rglob("__init__.py")
    }
    data = PACKAGE.parent / "datasets"
    data_packages = {
        ".".join(("tsdiff._bundled", *d.relative_to(data).parts))
        for d in [data, *data.rglob("*")]
        if d.is_dir()
    }
    assert set(config["packages"]) == folders | data_packages
    assert config["package-dir"] == {"tsdiff._bundled": "datasets"}
    assert all(config["package-data"][name] == ["*"] for name in data_packages)


def test_dir_lists_the_public_api_not_the_modules_own_imports():
    import tsdiff

    public = {n for n in dir(tsdiff) if not n.startswith("_")}
    assert {"HybridDetector", "StreamScorer", "load", "build", "fleet"} <= public
    assert not {"Any", "TYPE_CHECKING", "importlib", "annotations"} & public
