"""Hand-joint labels of a video: the ``HandKeypoints`` container (npz round trip) and how points move under resizing.

Conventions: 2D joints are pixel ``(x, y)`` of the video, ``(T, 21, 2)``; 3D joints are camera-frame millimetres
``(T, 21, 3)``; a frame (or joint) with any coordinate -1 or non-finite is missing.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import numpy as np

from data_tools.errors import DataError
from data_tools.maps.keypoints import NUM_JOINTS


@dataclasses.dataclass
class HandKeypoints:
    """Keypoints of one hand over a video: ``joints_2d (T, 21, 2)`` px, optional ``joints_3d (T, 21, 3)`` mm."""

    joints_2d: np.ndarray
    joints_3d: np.ndarray | None = None
    side: str | None = None   # "right" / "left" when known

    def __post_init__(self):
        self.joints_2d = np.asarray(self.joints_2d, dtype=np.float64)
        if self.joints_2d.ndim != 3 or self.joints_2d.shape[1:] != (NUM_JOINTS, 2):
            raise ValueError(f"joints_2d must be (T, {NUM_JOINTS}, 2), got {self.joints_2d.shape}")
        if self.joints_3d is not None:
            self.joints_3d = np.asarray(self.joints_3d, dtype=np.float64)
            if self.joints_3d.shape != (len(self.joints_2d), NUM_JOINTS, 3):
                raise ValueError(f"joints_3d must be ({len(self.joints_2d)}, {NUM_JOINTS}, 3), got {self.joints_3d.shape}")

    @property
    def num_frames(self) -> int:
        return len(self.joints_2d)

    def save(self, path: str | os.PathLike) -> None:
        """Write ``joints_2d`` (and ``joints_3d``, ``hand_side``) to an npz file, atomically."""
        from data_tools.io.atomic import write_label_npz

        arrays = {"joints_2d": self.joints_2d}
        if self.joints_3d is not None:
            arrays["joints_3d"] = self.joints_3d
        if self.side is not None:
            arrays["hand_side"] = np.array(self.side)
        write_label_npz(path, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "HandKeypoints":
        """Read an npz with ``joints_2d`` ``(T, 21, 2)`` (or ``(T, 1, 21, 2)``), optional ``joints_3d`` and ``hand_side``."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise DataError(path, "keypoint file does not exist")
        with np.load(path) as data:
            if "joints_2d" not in data:
                raise DataError(path, f"keypoint file lacks 'joints_2d' (has {sorted(data.files)})")
            j2 = data["joints_2d"]
            j3 = data["joints_3d"] if "joints_3d" in data else None
            side = str(data["hand_side"]) if "hand_side" in data else None
        try:
            return cls(j2.reshape(len(j2), NUM_JOINTS, 2), None if j3 is None else j3.reshape(len(j3), NUM_JOINTS, 3), side)
        except ValueError as exc:
            raise DataError(path, str(exc)) from None


HAND_JOINTS_FILE = "hand_joints.npz"   # a clip's ground-truth joints, beside its video


def valid_joints(joints: np.ndarray) -> np.ndarray:
    """``(..., J, D)`` -> ``(..., J)`` bool: finite and not the -1 'missing' marker."""
    return np.isfinite(joints).all(-1) & ~(joints == -1).any(-1)


def resize_transform(src_hw: Sequence[int], dst_hw: Sequence[int], mode: str = "crop") -> tuple[np.ndarray, np.ndarray]:
    """``(scale_xy, offset_xy)`` with which ``video_io.resize_frames(mode)`` moves a pixel centre ``p`` (x, y):
    ``(p + 0.5) * scale - 0.5 + offset``."""
    (sh, sw), (th, tw) = src_hw, dst_hw
    if mode == "resize":
        rh, rw, y0, x0 = th, tw, 0, 0
    elif mode in ("crop", "pad"):
        scale = max(th / sh, tw / sw) if mode == "crop" else min(th / sh, tw / sw)
        rh, rw = max(1, round(sh * scale)), max(1, round(sw * scale))
        rh, rw = (max(rh, th), max(rw, tw)) if mode == "crop" else (min(rh, th), min(rw, tw))
        sign = -1 if mode == "crop" else 1
        y0, x0 = sign * (abs(rh - th) // 2), sign * (abs(rw - tw) // 2)
    else:
        raise ValueError(f"unknown resize mode {mode!r}")
    return np.array([rw / sw, rh / sh]), np.array([x0, y0], np.float64)


def map_points(joints_2d: np.ndarray, src_hw: Sequence[int], dst_hw: Sequence[int], mode: str = "crop") -> np.ndarray:
    """Move pixel ``(x, y)`` points the way ``video_io.resize_frames(mode)`` moves the frame they lie on.

    Missing points (-1 / non-finite) stay -1.
    """
    joints_2d = np.asarray(joints_2d, np.float64)
    scale, offset = resize_transform(src_hw, dst_hw, mode)
    out = (joints_2d + 0.5) * scale - 0.5 + offset
    return np.where(valid_joints(joints_2d)[..., None], out, -1.0)
