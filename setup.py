"""Package layout that pyproject.toml cannot express: the top-level ``datasets/`` folder (the bundled
demo data, kept beside its SOURCE.md and licence) is installed as the package data ``tsdiff._bundled``."""

from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
# every folder under datasets/ becomes a data-only package, so setuptools ships all its files
folders = [here / "datasets", *sorted(p for p in (here / "datasets").rglob("*") if p.is_dir())]
data_packages = {
    ".".join(("tsdiff._bundled", *d.relative_to(here / "datasets").parts)): d.relative_to(here).as_posix()
    for d in folders
}

setup(
    packages=[*find_packages(include=["tsdiff", "tsdiff.*"]), *data_packages],
    package_dir=data_packages,
    package_data={name: ["*"] for name in data_packages},
)
