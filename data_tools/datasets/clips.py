"""Pieces every converter shares when it writes one clip: the output size policy, the depth colour map and
external depth import."""
from __future__ import annotations

import glob
import os
from typing import Mapping, Sequence

import numpy as np

from data_tools.maps.bundle import CONDITION_INTERPOLATION
from data_tools.errors import DataError
from data_tools.maps.geometry_maps import colorize_depth, normalize_depth
from data_tools.io.video_io import read_video, resample_time, resize_frames, write_video


def write_clip_maps(folder: str, maps: Mapping[str, np.ndarray], fps: float, size: Sequence[int] | None = None,
                    resize_mode: str = "crop", depth_colormap: str = "gray") -> tuple[int, int]:
    """Write ``{name}.mp4`` per map (``video`` and conditions, ``(T, H, W, 3)`` uint8), resized to ``size``
    when given (label maps with nearest interpolation), the grey ``depth`` colour-mapped with
    ``depth_colormap``. Returns the written ``(H, W)``."""
    for name, frames in maps.items():
        if name == "depth":
            frames = colorize_depth(frames, depth_colormap)
        if size:
            frames = resize_frames(frames, tuple(size), resize_mode, CONDITION_INTERPOLATION.get(name, "area"))
        write_video(os.path.join(folder, f"{name}.mp4"), frames, fps=fps)
    return tuple(frames.shape[1:3])


def find_external_depth(depth_dir: str, key: str) -> str | None:
    """External depth of clip ``key``: ``<dir>/<key>.npz``, one ``<dir>/<key>/*.npz``, ``<dir>/<key>.mp4``,
    ``<dir>/<key>/depth.mp4`` or ``<dir>/<key>/color.mp4`` (first found)."""
    base = os.path.join(depth_dir, key)
    candidates = [base + ".npz", *sorted(glob.glob(os.path.join(glob.escape(base), "*.npz")))[:1],
                  base + ".mp4", os.path.join(base, "depth.mp4"), os.path.join(base, "color.mp4")]
    return next((c for c in candidates if os.path.isfile(c)), None)


def load_external_depth(path: str) -> np.ndarray:
    """Float depth ``(T, H, W)`` from a DepthCrafter-style ``.npz`` (key ``depth``) or a grey mp4."""
    if path.endswith(".npz"):
        try:
            with np.load(path) as data:
                if "depth" not in data.files:
                    raise DataError(path, f"npz has no 'depth' array (keys: {data.files})")
                depth = np.asarray(data["depth"], dtype=np.float32)
        except (OSError, ValueError) as exc:
            raise DataError(path, f"cannot read depth npz ({exc})") from None
        if depth.ndim == 4 and depth.shape[-1] in (1, 3):
            depth = depth.mean(-1)
        if depth.ndim != 3:
            raise DataError(path, f"'depth' must be (T, H, W), got shape {depth.shape}")
        return depth
    return read_video(path).astype(np.float32).mean(-1)


def external_depth_map(depth_dir: str, key: str, indices: Sequence[int], num_source: int, foreground: np.ndarray,
                       kind: str = "disparity") -> np.ndarray:
    """Depth condition ``(T, H, W, 3)`` of clip ``key`` from an external video-depth folder.

    The external clip is indexed like the source frames (``indices`` of ``num_source``) when it has
    ``num_source`` frames, else resampled to ``len(indices)``; it is resized to the foreground mask's size,
    masked with it and normalised over the clip. ``kind``: "disparity" (large = near, DepthCrafter) or "depth".
    """
    path = find_external_depth(depth_dir, key)
    if path is None:
        raise DataError(os.path.join(depth_dir, key), "no external depth (.npz or .mp4) for this clip")
    depth = load_external_depth(path)
    depth = depth[np.asarray(indices)] if len(depth) == num_source else resample_time(depth, len(indices))
    depth = resize_frames(depth[..., None], foreground.shape[1:3], "resize", "linear")[..., 0]
    return normalize_depth(depth, foreground, near_is_bright=kind == "depth")
