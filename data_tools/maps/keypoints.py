"""Hand-keypoint skeleton maps: 21 joints (wrist, then thumb, index, middle, ring, little; 4 joints each)."""
from __future__ import annotations

import math

import cv2
import numpy as np

NUM_JOINTS = 21
JOINT_NAMES = ["wrist"] + [f"{finger}_{k}" for finger in ("thumb", "index", "middle", "ring", "little") for k in range(1, 5)]
# Bones from the wrist out along each finger, thumb first: bone b belongs to finger b // 4.
BONES = [(0 if k == 0 else 1 + 4 * f + k - 1, 1 + 4 * f + k) for f in range(5) for k in range(4)]
# Per-finger base colours (BGR, as the reference draws them); index 5 is only reached by joint 20 (20 // 4).
FINGER_COLORS_BGR = np.array(
    [[139, 53, 255], [0, 56, 255], [43, 140, 237], [37, 168, 36], [147, 147, 0], [70, 17, 145]], dtype=np.int32)
COLOR_STEP = 35
JOINT_RADIUS = 3
THUMB_BONE_HALF_WIDTH = 6
BONE_HALF_WIDTH = 3
BONE_LENGTH_RANGE = (5.0, 150.0)  # bones outside (min, max) pixels are not drawn, as in the reference


def _shade(index: int) -> tuple[int, int, int]:
    """RGB colour of joint or bone ``index``: finger base colour (index // 4) + 35 * (index % 4), saturated."""
    bgr = np.clip(FINGER_COLORS_BGR[index // 4] + COLOR_STEP * (index % 4), 0, 255)
    return int(bgr[2]), int(bgr[1]), int(bgr[0])


def joint_color(joint: int) -> tuple[int, int, int]:
    """RGB colour used for joint ``joint``."""
    return _shade(joint)


def bone_color(bone: int) -> tuple[int, int, int]:
    """RGB colour used for bone ``bone`` (index into ``BONES``)."""
    return _shade(bone)


def bones_reversed(joints_3d: np.ndarray | None) -> bool:
    """Whether bones are drawn last-to-first, so the thumb ends on top.

    As in the reference: true when the wrist's camera depth is smaller than the last joint's (index 20).
    """
    if joints_3d is None:
        return False
    joints_3d = np.asarray(joints_3d)
    return bool(joints_3d[0, 2] < joints_3d[-1, 2])


def joints_missing(joints_2d: np.ndarray) -> bool:
    """A frame's joints are missing when any coordinate is -1 or not finite."""
    joints_2d = np.asarray(joints_2d, dtype=np.float64)
    return bool((joints_2d == -1).any() or not np.isfinite(joints_2d).all())


def draw_hand_keypoints(
    joints_2d: np.ndarray,
    height: int,
    width: int,
    joints_3d: np.ndarray | None = None,
    canvas: np.ndarray | None = None,
) -> np.ndarray:
    """Draw one hand's skeleton as an ``(H, W, 3)`` uint8 RGB map.

    ``joints_2d``: (21, 2) pixel (x, y); ``joints_3d`` (21, 3, camera frame) decides the bone order.
    Joints are filled circles of radius 3; bones filled ellipses (half-width 6 for the thumb, 3 otherwise),
    drawn after the joints. A frame with missing joints (-1) stays black (or the canvas, unchanged).
    """
    image = np.zeros((height, width, 3), np.uint8) if canvas is None else canvas.copy()
    joints_2d = np.asarray(joints_2d, dtype=np.float64).reshape(-1, 2)
    if joints_2d.shape[0] != NUM_JOINTS:
        raise ValueError(f"expected {NUM_JOINTS} joints, got {joints_2d.shape[0]}")
    if joints_missing(joints_2d):
        return image
    pts = np.round(joints_2d).astype(np.int32)
    for j, (x, y) in enumerate(pts):
        cv2.circle(image, (int(x), int(y)), JOINT_RADIUS, joint_color(j), thickness=-1)
    order = range(len(BONES) - 1, -1, -1) if bones_reversed(joints_3d) else range(len(BONES))
    lo, hi = BONE_LENGTH_RANGE
    for b in order:
        (x1, y1), (x2, y2) = pts[BONES[b][0]], pts[BONES[b][1]]
        length = math.hypot(float(x1 - x2), float(y1 - y2))
        if not lo < length < hi:
            continue
        angle = math.degrees(math.atan2(float(y1 - y2), float(x1 - x2)))
        half_width = THUMB_BONE_HALF_WIDTH if b < 4 else BONE_HALF_WIDTH
        polygon = cv2.ellipse2Poly((int((x1 + x2) / 2), int((y1 + y2) / 2)), (int(length / 2), half_width),
                                   int(angle), 0, 360, 1)
        cv2.fillConvexPoly(image, polygon, bone_color(b))
    return image


def draw_hand_keypoints_video(
    joints_2d: np.ndarray, height: int, width: int, joints_3d: np.ndarray | None = None
) -> np.ndarray:
    """Draw ``(T, 21, 2)`` (or ``(T, hands, 21, 2)``) joints into a ``(T, H, W, 3)`` skeleton video."""
    joints_2d = np.asarray(joints_2d, dtype=np.float64)
    if joints_2d.ndim == 3:
        joints_2d = joints_2d[:, None]
        joints_3d = None if joints_3d is None else np.asarray(joints_3d)[:, None]
    frames = np.zeros((joints_2d.shape[0], height, width, 3), np.uint8)
    for t in range(joints_2d.shape[0]):
        for h in range(joints_2d.shape[1]):
            frames[t] = draw_hand_keypoints(joints_2d[t, h], height, width,
                                            None if joints_3d is None else joints_3d[t, h], canvas=frames[t])
    return frames
