"""Fréchet distance between Gaussians fitted to feature sets (the maths behind FID / FVD)."""
from __future__ import annotations

import logging

import numpy as np
import scipy.linalg

logger = logging.getLogger(__name__)


class FeatureStats:
    """Running mean / covariance of feature vectors, accumulated in float64.

    The covariance uses the 1/N normalisation of the StyleGAN-V metric code, so FVD values compare with it.
    """

    def __init__(self):
        self.count = 0
        self._sum: np.ndarray | None = None
        self._outer: np.ndarray | None = None

    def append(self, features) -> None:
        """Add a batch of features ``(N, D)`` (numpy or torch)."""
        x = np.asarray(features.detach().cpu() if hasattr(features, "detach") else features, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"features must be (N, D), got shape {x.shape}")
        if self._sum is None:
            self._sum = np.zeros(x.shape[1])
            self._outer = np.zeros((x.shape[1], x.shape[1]))
        elif x.shape[1] != self._sum.shape[0]:
            raise ValueError(f"feature size changed from {self._sum.shape[0]} to {x.shape[1]}")
        self.count += x.shape[0]
        self._sum += x.sum(axis=0)
        self._outer += x.T @ x

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mu (D,), sigma (D, D))`` of everything appended."""
        if not self.count:
            raise ValueError("no features were appended")
        mu = self._sum / self.count
        return mu, self._outer / self.count - np.outer(mu, mu)


def _sqrtm_trace(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> float:
    """Trace of scipy's principal square root of ``sigma1 @ sigma2``; ``eps`` on the diagonals if singular."""
    root = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(root).all():
        logger.warning("singular covariance product; adding %g to the diagonals", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        root = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(root):
        if not np.allclose(np.diagonal(root).imag, 0, atol=1e-3):
            logger.warning("sqrtm has a significant imaginary part (max %.3g)", np.abs(root.imag).max())
        root = root.real
    return float(np.trace(root))


def _eig_trace(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Same trace through symmetric eigen-decompositions: tr sqrt(S1 S2) = sum sqrt(eig(A S2 A)), A = sqrt(S1)."""
    w, v = np.linalg.eigh(sigma1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root1 @ sigma2 @ root1
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(np.sqrt(np.clip(eig, 0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2, method: str = "eigh", eps: float = 1e-6) -> float:
    """Fréchet distance ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrt(S1 S2))`` between two Gaussians.

    ``method="eigh"`` (default) uses symmetric eigen-decompositions, which stay real and stable for the
    singular covariances of small sample sets; ``"sqrtm"`` uses scipy's matrix square root (as StyleGAN-V),
    adding ``eps`` to the diagonals when the product is singular.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} / {mu2.shape}, sigma {sigma1.shape} / {sigma2.shape}")
    diff = float(((mu1 - mu2) ** 2).sum())
    if method == "eigh":
        cross = _eig_trace(sigma1, sigma2)
    elif method == "sqrtm":
        cross = _sqrtm_trace(sigma1, sigma2, eps)
    else:
        raise ValueError(f"method must be 'eigh' or 'sqrtm', got {method!r}")
    return float(diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * cross)


def frechet_distance_from_features(features1, features2, method: str = "eigh") -> float:
    """Fréchet distance between the Gaussians fitted (1/N covariance) to two ``(N, D)`` feature sets."""
    stats = []
    for feats in (features1, features2):
        s = FeatureStats()
        s.append(feats)
        stats.append(s.mean_cov())
    return frechet_distance(*stats[0], *stats[1], method=method)
