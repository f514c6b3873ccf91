"""Depth and surface-normal condition maps (3-channel uint8 RGB)."""
from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

DepthColormap = Literal["gray", "inferno", "turbo"]
# The reference's real depth conditions (the DexYCB sample, DepthCrafter output) look like inferno; simulated
# and converted depth default to grey. Pick one scheme for real and simulated data that train one model.
DEPTH_COLORMAPS = ("gray", "inferno", "turbo")


def colorize_depth(depth_map: np.ndarray, colormap: DepthColormap = "gray") -> np.ndarray:
    """Grey depth condition ``(..., H, W, 3)`` -> an OpenCV colour map of its grey level; black stays black."""
    if colormap not in DEPTH_COLORMAPS:
        raise ValueError(f"unknown depth colormap {colormap!r}; expected one of {DEPTH_COLORMAPS}")
    if colormap == "gray":
        return depth_map
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], getattr(cv2, f"COLORMAP_{colormap.upper()}"))
    lut = cv2.cvtColor(lut, cv2.COLOR_BGR2RGB)[:, 0]
    lut[0] = 0  # background (and invalid depth) stays black
    return lut[np.asarray(depth_map)[..., 0]]


def normalize_depth(
    depth: np.ndarray,
    mask: np.ndarray | None = None,
    near_is_bright: bool = True,
    colormap: DepthColormap = "gray",
    invalid_value: float = 0.0,
) -> np.ndarray:
    """Turn metric or relative depth ``(..., H, W)`` into a 3-channel uint8 map ``(..., H, W, 3)``.

    Values are min-max normalised over the valid foreground pixels of the whole clip (so the scale is
    stable in time); pixels outside ``mask`` (the seg mask's foreground) or equal to ``invalid_value``
    are black. ``near_is_bright`` matches disparity-like outputs such as DepthCrafter's.
    """
    depth = np.asarray(depth)
    valid = np.isfinite(depth) & (depth != invalid_value)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != depth.shape:
            raise ValueError(f"mask shape {mask.shape} does not match depth shape {depth.shape}")
        valid &= mask
    grey = np.zeros(depth.shape, dtype=np.uint8)
    if valid.any():
        values = depth[valid].astype(np.float64)  # only the foreground is normalised
        lo, hi = values.min(), values.max()
        scaled = (values - lo) / (hi - lo) if hi > lo else np.ones_like(values)
        if near_is_bright and hi > lo:
            scaled = 1.0 - scaled
        # valid pixels span [1, 255] so that the nearest/farthest never collapses onto the black background
        grey[valid] = np.round(1.0 + 254.0 * np.clip(scaled, 0, 1)).astype(np.uint8)
    return colorize_depth(np.repeat(grey[..., None], 3, axis=-1), colormap)


def foreground_from_seg(seg_rgb: np.ndarray, threshold: int = 10) -> np.ndarray:
    """Foreground mask of a coloured seg mask: any pixel that is not (near) black."""
    return np.asarray(seg_rgb).max(axis=-1) > threshold


def normals_to_rgb(normals: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Unit normals ``(..., 3)`` in [-1, 1] -> uint8 RGB ``(n + 1) / 2 * 255``; pixels outside ``mask`` black."""
    normals = np.asarray(normals, dtype=np.float32)
    norm = np.linalg.norm(normals, axis=-1, keepdims=True)
    unit = np.divide(normals, norm, out=np.zeros_like(normals), where=norm > 0)
    unit += 1.0
    unit *= 127.5
    rgb = np.round(unit, out=unit).clip(0, 255).astype(np.uint8)
    if mask is not None:
        rgb[~np.asarray(mask, dtype=bool)] = 0
    return rgb


def rgb_to_normals(rgb: np.ndarray) -> np.ndarray:
    """Inverse of ``normals_to_rgb`` (up to quantisation): uint8 RGB -> normals in [-1, 1]."""
    return np.asarray(rgb, dtype=np.float64) / 127.5 - 1.0
