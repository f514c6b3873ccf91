"""Hand-keypoint skeleton maps: 21 joints (wrist, then thumb, index, middle, ring, little; 4 joints each)."""
from __future__ import annotations

import math

import cv2
import numpy as np

NUM_JOINTS = 21
JOINT_NAMES = ["wrist"] + [f"{finger}_{k}" for finger in ("thumb", "index", "middle", "ring", "little") for k in range(1, 5)]
# Bones from the wrist out along each finger, thumb first: bone b belongs to finger b // 4.
BONES = [(0 if k == 0 else 1 + 4 * f + k - 1, 1 + 4 * f + k) for f in range(5) for k in range(4)]
# Per-finger base colours, RGB: the reference's ``showHandJoints`` table, written into arrays that its training
# datasets (training/dataset.py, appearance_gen/src/dataset/hoivideodataset.py) feed to the models as RGB with no
# BGR->RGB swap, so the released models saw joint 0 as R=139, G=53, B=255; the reference's DexYCB sample agrees
# (60% of the lit pixels of val_hand_keypoints.mp4 have B > R+30). Index 5 is only reached by joint 20 (20 // 4).
FINGER_COLORS_RGB = np.array(
    [[139, 53, 255], [0, 56, 255], [43, 140, 237], [37, 168, 36], [147, 147, 0], [70, 17, 145]], dtype=np.int32)
COLOR_STEP = 35
JOINT_RADIUS = 3
THUMB_BONE_HALF_WIDTH = 6
BONE_HALF_WIDTH = 3
BONE_LENGTH_RANGE = (5.0, 150.0)  # bones outside (min, max) pixels are not drawn, as in the reference


def _shade(index: int) -> tuple[int, int, int]:
    """RGB colour of joint or bone ``index``: finger base colour (index // 4) + 35 * (index % 4), saturated."""
    rgb = np.clip(FINGER_COLORS_RGB[index // 4] + COLOR_STEP * (index % 4), 0, 255)
    return int(rgb[0]), int(rgb[1]), int(rgb[2])


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
    return _draw_skeleton(image, joints_2d, bones_reversed(joints_3d), joint_color, bone_color)


def _draw_skeleton(image: np.ndarray, joints_2d: np.ndarray, reverse: bool, joint_paint, bone_paint) -> np.ndarray:
    """Draw the discs, then the bones, into ``image`` in place; ``*_paint(index)`` gives each shape's colour."""
    pts = np.round(joints_2d).astype(np.int32)
    for j, (x, y) in enumerate(pts):
        cv2.circle(image, (int(x), int(y)), JOINT_RADIUS, joint_paint(j), thickness=-1)
    order = range(len(BONES) - 1, -1, -1) if reverse else range(len(BONES))
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
        cv2.fillConvexPoly(image, polygon, bone_paint(b))
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


# ------------------------------------------------------------------------------------------------- decoding
DECODE_COLOR_TOLERANCE = 40.0   # max RGB distance of a pixel to its nearest joint colour (mp4 chroma noise)
DECODE_MIN_PIXELS = 5           # a colour with fewer matched pixels is absent
DECODE_SEARCH = 2               # refinement: each joint tries every offset up to this many pixels, per sweep
DECODE_SWEEPS = 6


def label_colors(image: np.ndarray, tolerance: float = DECODE_COLOR_TOLERANCE) -> np.ndarray:
    """``(H, W)`` index of the nearest joint colour per pixel (-1: background or farther than ``tolerance``)."""
    palette = np.array([joint_color(j) for j in range(NUM_JOINTS)], np.float32)
    pixels = np.asarray(image).reshape(-1, 3).astype(np.float32)
    dist = np.linalg.norm(pixels[:, None, :] - palette[None], axis=-1)
    return np.where(dist.min(1) <= tolerance, dist.argmin(1), -1).reshape(np.asarray(image).shape[:2])


def _bone_ends(points: np.ndarray) -> np.ndarray | None:
    """Major-axis ends ``(2, 2)`` of a filled ellipse from its pixels (its variance along the axis is a^2 / 4)."""
    if len(points) < DECODE_MIN_PIXELS:
        return None
    mean = points.mean(0)
    values, vectors = np.linalg.eigh(np.cov(points.T))
    half = 2.0 * np.sqrt(max(values[-1], 0.0)) * vectors[:, -1]
    return np.stack([mean - half, mean + half])


def _split_tip(label: np.ndarray, color: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of colour ``color`` of a wrist bone that fingertip ``color`` shares (0 or a multiple of 4; 20 has no
    bone): (the largest connected piece: the bone, the other pieces: the tip's disc)."""
    count, parts, stats, _ = cv2.connectedComponentsWithStats((label == color).astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros((0, 2)), np.zeros((0, 2))
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    xy = lambda mask: np.argwhere(mask)[:, ::-1].astype(np.float64)  # noqa: E731
    return xy(parts == biggest), xy((parts != biggest) & (parts > 0))


def _initial_joints(label: np.ndarray) -> np.ndarray:
    """First guess from the bones: each bone's colour region is (mostly) its ellipse, whose axis ends are its two
    joints. The wrist is where the five wrist bones meet; each finger is then walked out from it."""
    pixels = [np.argwhere(label == c)[:, ::-1].astype(np.float64) for c in range(NUM_JOINTS)]
    guesses: list[list[np.ndarray]] = [[] for _ in range(NUM_JOINTS)]
    tips = {}
    for b in range(4, len(BONES), 4):
        pixels[b], tips[b] = _split_tip(label, b)
    tips[NUM_JOINTS - 1] = pixels[NUM_JOINTS - 1]
    ends = [_bone_ends(p) for p in pixels[:len(BONES)]]
    wrist_bones = [b for b in range(0, len(BONES), 4) if ends[b] is not None]
    if wrist_bones:   # one end per wrist bone, chosen so that the chosen ends agree best
        combos = np.array(np.meshgrid(*[[0, 1]] * len(wrist_bones), indexing="ij")).reshape(len(wrist_bones), -1).T
        spread = [np.var([ends[b][c] for b, c in zip(wrist_bones, combo)], axis=0).sum() for combo in combos]
        best = combos[int(np.argmin(spread))]
        for b, c in zip(wrist_bones, best):
            guesses[0].append(ends[b][c])
            guesses[BONES[b][1]].append(ends[b][1 - c])
    for b, (parent, child) in enumerate(BONES):
        if b % 4 == 0 or ends[b] is None:
            continue
        anchor = np.mean(guesses[parent], 0) if guesses[parent] else (pixels[parent].mean(0) if len(pixels[parent]) else None)
        near = 0 if anchor is None else int(np.argmin(np.linalg.norm(ends[b] - anchor, axis=1)))
        guesses[parent].append(ends[b][near])
        guesses[child].append(ends[b][1 - near])
    out = np.full((NUM_JOINTS, 2), -1.0)
    for j in range(NUM_JOINTS):
        if j in tips and len(tips[j]) >= DECODE_MIN_PIXELS:   # a visible fingertip disc beats the walked chain
            out[j] = tips[j].mean(0)
        elif guesses[j]:
            out[j] = np.mean(guesses[j], 0)
        elif len(pixels[j]) >= DECODE_MIN_PIXELS:
            out[j] = pixels[j].mean(0)
    return out


def decode_hand_keypoints(image: np.ndarray, tolerance: float = DECODE_COLOR_TOLERANCE,
                          joints_3d: np.ndarray | None = None) -> np.ndarray:
    """Recover the joints ``(21, 2)`` pixel (x, y) of one hand from a map drawn by ``draw_hand_keypoints``.

    Every pixel is matched to the nearest joint colour. The discs are mostly hidden under the bones drawn after
    them (thumb bones are 13 px wide), so the first guess comes from the bones' ellipses (``_initial_joints``);
    then, analysis by synthesis, each joint in turn moves to the integer position (within ``DECODE_SEARCH`` px)
    whose redrawn map disagrees with the observed colour labels on the fewest pixels, for a few sweeps. On a map
    drawn by ``draw_hand_keypoints`` this recovers the rounded joints. ``joints_3d`` gives the bone drawing
    order when known (else both orders are tried). A map without joint colours gives all -1 (missing); a joint
    whose colour is hidden everywhere keeps -1 and the refinement is skipped.

    Limits (measured on synthetic hands): exact on hands whose fingers do not cross in the image; where fingers
    overlap or bones are not drawn (shorter than 5 or longer than 150 px) the first guess can be far off and the
    local search does not recover it (errors of tens of pixels). About 0.2-0.5 s per frame.
    """
    label = label_colors(image, tolerance)
    joints = _initial_joints(label)
    if (joints == -1).all():
        return joints
    if (joints == -1).any():   # some joints absent (the map could not be drawn from a full hand): first guesses
        return joints
    h, w = label.shape
    ys, xs = np.nonzero(label >= 0)
    pad = 20
    y0, y1, x0, x1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, h), max(xs.min() - pad, 0), min(xs.max() + pad + 1, w)
    target = label[y0:y1, x0:x1]
    offset = np.array([x0, y0], np.float64)
    orders = [bones_reversed(joints_3d)] if joints_3d is not None else [False, True]
    target = target + 1   # label maps drawn with colour index + 1 (0: background), same shapes as the RGB map
    canvas = np.zeros(target.shape, np.uint8)

    def cost(points: np.ndarray, reverse: bool) -> int:
        canvas[:] = 0
        _draw_skeleton(canvas, points - offset, reverse, _label_paint, _label_paint)
        return int(np.count_nonzero(canvas != target))

    best_total, best_joints = None, None
    for order in orders:
        current = np.round(joints)
        current_cost = cost(current, order)
        for _ in range(DECODE_SWEEPS):
            moved = False
            for j in range(NUM_JOINTS):
                for dy in range(-DECODE_SEARCH, DECODE_SEARCH + 1):
                    for dx in range(-DECODE_SEARCH, DECODE_SEARCH + 1):
                        if dx == dy == 0:
                            continue
                        trial = current.copy()
                        trial[j] += (dx, dy)
                        c = cost(trial, order)
                        if c < current_cost:
                            current, current_cost, moved = trial, c, True
            if not moved:
                break
        if best_total is None or current_cost < best_total:
            best_total, best_joints = current_cost, current
    return best_joints


def _label_paint(index: int) -> int:
    """Label-map colour of joint or bone ``index``: bone ``b`` has joint ``b``'s colour in the RGB map."""
    return index + 1


def decode_hand_keypoints_video(frames: np.ndarray, tolerance: float = DECODE_COLOR_TOLERANCE) -> np.ndarray:
    """``decode_hand_keypoints`` per frame of a ``(T, H, W, 3)`` keypoint-map video -> ``(T, 21, 2)``."""
    return np.stack([decode_hand_keypoints(frame, tolerance) for frame in frames])
