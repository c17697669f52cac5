"""Imputation diffusion: denoiser, schedule, masks, training and imputation loops, ImDiffusionDetector.

Importing this package imports torch.
"""

from tsdiff.diffusion.detector import ImDiffusionDetector

__all__ = ["ImDiffusionDetector"]
