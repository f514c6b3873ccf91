"""Evaluation metrics: Fréchet distance / FVD, PSNR / SSIM / LPIPS, hand-keypoint error, mask IoU.

Every model-based metric (I3D for FVD, LPIPS, keypoint estimators) loads its weights from a local path and
raises ``DataError`` naming that path when it is absent; nothing is downloaded.
"""
from data_tools.metrics.frechet import FeatureStats, frechet_distance
from data_tools.metrics.image_metrics import psnr, ssim

__all__ = ["FeatureStats", "frechet_distance", "psnr", "ssim"]
