"""Detectors built on tsai models trained by fastai's loop (the ``tsai`` extra).

Importing this package imports neither tsai nor fastai: they load when a detector is fitted or
loaded (:func:`~tsdiff.tsai.compat.load_tsai`).
"""

from tsdiff.tsai.forecast import TsaiForecastDetector
from tsdiff.tsai.reconstruction import TsaiReconstructionDetector

__all__ = ["TsaiForecastDetector", "TsaiReconstructionDetector"]
