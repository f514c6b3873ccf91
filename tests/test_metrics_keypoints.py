"""Hand-keypoint error maths on hand-made cases, the TorchScript estimator adapter, and mask IoU."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from data_tools.errors import DataError
from data_tools.maps.hand_joints import HandKeypoints
from data_tools.metrics.keypoints import (EstimatorConfig, TorchScriptHandEstimator, align_procrustes, keypoint_metrics,
                                          mpjpe, pck)
from data_tools.metrics.segmentation import mask_iou
from data_tools.maps.segmentation import BACKGROUND_CLASS, HAND_CLASS, colorize_classes


def _joints(t=2, seed=0):
    return np.random.default_rng(seed).uniform(20, 100, size=(t, 21, 2))


def test_mpjpe_and_pck_hand_made():
    target = np.zeros((1, 21, 2))
    pred = target.copy()
    pred[0, :7] += [3.0, 4.0]      # 7 joints off by 5 px
    pred[0, 7:14] += [6.0, 8.0]    # 7 joints off by 10 px
    pred[0, 14:] += [0.0, 30.0]    # 7 joints off by 30 px
    assert mpjpe(pred, target) == pytest.approx((5 + 10 + 30) / 3)
    assert pck(pred, target, [5, 10, 20, 40]) == pytest.approx({5.0: 1 / 3, 10.0: 2 / 3, 20.0: 2 / 3, 40.0: 1.0})


def test_missing_frames_and_joints_are_excluded():
    target = np.zeros((2, 21, 2))
    pred = np.ones((2, 21, 2))     # every joint off by sqrt(2)
    pred[1] = -1                   # frame 1 missing in the prediction
    target[0, 3] = np.nan          # one joint missing in the target
    assert mpjpe(pred, target) == pytest.approx(np.sqrt(2))
    assert pck(pred, target, [1.0])[1.0] == 0.0
    assert np.isnan(mpjpe(-np.ones((1, 21, 2)), target[:1]))


def test_keypoint_metrics_3d_alignment():
    rng = np.random.default_rng(1)
    gt3 = rng.normal(0, 50, size=(3, 21, 3)) + [0, 0, 500]
    shifted = gt3 + [10.0, -20.0, 5.0]   # a pure translation: zero after root alignment
    gt = HandKeypoints(_joints(3), gt3)
    out = keypoint_metrics(HandKeypoints(gt.joints_2d, shifted), gt, pck_thresholds=[1], align_3d="root")
    assert out["mpjpe_2d_px"] == 0 and out["pck_1px"] == 1.0 and out["mpjpe_3d_mm"] == pytest.approx(0, abs=1e-9)
    assert keypoint_metrics(HandKeypoints(gt.joints_2d, shifted), gt, align_3d="none")["mpjpe_3d_mm"] == \
        pytest.approx(np.linalg.norm([10, -20, 5]))
    # a similarity transform is undone by Procrustes alignment
    angle = 0.7
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    similar = 1.3 * gt3 @ rot.T + [4, 5, 6]
    np.testing.assert_allclose(align_procrustes(similar, gt3), gt3, atol=1e-8)
    assert "mpjpe_3d_mm" not in keypoint_metrics(HandKeypoints(gt.joints_2d), gt)


def test_hand_keypoints_file_roundtrip(tmp_path):
    kp = HandKeypoints(_joints(4), np.ones((4, 21, 3)))
    kp.save(tmp_path / "hand_joints.npz")
    back = HandKeypoints.load(tmp_path / "hand_joints.npz")
    np.testing.assert_array_equal(back.joints_2d, kp.joints_2d)
    np.testing.assert_array_equal(back.joints_3d, kp.joints_3d)
    np.savez(tmp_path / "bad.npz", joints=np.zeros(3))
    with pytest.raises(DataError, match="lacks 'joints_2d'"):
        HandKeypoints.load(tmp_path / "bad.npz")


class BrightSpotEstimator(torch.nn.Module):
    """Stand-in estimator: every joint at the brightest pixel (normalised coords), 3D = (x, y, 1) in metres."""

    def forward(self, x: torch.Tensor):
        b, _, h, w = x.shape
        idx = x.sum(1).flatten(1).argmax(1)
        xy = torch.stack([(idx % w).float() / w, (idx // w).float() / h], dim=1)
        j2 = xy[:, None, :].expand(b, 21, 2)
        j3 = torch.cat([j2, torch.ones(b, 21, 1)], dim=2)
        return j2, j3


def test_torchscript_estimator_maps_back_to_video_pixels(tmp_path):
    path = tmp_path / "estimator.pt"
    torch.jit.script(BrightSpotEstimator()).save(str(path))
    video = np.zeros((2, 60, 80, 3), np.uint8)
    video[0, 30:32, 40:44] = 255     # a 2x4 block: stays the brightest after resizing to the 30x40 input
    video[1, 10:12, 20:24] = 255
    est = TorchScriptHandEstimator(EstimatorConfig(path=str(path), input_size=[30, 40], scale_3d=1000), "cpu")
    kp = est.estimate(video)
    assert kp.joints_2d.shape == (2, 21, 2) and kp.joints_3d.shape == (2, 21, 3)
    np.testing.assert_allclose(kp.joints_2d[:, 0], [[40, 30], [20, 10]])
    np.testing.assert_allclose(kp.joints_3d[0, 0, 2], 1000)
    with pytest.raises(DataError, match="does not exist"):
        TorchScriptHandEstimator(EstimatorConfig(path=str(tmp_path / "none.pt")))


def test_mask_iou_regions():
    target = np.full((8, 8), BACKGROUND_CLASS)
    target[:4, :4] = HAND_CLASS            # 16 hand pixels
    target[4:, 4:] = 5                     # 16 object pixels
    pred = np.full((8, 8), BACKGROUND_CLASS)
    pred[:4, :2] = HAND_CLASS              # 8 of them, no false positives
    pred[4:, 4:] = 7                       # another object class still counts as object
    pred[0, 7] = 5                         # one false-positive object pixel
    out = mask_iou(colorize_classes(pred), colorize_classes(target), candidates=[5, 7, HAND_CLASS, BACKGROUND_CLASS])
    assert out["iou_hand"] == pytest.approx(8 / 16)
    assert out["iou_object"] == pytest.approx(16 / 17)
    assert out["iou_foreground"] == pytest.approx(24 / 33)
