"""Condition maps the appearance stage can derive when a dataset lacks them.

Converted real datasets (e.g. DexYCB) carry relative depth but no normal video, while the physical branch reads
depth + normal. ``normals_from_depth`` estimates camera-space normals from the relative depth map (image
gradients of the smoothed depth), encoded like the renderer's OpenGL-convention normal maps (x right, y up,
z towards the camera; ``data_tools.maps.geometry_maps.normals_to_rgb``). They are an approximation: a model trained on
them sees smoother, scale-free normals than rendered ones.
"""
from __future__ import annotations

import logging
import os

import cv2
import numpy as np

from data_tools.maps.bundle import ConditionBundle
from data_tools.errors import DataError
from data_tools.maps.geometry_maps import normals_to_rgb
from data_tools.datasets.hoi_dataset import split_dir

logger = logging.getLogger(__name__)
NORMAL_SOURCES = ("auto", "file", "depth")


def normals_from_depth(depth_rgb: np.ndarray, strength: float = 1.0, blur: float = 1.5) -> np.ndarray:
    """Relative depth map(s) ``(..., H, W, 3)`` uint8 (near bright, 0 = no depth) -> normal map(s), same shape.

    ``strength`` scales the slopes (a depth change equal to the image width tilts a surface by 45 degrees);
    pixels without depth stay black.
    """
    frames = depth_rgb.reshape(-1, *depth_rgb.shape[-3:])
    out = np.empty_like(frames)
    for i, frame in enumerate(frames):
        gray = frame.astype(np.float32).mean(axis=-1) / 255.0
        valid = gray > 0
        distance = np.where(valid, 1.0 - gray, 0.0)
        if blur > 0:
            distance = cv2.GaussianBlur(distance, (0, 0), blur)
        d_dv, d_du = np.gradient(distance)
        scale = strength * frame.shape[1]
        normals = np.stack([scale * d_du, -scale * d_dv, np.ones_like(distance)], axis=-1)
        out[i] = normals_to_rgb(normals, mask=valid)
    return out.reshape(depth_rgb.shape)


def with_normals_from_depth(bundle: ConditionBundle) -> ConditionBundle:
    """The bundle with a ``normal`` condition computed from its ``depth``."""
    conditions = dict(bundle.conditions, normal=normals_from_depth(bundle.conditions["depth"]))
    return ConditionBundle(conditions, prompt=bundle.prompt, first_frame=bundle.first_frame, video=bundle.video,
                           name=bundle.name, extras=bundle.extras)


def split_conditions(root: str, split: str, names: list[str], source: str) -> tuple[list[str], bool]:
    """The conditions to read from a split and whether ``normal`` is then estimated from ``depth``."""
    if not derive_normals(root, split, names, source):
        return list(names), False
    return list(dict.fromkeys([n for n in names if n != "normal"] + ["depth"])), True


def derive_normals(root: str, split: str, names: list[str], source: str) -> bool:
    """Whether a split must get its normals from depth: ``source`` "depth" always, "file" never, "auto" when
    the split has no ``normal`` filelist (logged)."""
    if source not in NORMAL_SOURCES:
        raise DataError(None, f"data.normal_source must be one of {NORMAL_SOURCES}, got {source!r}")
    if "normal" not in names or source == "file":
        return False
    if source == "depth":
        return True
    missing = not os.path.isfile(os.path.join(split_dir(root, split), "normal.txt"))
    if missing:
        logger.warning("split '%s' of %s has no normal filelist: estimating normals from depth "
                       "(data.normal_source=file to refuse)", split, root)
    return missing
