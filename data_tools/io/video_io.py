"""Video and image I/O with explicit temporal and spatial resampling.

Frames are always ``uint8`` arrays in RGB order: a video is ``(T, H, W, 3)``, an image ``(H, W, 3)``.
Reading uses decord and falls back to PyAV; writing produces h264 mp4 through imageio-ffmpeg, atomically.
"""
from __future__ import annotations

import logging
import os
from typing import Literal, Sequence

import cv2
import numpy as np

from data_tools.io.atomic import atomic_path
from data_tools.errors import DataError, require_file

logger = logging.getLogger(__name__)

ResizeMode = Literal["crop", "resize", "pad"]
Interpolation = Literal["area", "linear", "nearest", "lanczos"]
RESIZE_MODES = ("crop", "resize", "pad")
_CV2_INTERP = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}
# lanczos goes through PIL (as diffusers' VaeImageProcessor resizes a PIL image), the others through OpenCV
INTERPOLATIONS = (*_CV2_INTERP, "lanczos")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def _read_decord(path: str) -> np.ndarray:
    import decord

    reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    n = len(reader)
    if n == 0:
        return np.zeros((0, 0, 0, 3), np.uint8)
    return reader.get_batch(list(range(n))).asnumpy()


def _read_pyav(path: str) -> np.ndarray:
    import av

    with av.open(path) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    if not frames:
        return np.zeros((0, 0, 0, 3), np.uint8)
    return np.stack(frames)


def read_video(
    path: str | os.PathLike,
    num_frames: int | None = None,
    size: tuple[int, int] | None = None,
    resize_mode: ResizeMode = "crop",
    interpolation: Interpolation = "area",
    time_sampling: str = "spread",
) -> np.ndarray:
    """Read a whole video as ``(T, H, W, 3)`` uint8 RGB, optionally resampled to ``num_frames`` (``time_sampling``:
    spread or first, see ``time_indices``) and ``size=(H, W)``.

    Raises DataError naming the file when it is missing, unreadable, has no frames or too few for ``first``.
    """
    path = require_file(path, "video")
    frames = None
    errors = []
    for reader in (_read_decord, _read_pyav):
        try:
            frames = reader(path)
            break
        except Exception as exc:  # decoder-specific exception types
            errors.append(f"{reader.__name__[6:]}: {exc}".strip())
    if frames is None:
        raise DataError(path, "cannot decode video (corrupt or unsupported): " + "; ".join(errors))
    if frames.shape[0] == 0:
        raise DataError(path, "video has zero frames")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise DataError(path, f"expected RGB frames, got array of shape {frames.shape}")
    if num_frames is not None:
        try:
            frames = resample_time(frames, num_frames, time_sampling)
        except DataError as exc:
            raise DataError(path, exc.problem) from None
    if size is not None:
        frames = resize_frames(frames, size, resize_mode, interpolation)
    return frames


def video_info(path: str | os.PathLike) -> dict:
    """Frame count, height, width and fps of a video (decord, PyAV fallback)."""
    path = require_file(path, "video")
    try:
        import decord

        reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
        h, w = reader[0].shape[:2]
        return {"num_frames": len(reader), "height": h, "width": w, "fps": float(reader.get_avg_fps())}
    except Exception:
        frames = read_video(path)
        return {"num_frames": len(frames), "height": frames.shape[1], "width": frames.shape[2], "fps": None}


def resample_indices(num_source: int, num_target: int) -> np.ndarray:
    """Indices of ``num_target`` frames spread uniformly in time over ``num_source`` frames (ends included)."""
    if num_source <= 0 or num_target <= 0:
        raise ValueError(f"frame counts must be positive, got {num_source} -> {num_target}")
    if num_target == 1:
        return np.zeros(1, dtype=np.int64)
    return np.round(np.linspace(0, num_source - 1, num_target)).astype(np.int64)


TIME_SAMPLINGS = ("spread", "first")


def time_indices(num_source: int, num_target: int, sampling: str = "spread") -> np.ndarray:
    """Indices of the ``num_target`` frames taken from ``num_source``: ``spread`` uniformly over the whole clip
    (``resample_indices``), or the ``first`` ones, consecutive (as the released motion model was trained and
    evaluated: training/dataset.py, testing/evaluation_sim.py); ``first`` needs enough frames."""
    if sampling == "spread":
        return resample_indices(num_source, num_target)
    if sampling != "first":
        raise DataError(None, f"time sampling must be one of {TIME_SAMPLINGS}, got {sampling!r}")
    if num_source < num_target:
        raise DataError(None, f"has {num_source} frames; time sampling 'first' needs at least {num_target}")
    return np.arange(num_target, dtype=np.int64)


def resample_time(frames: np.ndarray, num_frames: int, sampling: str = "spread") -> np.ndarray:
    """Pick ``num_frames`` frames: uniformly in time (repeats frames when upsampling) or the first ones."""
    return frames[time_indices(len(frames), num_frames, sampling)]


def _resize_one(img: np.ndarray, h: int, w: int, interpolation: Interpolation) -> np.ndarray:
    if img.shape[:2] == (h, w):
        return img
    if interpolation == "lanczos":
        from PIL import Image

        return np.asarray(Image.fromarray(img).resize((w, h), resample=Image.LANCZOS))
    interp = _CV2_INTERP[interpolation]
    if interpolation == "area" and (h > img.shape[0] or w > img.shape[1]):
        interp = cv2.INTER_LINEAR  # INTER_AREA is meant for shrinking
    out = cv2.resize(img, (w, h), interpolation=interp)
    return out.reshape(h, w, *img.shape[2:])


def resize_frames(
    frames: np.ndarray,
    size: tuple[int, int],
    mode: ResizeMode = "crop",
    interpolation: Interpolation = "area",
) -> np.ndarray:
    """Resize ``(T, H, W, C)`` (or one ``(H, W, C)`` image) to ``size=(H, W)``.

    ``crop``: scale to cover the target, then centre-crop (keeps aspect, loses borders);
    ``resize``: plain resize (distorts aspect); ``pad``: scale to fit, then centre on black.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; expected one of {RESIZE_MODES}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {interpolation!r}; expected one of {INTERPOLATIONS}")
    single = frames.ndim == 3
    video = frames[None] if single else frames
    th, tw = int(size[0]), int(size[1])
    sh, sw = video.shape[1:3]
    if (sh, sw) == (th, tw):
        return frames
    if mode == "resize":
        out = np.stack([_resize_one(f, th, tw, interpolation) for f in video])
    else:
        scale = max(th / sh, tw / sw) if mode == "crop" else min(th / sh, tw / sw)
        rh, rw = max(1, round(sh * scale)), max(1, round(sw * scale))
        if mode == "crop":
            rh, rw = max(rh, th), max(rw, tw)
        else:
            rh, rw = min(rh, th), min(rw, tw)
        scaled = np.stack([_resize_one(f, rh, rw, interpolation) for f in video])
        if mode == "crop":
            y0, x0 = (rh - th) // 2, (rw - tw) // 2
            out = scaled[:, y0 : y0 + th, x0 : x0 + tw]
        else:
            out = np.zeros((len(video), th, tw) + video.shape[3:], dtype=video.dtype)
            y0, x0 = (th - rh) // 2, (tw - rw) // 2
            out[:, y0 : y0 + rh, x0 : x0 + rw] = scaled
    out = np.ascontiguousarray(out)
    return out[0] if single else out


def _check_frames(frames: np.ndarray, path: str) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim == 3:  # grey video (T, H, W)
        frames = np.repeat(frames[..., None], 3, axis=-1)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise DataError(path, f"cannot write video: expected (T, H, W, 3) frames, got shape {frames.shape}")
    if len(frames) == 0:
        raise DataError(path, "cannot write a video with zero frames")
    if frames.dtype != np.uint8:
        raise DataError(path, f"cannot write video: expected uint8 frames, got {frames.dtype}")
    return frames


def write_video(path: str | os.PathLike, frames: np.ndarray | Sequence[np.ndarray], fps: float = 15, quality: int = 8) -> str:
    """Write ``(T, H, W, 3)`` uint8 RGB frames as an h264 mp4, atomically (no partial file on failure)."""
    import imageio.v2 as imageio

    path = os.fspath(path)
    frames = _check_frames(np.asarray(frames), path)
    with atomic_path(path) as tmp:
        writer = imageio.get_writer(
            tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=quality,
            pixelformat="yuv420p", macro_block_size=1, ffmpeg_log_level="error",
        )
        try:
            for frame in frames:
                writer.append_data(frame)
        finally:
            writer.close()
    return path


def read_image(path: str | os.PathLike, size: tuple[int, int] | None = None, resize_mode: ResizeMode = "crop",
               interpolation: Interpolation = "area", grayscale: bool = False) -> np.ndarray:
    """Read an image as ``(H, W, 3)`` uint8 RGB (or ``(H, W)`` raw values with ``grayscale=True``, e.g. 16-bit depth)."""
    path = require_file(path, "image")
    flag = cv2.IMREAD_UNCHANGED if grayscale else cv2.IMREAD_COLOR
    img = cv2.imread(path, flag)
    if img is None:
        raise DataError(path, "cannot decode image (corrupt or unsupported format)")
    if grayscale:
        if img.ndim == 3:
            raise DataError(path, f"expected a single-channel image, got {img.shape[2]} channels")
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if size is not None:
        img = resize_frames(img if img.ndim == 3 else img[..., None], size, resize_mode, interpolation)
        img = img if not grayscale else img[..., 0]
    return img


_PNG_LAYOUTS = {0: "grey", 2: "RGB", 3: "palette", 4: "grey+alpha", 6: "RGBA"}  # PNG colour types


def map_image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(H, W)`` of a PNG condition-map frame from its header alone (bytes 16-25), refusing what
    ``read_map_image`` refuses: a cheap check of a whole sim folder before any model loads."""
    path = require_file(path, "image")
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise DataError(path, "cannot decode image (not a PNG file, or truncated)")
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    depth, colour = head[24], head[25]
    layout = _PNG_LAYOUTS.get(colour, f"PNG colour type {colour}")
    if colour not in (0, 2, 3):
        raise DataError(path, f"condition maps are RGB or grey images, got {layout}")
    if depth != 8 and colour != 3:
        raise DataError(path, f"condition maps are 8-bit images, got {depth}-bit {layout}")
    return height, width


def read_map_image(path: str | os.PathLike) -> np.ndarray:
    """Read one frame of a condition map as ``(H, W, 3)`` uint8 RGB: 8-bit RGB, or 8-bit grey (copied to three
    channels). Grey+alpha, RGBA, 16-bit and other layouts are refused, naming the file (a silent conversion would
    feed the model something it never saw)."""
    path = require_file(path, "image")
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(path, "cannot decode image (corrupt or unsupported format)")
    channels = 1 if img.ndim == 2 else img.shape[2]
    if img.dtype != np.uint8:
        raise DataError(path, f"condition maps are 8-bit images, got {img.dtype} ({channels} channels)")
    if channels == 1:
        return np.repeat(img.reshape(*img.shape[:2], 1), 3, axis=2)
    if channels != 3:
        layout = {2: "grey+alpha", 4: "RGBA"}.get(channels, f"{channels} channels")
        raise DataError(path, f"condition maps are RGB or grey images, got {layout}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def write_image(path: str | os.PathLike, image: np.ndarray) -> str:
    """Write an RGB uint8 image (or a single-channel uint8/uint16 image) atomically; format from the suffix."""
    path = os.fspath(path)
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.ndim != 2:
        raise DataError(path, f"cannot write image of shape {image.shape}: expected (H, W, 3) or (H, W)")
    with atomic_path(path) as tmp:
        if not cv2.imwrite(tmp, image):
            raise DataError(path, "image encoder failed")
    return path
