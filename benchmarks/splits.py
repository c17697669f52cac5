"""The development and report splits of the benchmark data.

Every default, preset and design choice is made on the ``dev`` split; figures we publish come from
the ``report`` split, which no choice has looked at. The two never share a series:

* SMD: machines 1-2 .. 1-4 for development, 1-5 .. 1-8 for the report.
* SKAB: the first 17 experiments in :func:`~tsdiff.datasets.skab_experiments` order (``valve1/0`` ..
  ``valve1/15``, ``valve2/0``) for development, the other 17 for the report.
* Synthetic: new seeds (11, 12, 13) for development; the report keeps seed 0, the series earlier
  figures in RESULTS.md were measured on.
* MSL: the 27 channels sorted by subsystem and number, every other one: ``C-1``, ``D-14``, ``D-16``,
  ... (14) for development, ``C-2``, ``D-15``, ... (13) for the report. Alternating rather than
  halving keeps each subsystem (C, D, F, M, P, S, T) on both sides.

``all`` is the union (for runs that are neither, such as smoke tests).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from harness import Series

from tsdiff.errors import DatasetError

SPLITS = ("dev", "report", "all")
DATASETS = ("smd", "skab", "synthetic", "msl")
SMD_MACHINES = {"dev": ["1-2", "1-3", "1-4"], "report": ["1-5", "1-6", "1-7", "1-8"]}
SKAB_DEV = 17
SYNTHETIC_SEEDS = {"dev": [11, 12, 13], "report": [0]}


@dataclass(frozen=True)
class Split:
    """Which series of each dataset a run uses."""

    name: str
    #: only this many of the split's MSL channels, evenly spaced (0: all); for costly studies
    msl_subset: int = 0

    def __post_init__(self) -> None:
        if self.name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.name!r}")

    def _parts(self) -> list[str]:
        return ["dev", "report"] if self.name == "all" else [self.name]

    def smd_machines(self) -> list[str]:
        return [m for part in self._parts() for m in SMD_MACHINES[part]]

    def skab_experiments(self, names: list[str]) -> list[str]:
        keep = {"dev": names[:SKAB_DEV], "report": names[SKAB_DEV:]}
        return [n for part in self._parts() for n in keep[part]]

    def synthetic_seeds(self) -> list[int]:
        return [s for part in self._parts() for s in SYNTHETIC_SEEDS[part]]

    def msl_channels(self, channels: list[str]) -> list[str]:
        keep = {"dev": channels[0::2], "report": channels[1::2]}
        chosen = sorted((c for part in self._parts() for c in keep[part]), key=channels.index)
        if 0 < self.msl_subset < len(chosen):
            picks = np.linspace(0, len(chosen) - 1, self.msl_subset).round().astype(int)
            chosen = [chosen[i] for i in picks]
        return chosen

    def series(self, datasets: list[str], machines: list[str] | None = None) -> Iterator[Series]:
        """The split's series of each named dataset, in order (``machines`` narrows SMD further)."""
        for ds in datasets:
            if ds == "smd":
                chosen = self.smd_machines()
                yield from smd_series([m for m in chosen if machines is None or m in machines])
            elif ds == "skab":
                yield from skab_series(self)
            elif ds == "synthetic":
                for seed in self.synthetic_seeds():
                    yield from synthetic_series(seed)
            elif ds == "msl":
                yield from msl_series(self)
            elif ds == "bundled":
                yield from bundled_series()
            else:
                raise ValueError(f"unknown dataset {ds!r}; known: {', '.join((*DATASETS, 'bundled'))}")


def smd_series(machines: list[str]) -> Iterator[Series]:
    from tsdiff.datasets import load_smd

    for machine in machines:
        try:
            data = load_smd(machine)
        except DatasetError as exc:
            logging.warning("skipping SMD %s: %s", machine, exc)
            continue
        yield Series("SMD", data.name, data.train, data.test, data.labels.to_numpy())


def bundled_series() -> Iterator[Series]:
    from tsdiff.datasets import load_bundled

    data = load_bundled()
    yield Series("SMD-bundled", data.name, data.train, data.test, data.labels.to_numpy())


def skab_series(split: Split) -> Iterator[Series]:
    from tsdiff.datasets import load_skab, skab_experiments

    try:
        experiments = skab_experiments()
    except DatasetError as exc:
        logging.warning("skipping SKAB: %s", exc)
        return
    for name in split.skab_experiments(experiments):
        data = load_skab(name)
        yield Series("SKAB", name, data.train, data.test, data.labels.to_numpy())


def synthetic_series(seed: int) -> Iterator[Series]:
    from tsdiff.datasets import make_synthetic

    data = make_synthetic(n_metrics=20, n_rows=20000, random_state=seed)
    yield Series("synthetic", f"{data.name}/seed{seed}", data.train, data.test, data.labels.to_numpy())


def msl_series(split: Split) -> Iterator[Series]:
    from tsdiff.datasets import load_msl, telemanom_channels

    try:
        channels = telemanom_channels("MSL")
    except DatasetError as exc:
        logging.warning("skipping MSL: %s", exc)
        return
    for channel in split.msl_channels(channels):
        data = load_msl(channel)
        yield Series("MSL", data.name, data.train, data.test, data.labels.to_numpy())
