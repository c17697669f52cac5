"""Datasets: loaders for public benchmarks, the bundled demo data, and a synthetic generator.

Every loader returns a :class:`Dataset` (train part, labelled test part, and, where the source has
them, root-cause segments and a causal graph). Importing this package loads only numpy and pandas.
"""

from __future__ import annotations

from tsdiff.datasets.base import Dataset, labels_from_segments, segments
from tsdiff.datasets.bundled import load_bundled, load_demo
from tsdiff.datasets.paths import default_root
from tsdiff.datasets.public import load_asd, load_msl, load_psm, load_smap, load_tsbad, telemanom_channels
from tsdiff.datasets.safe_pickle import load_array_pickle
from tsdiff.datasets.skab import load_skab, skab_experiments
from tsdiff.datasets.smd import load_smd
from tsdiff.datasets.synthetic import ANOMALY_KINDS, make_synthetic

__all__ = [
    "ANOMALY_KINDS",
    "Dataset",
    "default_root",
    "labels_from_segments",
    "load_array_pickle",
    "load_asd",
    "load_bundled",
    "load_demo",
    "load_msl",
    "load_psm",
    "load_skab",
    "load_smap",
    "load_smd",
    "load_tsbad",
    "make_synthetic",
    "segments",
    "skab_experiments",
    "telemanom_channels",
]
