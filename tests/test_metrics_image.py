"""PSNR / SSIM against hand-computed cases and scikit-image; LPIPS through its real weight-loading path."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from data_tools.errors import DataError
from data_tools.metrics.image_metrics import psnr, ssim
from data_tools.metrics.lpips import LPIPS


def _noisy_pair(seed=0, shape=(3, 24, 30, 3), noise=25):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-noise, noise + 1, shape), 0, 255).astype(np.uint8)
    return a, b


def test_psnr_hand_computed():
    a = np.zeros((2, 4, 4, 3), np.uint8)
    b = a.copy()
    b[0] = 10                      # MSE 100 -> 10 log10(255^2 / 100)
    b[1, :2] = 255                 # half the pixels off by 255 -> MSE 255^2 / 2 -> 10 log10(2)
    np.testing.assert_allclose(psnr(b, a), [10 * math.log10(255 ** 2 / 100), 10 * math.log10(2)], rtol=1e-12)
    assert psnr(a[0], a[0]) == np.inf and psnr(a[0], b[0]).shape == ()


def test_ssim_hand_computed_constant_images():
    # constant frames: variances and covariance vanish, SSIM = (2 m1 m2 + c1) / (m1^2 + m2^2 + c1)
    a, b = np.full((16, 16, 3), 100, np.uint8), np.full((16, 16, 3), 140, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert float(ssim(a, b)) == pytest.approx((2 * 100 * 140 + c1) / (100 ** 2 + 140 ** 2 + c1), rel=1e-12)
    assert float(ssim(a, a)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="smaller"):
        ssim(a[:8, :8], b[:8, :8])


def test_psnr_ssim_match_skimage():
    metrics = pytest.importorskip("skimage.metrics")
    a, b = _noisy_pair()
    want_ssim = [metrics.structural_similarity(a[i], b[i], gaussian_weights=True, sigma=1.5, data_range=255,
                                               use_sample_covariance=False, channel_axis=-1) for i in range(len(a))]
    want_psnr = [metrics.peak_signal_noise_ratio(a[i], b[i], data_range=255) for i in range(len(a))]
    np.testing.assert_allclose(ssim(a, b), want_ssim, rtol=1e-9)
    np.testing.assert_allclose(psnr(a, b), want_psnr, rtol=1e-12)


def _lpips_reference(model: LPIPS, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """LPIPS written out with functional ops and the model's tensors (AlexNet taps after each ReLU)."""
    sd = model.state_dict()
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def feats(z):
        z = (z - shift) / scale
        out = []
        z = F.relu(F.conv2d(z, sd["net.0.weight"], sd["net.0.bias"], stride=4, padding=2)); out.append(z)
        z = F.max_pool2d(z, 3, 2)
        z = F.relu(F.conv2d(z, sd["net.3.weight"], sd["net.3.bias"], padding=2)); out.append(z)
        z = F.max_pool2d(z, 3, 2)
        for i in (6, 8, 10):
            z = F.relu(F.conv2d(z, sd[f"net.{i}.weight"], sd[f"net.{i}.bias"], padding=1)); out.append(z)
        return out

    total = torch.zeros(x.shape[0])
    for k, (fx, fy) in enumerate(zip(feats(x), feats(y))):
        nx = fx / (fx.norm(dim=1, keepdim=True) + 1e-10)
        ny = fy / (fy.norm(dim=1, keepdim=True) + 1e-10)
        total += ((nx - ny) ** 2 * sd[f"lins.{k}.weight"].view(1, -1, 1, 1)).sum(1).mean(dim=(1, 2))
    return total


def _random_lpips(seed=0):
    torch.manual_seed(seed)
    model = LPIPS("alex")
    for lin in model.lins:  # the real heads are non-negative
        lin.weight.data.abs_()
    return model


def test_lpips_roundtrip_and_independent_maths(tmp_path):
    model = _random_lpips()
    path = tmp_path / "lpips_alex.safetensors"
    model.save(path)
    loaded = LPIPS.load(str(path), "alex")
    a, b = _noisy_pair(1, shape=(3, 64, 64, 3), noise=60)
    got = loaded.video(a, b, batch_size=2)
    from data_tools.maps.bundle import to_model_range
    want = _lpips_reference(model, to_model_range(a), to_model_range(b)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4)
    assert got.shape == (3,) and (got > 0).all()
    np.testing.assert_allclose(loaded.video(a, a), 0, atol=1e-6)
    np.testing.assert_allclose(loaded.video(b, a), got, rtol=1e-5)  # symmetric


def test_lpips_loads_torchvision_and_lpips_key_layout(tmp_path):
    model = _random_lpips(1)
    sd = model.state_dict()
    backbone = {k.replace("net.", "features."): v for k, v in sd.items() if k.startswith("net.")}
    backbone["classifier.1.weight"] = torch.zeros(2, 2)  # ignored
    heads = {f"lin{k}.model.1.weight": sd[f"lins.{k}.weight"] for k in range(5)}
    torch.save(backbone, tmp_path / "alexnet.pth")
    torch.save(heads, tmp_path / "alex.pth")
    loaded = LPIPS.load([str(tmp_path / "alexnet.pth"), str(tmp_path / "alex.pth")])
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, sd[k]), k


def test_lpips_missing_weights_are_clear(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        LPIPS.load(str(tmp_path / "none.safetensors"))
    with pytest.raises(DataError, match="not set"):
        LPIPS.load(None)
    model = _random_lpips()
    torch.save({k.replace("net.", "features."): v for k, v in model.state_dict().items() if k.startswith("net.")},
               tmp_path / "backbone_only.pth")
    with pytest.raises(DataError, match="lack 5"):
        LPIPS.load(str(tmp_path / "backbone_only.pth"))
