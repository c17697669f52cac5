"""Package layout that pyproject.toml cannot express: the top-level ``datasets/`` folder (the bundled
demo data, kept beside its SOURCE.md and licence) is installed as the package data ``tsdiff._bundled``."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["tsdiff", "tsdiff.*"]), "tsdiff._bundled"],
    package_dir={"tsdiff._bundled": "datasets"},
    package_data={"tsdiff._bundled": ["*", "*/*", "*/*/*"]},
)
