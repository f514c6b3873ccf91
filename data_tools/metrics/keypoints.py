"""Hand-keypoint error of generated videos: an estimator interface, a TorchScript adapter, MPJPE and PCK.

Conventions: 2D joints are pixel ``(x, y)`` of the evaluated video, ``(T, 21, 2)``; 3D joints are camera-frame
millimetres ``(T, 21, 3)``; a frame (or joint) with any coordinate -1 or non-finite is missing and excluded.
"""
from __future__ import annotations

import abc
import dataclasses
import logging
import os
from typing import Sequence

import numpy as np
import torch

from data_tools.errors import DataError
from data_tools.maps.hand_joints import HandKeypoints, valid_joints
from data_tools.maps.keypoints import NUM_JOINTS
from data_tools.io.video_io import resize_frames

logger = logging.getLogger(__name__)


def joint_errors(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean error per joint ``(..., J)`` and the mask of joints valid in both (missing -> excluded)."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    if pred.shape != target.shape:
        raise ValueError(f"predicted {pred.shape} and target {target.shape} keypoints differ in shape")
    mask = valid_joints(pred) & valid_joints(target)
    err = np.linalg.norm(np.where(mask[..., None], pred - target, 0.0), axis=-1)
    return err, mask


def mpjpe(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean per-joint position error over joints valid in both (NaN when none are)."""
    err, mask = joint_errors(pred, target)
    return float(err[mask].mean()) if mask.any() else float("nan")


def pck(pred: np.ndarray, target: np.ndarray, thresholds: Sequence[float]) -> dict[float, float]:
    """Fraction of valid joints whose error is at most each threshold (same unit as the joints)."""
    err, mask = joint_errors(pred, target)
    values = err[mask]
    return {float(t): (float((values <= t).mean()) if values.size else float("nan")) for t in thresholds}


def align_root(joints: np.ndarray, root: int = 0) -> np.ndarray:
    """Subtract the root joint (wrist) per frame: ``(..., J, 3)``."""
    joints = np.asarray(joints, np.float64)
    return joints - joints[..., root:root + 1, :]


def align_procrustes(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Similarity-align each frame of ``pred (T, J, 3)`` to ``target`` (rotation, scale, translation)."""
    out = np.array(pred, np.float64)
    for t in range(len(out)):
        p, g = out[t], np.asarray(target[t], np.float64)
        mu_p, mu_g = p.mean(0), g.mean(0)
        p0, g0 = p - mu_p, g - mu_g
        u, s, vt = np.linalg.svd(p0.T @ g0)
        d = np.sign(np.linalg.det(u @ vt))
        s[-1] *= d
        u[:, -1] *= d
        rot = u @ vt
        scale = s.sum() / max((p0 ** 2).sum(), 1e-12)
        out[t] = scale * p0 @ rot + mu_g
    return out


def hand_box_sizes(joints_2d: np.ndarray) -> np.ndarray:
    """Longer side of each frame's box around its valid joints ``(T,)`` (NaN for frames without joints)."""
    valid = valid_joints(joints_2d)
    lo = np.where(valid[..., None], joints_2d, np.inf).min(-2)
    hi = np.where(valid[..., None], joints_2d, -np.inf).max(-2)
    size = (hi - lo).max(-1)
    return np.where(valid.any(-1), size, np.nan)


def detection_rate(pred: np.ndarray, target: np.ndarray) -> float:
    """Fraction of frames with a ground-truth hand where the prediction has all its joints (NaN: no such frame)."""
    has_target = valid_joints(target).any(-1)
    found = valid_joints(pred).all(-1) & has_target
    return float(found.sum() / has_target.sum()) if has_target.any() else float("nan")


def keypoint_metrics(pred: HandKeypoints, target: HandKeypoints, pck_thresholds: Sequence[float] = (5, 10, 20),
                     align_3d: str = "root", pck_box_fractions: Sequence[float] = (0.05, 0.1)) -> dict[str, float]:
    """Detection rate; 2D MPJPE (px), PCK@px and PCK@fraction of the ground-truth hand box's longer side (over
    detected frames); 3D MPJPE (mm, after ``align_3d``: none | root | procrustes) and PA-MPJPE (Procrustes) when
    both have 3D."""
    if pred.num_frames != target.num_frames:
        raise ValueError(f"predicted keypoints have {pred.num_frames} frames, target {target.num_frames}")
    out = {"detection_rate": detection_rate(pred.joints_2d, target.joints_2d),
           "mpjpe_2d_px": mpjpe(pred.joints_2d, target.joints_2d)}
    out.update({f"pck_{t:g}px": v for t, v in pck(pred.joints_2d, target.joints_2d, pck_thresholds).items()})
    err, mask = joint_errors(pred.joints_2d, target.joints_2d)
    box = hand_box_sizes(target.joints_2d)[:, None]
    relative = np.divide(err, box, out=np.full_like(err, np.inf), where=box > 0)[mask]   # a point-sized box: no PCK
    for fraction in pck_box_fractions:
        out[f"pck_{fraction:g}box"] = float((relative <= fraction).mean()) if relative.size else float("nan")
    if pred.joints_3d is not None and target.joints_3d is not None:
        p3, g3 = pred.joints_3d, target.joints_3d
        ok = valid_joints(p3).all(-1) & valid_joints(g3).all(-1)  # whole frames: alignment needs all joints
        p3, g3 = p3[ok], g3[ok]
        if align_3d == "root":
            aligned = align_root(p3), align_root(g3)
        elif align_3d == "procrustes":
            aligned = align_procrustes(p3, g3), g3
        elif align_3d == "none":
            aligned = p3, g3
        else:
            raise ValueError(f"align_3d must be none, root or procrustes, got {align_3d!r}")
        out["mpjpe_3d_mm"] = mpjpe(*aligned) if len(p3) else float("nan")
        out["pa_mpjpe_3d_mm"] = mpjpe(align_procrustes(p3, g3), g3) if len(p3) else float("nan")
    return out


class KeypointEstimator(abc.ABC):
    """Anything that gives hand keypoints per frame of a video."""

    @abc.abstractmethod
    def estimate(self, video: np.ndarray, side: str | None = None) -> HandKeypoints:
        """``(T, H, W, 3)`` uint8 RGB -> keypoints in that video's pixel frame; frames without a hand are -1.
        ``side`` ("right"/"left"): the hand wanted, for estimators that tell hands apart."""


@dataclasses.dataclass
class MediaPipeConfig:
    """``mediapipe.solutions.hands.Hands`` settings (``data_tools.metrics.mediapipe_hands``); ``hand``: which
    detected hand to keep (best: highest handedness score; right/left: that hand when found, else the frame is
    missing); ``mirrored``: the frames are mirrored (selfie view), so MediaPipe's side labels are taken as they are."""

    model_complexity: int = 1
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    static_image_mode: bool = False   # False: track across the frames of a video; True: detect every frame anew
    max_num_hands: int = 2
    hand: str = "best"
    mirrored: bool = False


ESTIMATOR_KINDS = ("mediapipe", "torchscript")


@dataclasses.dataclass
class EstimatorConfig:
    """Which hand-pose estimator: ``kind`` "mediapipe" (default: MediaPipe Hands, offline, the ``eval`` extra;
    settings in ``mediapipe``) or "torchscript" (a locally supplied TorchScript model at ``path``).

    A TorchScript model takes ``(B, 3, H, W)`` float (RGB in [0, 1], then ``(x - mean) / std``) at ``input_size`` and
    returns a tensor ``(B, 21, 2)`` of 2D joints, or a tuple/dict whose first/``joints_2d`` entry is that
    and whose second/``joints_3d`` entry is ``(B, 21, 3)``. ``coords``: "normalized" ([0, 1] of the input)
    or "pixels" (of the input). ``scale_3d`` converts its 3D unit to mm (1000 for metres).
    """

    kind: str = "mediapipe"
    mediapipe: MediaPipeConfig = dataclasses.field(default_factory=MediaPipeConfig)
    path: str | None = None
    input_size: list[int] = dataclasses.field(default_factory=lambda: [256, 256])
    mean: list[float] = dataclasses.field(default_factory=lambda: [0.0, 0.0, 0.0])
    std: list[float] = dataclasses.field(default_factory=lambda: [1.0, 1.0, 1.0])
    coords: str = "normalized"
    scale_3d: float = 1.0
    batch_size: int = 16


class TorchScriptHandEstimator(KeypointEstimator):
    """Adapter for a TorchScript hand-keypoint checkpoint (see ``EstimatorConfig``)."""

    def __init__(self, config: EstimatorConfig, device: str | torch.device | None = None):
        if not config.path:
            raise DataError(None, "keypoints.estimator.path is not set: give a local TorchScript hand-pose model")
        if not os.path.isfile(config.path):
            raise DataError(config.path, "hand-keypoint estimator checkpoint does not exist")
        if config.coords not in ("normalized", "pixels"):
            raise DataError(None, f"keypoints.estimator.coords must be normalized or pixels, got {config.coords!r}")
        self.config = config
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        try:
            self.model = torch.jit.load(config.path, map_location=self.device).eval()
        except (RuntimeError, ValueError) as exc:
            raise DataError(config.path, f"not a loadable TorchScript model ({exc})") from None
        self.mean = torch.tensor(config.mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(config.std, device=self.device).view(1, 3, 1, 1)

    @torch.no_grad()
    def estimate(self, video: np.ndarray, side: str | None = None) -> HandKeypoints:
        c = self.config
        h_in, w_in = c.input_size
        frames = resize_frames(np.asarray(video), (h_in, w_in), "resize", "area")
        j2, j3 = [], []
        for start in range(0, len(frames), c.batch_size):
            x = torch.from_numpy(frames[start:start + c.batch_size]).to(self.device).permute(0, 3, 1, 2).float() / 255
            out = self.model((x - self.mean) / self.std)
            if isinstance(out, dict):
                p2, p3 = out["joints_2d"], out.get("joints_3d")
            elif isinstance(out, (tuple, list)):
                p2, p3 = out[0], (out[1] if len(out) > 1 else None)
            else:
                p2, p3 = out, None
            j2.append(p2.float().cpu().numpy().reshape(len(x), NUM_JOINTS, 2))
            if p3 is not None:
                j3.append(p3.float().cpu().numpy().reshape(len(x), NUM_JOINTS, 3))
        joints_2d = np.concatenate(j2).astype(np.float64)
        if c.coords == "normalized":
            joints_2d = joints_2d * np.array([w_in, h_in])
        joints_2d = joints_2d * np.array([video.shape[2] / w_in, video.shape[1] / h_in])
        joints_3d = np.concatenate(j3).astype(np.float64) * c.scale_3d if j3 else None
        return HandKeypoints(joints_2d, joints_3d)


def build_estimator(config: EstimatorConfig, device: str | torch.device | None = None) -> KeypointEstimator:
    """The estimator ``config.kind`` names (DataError for an unknown kind, a missing model or package)."""
    if config.kind == "mediapipe":
        from data_tools.metrics.mediapipe_hands import MediaPipeHandEstimator

        return MediaPipeHandEstimator(config.mediapipe)
    if config.kind == "torchscript":
        return TorchScriptHandEstimator(config, device)
    raise DataError(None, f"keypoints.estimator.kind must be one of {list(ESTIMATOR_KINDS)}, got {config.kind!r}")
