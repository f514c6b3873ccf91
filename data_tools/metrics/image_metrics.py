"""Per-frame PSNR and SSIM between generated and reference frames (uint8 RGB, any leading shape)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _pair(generated, reference) -> tuple[torch.Tensor, torch.Tensor]:
    """Both inputs as float64 tensors ``(N, C, H, W)``; shapes must match (``(..., H, W, C)`` channels-last)."""
    a, b = np.asarray(generated), np.asarray(reference)
    if a.shape != b.shape:
        raise ValueError(f"generated {a.shape} and reference {b.shape} frames differ in shape")
    if a.ndim < 3:
        raise ValueError(f"frames must be (..., H, W, C), got shape {a.shape}")
    to = lambda x: torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)).reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2)
    return to(a), to(b)


def psnr(generated, reference, data_range: float = 255.0) -> np.ndarray:
    """PSNR in dB per frame: ``(..., H, W, C)`` -> ``(...)`` (``inf`` where the frames are identical)."""
    a, b = _pair(generated, reference)
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3)).numpy()
    with np.errstate(divide="ignore"):
        out = 10.0 * np.log10(data_range ** 2 / mse)
    return out.reshape(np.shape(generated)[:-3])


def gaussian_kernel(sigma: float = 1.5, truncate: float = 3.5) -> torch.Tensor:
    """Normalised 1D Gaussian of radius ``int(truncate * sigma + 0.5)`` (scipy's ``gaussian_filter`` taps)."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def ssim(generated, reference, data_range: float = 255.0, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> np.ndarray:
    """SSIM per frame (Wang et al. 2004): Gaussian window (sigma 1.5, 11 taps), channels averaged.

    Local statistics use population (1/N) weights and only windows fully inside the image, which matches
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    channel_axis=-1)``. ``(..., H, W, C)`` -> ``(...)``.
    """
    a, b = _pair(generated, reference)
    k = gaussian_kernel(sigma)
    if min(a.shape[-2:]) < len(k):
        raise ValueError(f"frames of {tuple(a.shape[-2:])} are smaller than the {len(k)}-pixel SSIM window")
    channels = a.shape[1]
    kh = k.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    kw = k.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)

    def blur(x):
        return F.conv2d(F.conv2d(x, kh, groups=channels), kw, groups=channels)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    out = s_map.mean(dim=(1, 2, 3)).numpy()
    return out.reshape(np.shape(generated)[:-3])
