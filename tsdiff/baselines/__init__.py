"""Simple detectors with the full tsdiff contract: the yardstick in every benchmark."""

from tsdiff.baselines.iforest import IsolationForestDetector
from tsdiff.baselines.kmeans import KMeansDetector
from tsdiff.baselines.pca import PCADetector
from tsdiff.baselines.random_score import RandomDetector
from tsdiff.baselines.window_pca import WindowPCADetector

__all__ = ["IsolationForestDetector", "KMeansDetector", "PCADetector", "RandomDetector", "WindowPCADetector"]
