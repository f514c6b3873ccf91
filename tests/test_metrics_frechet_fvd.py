"""Fréchet distance against closed forms, and FVD through a tiny TorchScript stand-in for I3D."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from data_tools.errors import DataError
from data_tools.metrics.frechet import FeatureStats, frechet_distance, frechet_distance_from_features
from data_tools.metrics.fvd import FVDConfig, VideoFeatureExtractor, compute_fvd, fvd_clip
from data_tools.metrics.standins import TinyVideoDetector


def _w2_reference(mu1, s1, mu2, s2):
    """Independent form: |mu1-mu2|^2 + tr(S1 + S2 - 2 (S2^1/2 S1 S2^1/2)^1/2), symmetric square roots."""
    r2 = scipy.linalg.sqrtm(s2).real
    cross = scipy.linalg.sqrtm(r2 @ s1 @ r2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * cross))


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_frechet_diagonal_closed_form(method):
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    expected = 1 + 0 + 4 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 0.5) ** 2  # |dmu|^2 + sum (sqrt v1 - sqrt v2)^2
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2), method=method) == pytest.approx(expected, rel=1e-9)


def test_frechet_one_dimensional_and_identity():
    assert frechet_distance([2.0], [[9.0]], [-1.0], [[1.0]]) == pytest.approx(9 + (3 - 1) ** 2)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    s = a @ a.T
    assert abs(frechet_distance(np.ones(6), s, np.ones(6), s)) < 1e-8


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_frechet_full_covariances_match_independent_form(method):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = a @ a.T + 0.1 * np.eye(5), b @ b.T + 0.1 * np.eye(5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    expected = _w2_reference(mu1, s1, mu2, s2)
    got = frechet_distance(mu1, s1, mu2, s2, method=method)
    assert got == pytest.approx(expected, rel=1e-7)
    assert frechet_distance(mu2, s2, mu1, s1, method=method) == pytest.approx(expected, rel=1e-7)  # symmetric


def test_frechet_singular_covariances_stay_finite():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(4, 16)), rng.normal(size=(4, 16)) + 0.5  # fewer samples than dims: rank-deficient
    d_eigh = frechet_distance_from_features(x, y, method="eigh")
    d_sqrtm = frechet_distance_from_features(x, y, method="sqrtm")
    assert np.isfinite(d_eigh) and d_eigh > 0
    assert d_eigh == pytest.approx(d_sqrtm, rel=1e-4)


def test_feature_stats_streaming_matches_numpy():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 7))
    stats = FeatureStats()
    for chunk in np.array_split(x, 4):
        stats.append(torch.from_numpy(chunk))
    mu, sigma = stats.mean_cov()
    np.testing.assert_allclose(mu, x.mean(0), atol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False, bias=True), atol=1e-12)
    with pytest.raises(ValueError):
        stats.append(np.zeros((2, 3)))


@pytest.fixture()
def detector_path(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "tiny_i3d.pt"
    torch.jit.script(TinyVideoDetector()).save(str(path))  # I3D's call signature
    return str(path)


def _videos(seed, n, t=10, offset=0):
    rng = np.random.default_rng(seed)
    return [np.clip(rng.normal(128 + offset, 40, size=(t, 12, 16, 3)), 0, 255).astype(np.uint8) for _ in range(n)]


def test_fvd_clip_sampling():
    video = np.arange(20)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    assert fvd_clip(video, 4, 2, 1)[:, 0, 0, 0].tolist() == [1, 3, 5, 7]
    assert fvd_clip(video, 0)[:, 0, 0, 0].tolist() == list(range(20))
    assert fvd_clip(video, 11, 2) is None  # too short: skipped as in the protocol


def test_fvd_matches_direct_computation(detector_path):
    cfg = FVDConfig(detector_path=detector_path, num_frames=8, subsample_factor=1, batch_size=3)
    extractor = VideoFeatureExtractor(cfg, device="cpu")
    real, gen = _videos(0, 7), _videos(1, 6, offset=30)
    result = compute_fvd(real, gen, extractor)

    reference = torch.jit.load(detector_path)
    def feats(videos):
        x = torch.from_numpy(np.stack([v[:8] for v in videos])).permute(0, 4, 1, 2, 3)
        return reference(x, rescale=True, resize=True, return_features=True).detach().double().numpy()
    fr, fg = feats(real), feats(gen)
    expected = _w2_reference(fg.mean(0), np.cov(fg, rowvar=False, bias=True), fr.mean(0),
                             np.cov(fr, rowvar=False, bias=True))
    assert result["num_real"] == 7 and result["num_generated"] == 6 and result["skipped"] == 0
    assert result["fvd"] == pytest.approx(expected, rel=1e-6)
    same = compute_fvd(real, real, extractor)["fvd"]
    assert abs(same) < 1e-6 and result["fvd"] > 10 * max(abs(same), 1e-9)


def test_fvd_skips_short_videos_and_needs_two(detector_path):
    extractor = VideoFeatureExtractor(FVDConfig(detector_path=detector_path, num_frames=8), device="cpu")
    result = compute_fvd(_videos(0, 3) + _videos(5, 1, t=4), _videos(1, 3), extractor)
    assert result["num_real"] == 3 and result["skipped"] == 1
    with pytest.raises(DataError, match="at least 2"):
        compute_fvd(_videos(0, 1), _videos(1, 3), extractor)


def test_fvd_missing_detector_is_clear(tmp_path):
    with pytest.raises(DataError, match="i3d_torchscript.pt"):
        VideoFeatureExtractor(FVDConfig(detector_path=str(tmp_path / "absent.pt")))
    with pytest.raises(DataError, match="detector_path is not set"):
        VideoFeatureExtractor(FVDConfig())
