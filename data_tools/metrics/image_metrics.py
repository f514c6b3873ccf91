"""Per-frame PSNR and SSIM between generated and reference frames (uint8 RGB, any leading shape)."""
from __future__ import annotations

import cv2
import numpy as np


def psnr(generated, reference, data_range: float = 255.0) -> np.ndarray:
    """PSNR in dB per frame: ``(..., H, W, C)`` -> ``(...)`` (``inf`` where the frames are identical)."""
    a, b = np.asarray(generated), np.asarray(reference)
    if a.shape != b.shape or a.ndim < 3:
        raise ValueError(f"frames must be two (..., H, W, C) arrays of one shape, got {a.shape} and {b.shape}")
    fa, fb = a.reshape(-1, *a.shape[-3:]), b.reshape(-1, *b.shape[-3:])
    sq = np.array([cv2.norm(x, y, cv2.NORM_L2SQR) if x.dtype == np.uint8 else
                   float(((x.astype(np.float64) - y) ** 2).sum()) for x, y in zip(fa, fb)])
    mse = (sq / np.prod(a.shape[-3:])).reshape(a.shape[:-3])
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range ** 2 / mse)


def gaussian_kernel(sigma: float = 1.5, truncate: float = 3.5) -> np.ndarray:
    """Normalised 1D Gaussian of radius ``int(truncate * sigma + 0.5)`` (scipy's ``gaussian_filter`` taps)."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def ssim(generated, reference, data_range: float = 255.0, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> np.ndarray:
    """SSIM per frame (Wang et al. 2004): Gaussian window (sigma 1.5, 11 taps), channels averaged.

    Local statistics use population (1/N) weights and only windows fully inside the image, which matches
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    channel_axis=-1)``. ``(..., H, W, C)`` -> ``(...)``.
    """
    a, b = np.asarray(generated), np.asarray(reference)
    if a.shape != b.shape or a.ndim < 3:
        raise ValueError(f"frames must be two (..., H, W, C) arrays of one shape, got {a.shape} and {b.shape}")
    k = gaussian_kernel(sigma)
    r = len(k) // 2
    if min(a.shape[-3:-1]) < len(k):
        raise ValueError(f"frames of {a.shape[-3:-1]} are smaller than the {len(k)}-pixel SSIM window")
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2

    def blur(x):  # separable Gaussian, keeping only the windows fully inside the frame
        return cv2.sepFilter2D(x, cv2.CV_64F, k, k, borderType=cv2.BORDER_REFLECT)[r:-r, r:-r]

    out = []
    for fa, fb in zip(a.reshape(-1, *a.shape[-3:]), b.reshape(-1, *b.shape[-3:])):
        fa, fb = fa.astype(np.float64), fb.astype(np.float64)
        mu_a, mu_b = blur(fa), blur(fb)
        var_a = blur(fa * fa) - mu_a ** 2
        var_b = blur(fb * fb) - mu_b ** 2
        cov = blur(fa * fb) - mu_a * mu_b
        s_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
        out.append(s_map.mean())
    return np.array(out).reshape(a.shape[:-3])
