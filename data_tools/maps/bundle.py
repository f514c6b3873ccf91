"""ConditionBundle: the one type that carries a sample between stages.

A bundle holds named condition videos at a common ``(T, H, W)``, an optional first frame, an optional
ground-truth video and a prompt. It is built from a folder of mp4s (dataset side) or from a sim folder
of per-frame PNGs (simulation side), and written back to either layout.
"""
from __future__ import annotations

import dataclasses
import glob
import os
import re
from typing import Iterable

import numpy as np

from data_tools.io.atomic import write_text
from data_tools.errors import DataError
from data_tools.io.video_io import (IMAGE_SUFFIXES, VIDEO_SUFFIXES, ResizeMode, map_image_size, read_image, read_map_image, read_video, resample_time, resize_frames, time_indices, video_info,
                                 write_image, write_video)

CONDITION_NAMES = ("hand_keypoints", "depth", "seg_mask", "normal", "tracking")
# Label-like maps keep exact colours (nearest); smooth maps are area-averaged.
CONDITION_INTERPOLATION = {"hand_keypoints": "nearest", "seg_mask": "nearest", "depth": "area",
                           "normal": "area", "tracking": "area", "rgb": "area"}
# Other file stems accepted for a condition in video folders: the reference's OakInk2 sample names its keypoint
# video ``val_hand.mp4``.
CONDITION_ALIASES = {"hand_keypoints": ("hand",)}
SIM_MAP_NAMES = ("rgb", "normal", "depth", "seg_mask", "hand_keypoints", "tracking")
SIM_FILE_RE = re.compile(r"^rendered_(?P<name>[a-z_]+)_(?P<index>\d+)\.png$")


def check_condition_names(names: Iterable[str], allowed: Iterable[str] = CONDITION_NAMES) -> list[str]:
    """Return ``names`` as a list, raising DataError on any name that is not a known condition."""
    names, allowed = list(names), tuple(allowed)
    for name in names:
        if name not in allowed:
            raise DataError(None, f"unknown condition name {name!r}; known conditions: {', '.join(allowed)}")
    return names


def _find_video(folder: str, stem: str) -> str | None:
    """``{stem}.mp4`` in ``folder``, or the single file ending in ``_{stem}.<video suffix>``; then the same for
    each of the stem's ``CONDITION_ALIASES``."""
    for name in (stem, *CONDITION_ALIASES.get(stem, ())):
        exact = os.path.join(folder, f"{name}.mp4")
        if os.path.isfile(exact):
            return exact
        hits = sorted(p for p in glob.glob(os.path.join(glob.escape(folder), f"*_{name}.*"))
                      if p.lower().endswith(VIDEO_SUFFIXES))
        if len(hits) > 1:
            raise DataError(folder, f"several files match condition '{stem}': {[os.path.basename(h) for h in hits]}")
        if hits:
            return hits[0]
    return None


def read_prompt(folder: str) -> str:
    """The stripped text of ``folder/prompt.txt`` ("" when absent); a non-UTF-8 file is refused, naming it."""
    path = os.path.join(folder, "prompt.txt")
    if not os.path.isfile(path):
        return ""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except UnicodeDecodeError as exc:
        raise DataError(path, f"prompt is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def check_sim_folder(folder: str | os.PathLike) -> tuple[tuple[int, int], dict[str, int]]:
    """Check every ``rendered_{map}_{i}.png`` header of a sim folder (8-bit RGB or grey, one size for all) without
    decoding a pixel; returns the common ``(H, W)`` and the frame count of each map. Cheap enough to run on every
    input before any model loads."""
    folder = os.fspath(folder)
    first: tuple[str, tuple[int, int]] | None = None
    counts: dict[str, int] = {}
    for entry in sorted(os.listdir(folder)):
        match = SIM_FILE_RE.match(entry)
        if not (match and match["name"] in SIM_MAP_NAMES):
            continue
        counts[match["name"]] = counts.get(match["name"], 0) + 1
        path = os.path.join(folder, entry)
        size = map_image_size(path)
        if first is None:
            first = (entry, size)
        elif size != first[1]:
            raise DataError(path, f"is {size[0]}x{size[1]} but {first[0]} is {first[1][0]}x{first[1][1]}: "
                                  "the frames of a sim folder must share one size")
    if first is None:
        raise DataError(folder, "no rendered_{map}_{i}.png frames found")
    return first[1], counts


def _looked_for(stem: str) -> str:
    return " or ".join(f"{n}.mp4 or *_{n}.mp4" for n in (stem, *CONDITION_ALIASES.get(stem, ())))


def condition_videos(folder: str | os.PathLike, names: Iterable[str] | None = None) -> dict[str, str]:
    """``{condition: video path}`` of a video folder (files only, nothing is read): every one of ``names``
    (DataError naming all that are missing), or the known conditions present when ``names`` is None."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise DataError(folder, "condition folder does not exist")
    wanted = check_condition_names(names) if names is not None else list(CONDITION_NAMES)
    found = {cond: _find_video(folder, cond) for cond in wanted}
    missing = [cond for cond, path in found.items() if path is None]
    if missing and names is not None:
        raise DataError(folder, "no video for " + "; ".join(f"condition '{c}' (looked for {_looked_for(c)})"
                                                            for c in missing))
    return {cond: path for cond, path in found.items() if path is not None}


def _find_image(folder: str, stems: Iterable[str]) -> str | None:
    for stem in stems:
        for suffix in IMAGE_SUFFIXES:
            hits = sorted(glob.glob(os.path.join(glob.escape(folder), f"{stem}{suffix}")) +
                          glob.glob(os.path.join(glob.escape(folder), f"*_{stem}{suffix}")))
            if hits:
                return hits[0]
    return None


@dataclasses.dataclass
class ConditionBundle:
    """One sample: named condition videos ``(T, H, W, 3)`` uint8 RGB at a common size, plus optional extras."""

    conditions: dict[str, np.ndarray]
    prompt: str = ""
    first_frame: np.ndarray | None = None
    video: np.ndarray | None = None
    name: str = "sample"
    extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.validate()

    # ----------------------------------------------------------------- shape
    @property
    def shape(self) -> tuple[int, int, int]:
        """Common ``(T, H, W)`` of the bundle's videos (conditions, else the ground-truth video, else extras)."""
        videos = [*self.conditions.values(), self.video, *self.extras.values()]
        first = next((v for v in videos if v is not None), None)
        if first is None:
            raise DataError(None, f"bundle '{self.name}' has no videos, so it has no (T, H, W)")
        return tuple(first.shape[:3])

    @property
    def num_frames(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> tuple[int, int]:
        return self.shape[1], self.shape[2]

    def validate(self) -> None:
        """Check names, dtypes, channel counts and that all videos share ``(T, H, W)``."""
        check_condition_names(self.conditions)
        reference = None
        for key, arr in list(self.conditions.items()) + [("video", self.video)] + list(self.extras.items()):
            if arr is None:
                continue
            if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
                raise DataError(None, f"bundle '{self.name}': '{key}' must be (T, H, W, 3) uint8, got "
                                      f"{arr.shape} {arr.dtype}")
            if reference is None:
                reference = (key, arr.shape[:3])
            elif arr.shape[:3] != reference[1]:
                raise DataError(None, f"bundle '{self.name}': '{key}' has (T, H, W) {arr.shape[:3]} but "
                                      f"'{reference[0]}' has {reference[1]}")
        if self.first_frame is not None:
            ff = self.first_frame
            if ff.ndim != 3 or ff.shape[-1] != 3 or ff.dtype != np.uint8:
                raise DataError(None, f"bundle '{self.name}': first frame must be (H, W, 3) uint8, got {ff.shape}")
            if reference is not None and ff.shape[:2] != reference[1][1:]:
                raise DataError(None, f"bundle '{self.name}': first frame is {ff.shape[:2]} but videos are "
                                      f"{reference[1][1:]}")

    # ------------------------------------------------------------ transforms
    def resampled(self, num_frames: int | None = None, size: tuple[int, int] | None = None,
                  resize_mode: ResizeMode = "crop") -> "ConditionBundle":
        """A new bundle with every video resampled to ``num_frames`` and ``size`` (label maps use nearest)."""
        def fix(key, arr):
            if arr is None:
                return None
            if num_frames is not None:
                arr = resample_time(arr, num_frames)
            if size is not None:
                arr = resize_frames(arr, size, resize_mode, CONDITION_INTERPOLATION.get(key, "area"))
            return arr

        first = self.first_frame
        if first is not None and size is not None:
            first = resize_frames(first, size, resize_mode, "area")
        return ConditionBundle(
            conditions={k: fix(k, v) for k, v in self.conditions.items()}, prompt=self.prompt,
            first_frame=first, video=fix("video", self.video), name=self.name,
            extras={k: fix(k, v) for k, v in self.extras.items()})

    def select(self, names: Iterable[str]) -> "ConditionBundle":
        """A bundle with only the named conditions (DataError when one is missing)."""
        names = check_condition_names(names)
        missing = [n for n in names if n not in self.conditions]
        if missing:
            raise DataError(None, f"bundle '{self.name}' lacks conditions {missing}; it has {list(self.conditions)}")
        return dataclasses.replace(self, conditions={n: self.conditions[n] for n in names})

    # ------------------------------------------------------------ video folder
    @classmethod
    def from_video_folder(cls, folder: str | os.PathLike, names: Iterable[str] | None = None,
                          num_frames: int | None = None, size: tuple[int, int] | None = None,
                          resize_mode: ResizeMode = "crop", prompt: str | None = None,
                          name: str | None = None, require_video: bool = False,
                          time_sampling: str = "spread") -> "ConditionBundle":
        """Load ``{name}.mp4`` (or ``*_{name}.mp4``; ``CONDITION_ALIASES`` also, e.g. the reference's
        ``val_hand.mp4`` for hand_keypoints) per condition, plus ``video``/``image`` when present
        (``require_video``: a missing ground-truth video is an error).

        Without ``num_frames``/``size`` every video must already share ``(T, H, W)``; with them each input is
        resampled explicitly (real inputs differ, e.g. the DexYCB sample's 49x480x720 vs 72x480x640 videos).
        The prompt comes from ``prompt``, else ``prompt.txt`` in the folder, else "".
        """
        folder = os.fspath(folder)
        paths = condition_videos(folder, names)
        if num_frames not in (None, 1) and time_sampling == "spread" and len(paths) > 1:
            # stretching videos of different lengths to one length would put different moments side by side
            counts = {cond: video_info(path)["num_frames"] for cond, path in paths.items()}
            if len(set(counts.values())) > 1:
                raise DataError(folder, f"condition videos differ in frame count {counts}: spreading them over "
                                        f"{num_frames} frames would misalign them in time; give videos of one "
                                        "length, or take the first frames of each (time_sampling first)")
        conditions = {cond: read_video(path, num_frames, size, resize_mode, CONDITION_INTERPOLATION[cond],
                                       time_sampling) for cond, path in paths.items()}
        if not conditions:
            raise DataError(folder, f"no condition videos found (expected files named after {CONDITION_NAMES})")
        video_path = _find_video(folder, "video")
        if require_video and video_path is None:
            raise DataError(folder, "no ground-truth video (video.mp4 or *_video.mp4)")
        video = read_video(video_path, num_frames, size, resize_mode, time_sampling=time_sampling) \
            if video_path else None
        image_path = _find_image(folder, ("first_frame", "image"))
        first = read_image(image_path, size, resize_mode) if image_path else None
        if prompt is None:
            prompt = read_prompt(folder)
        bundle_name = name or os.path.basename(os.path.normpath(folder))
        try:
            return cls(conditions, prompt=prompt, first_frame=first, video=video, name=bundle_name)
        except DataError as exc:
            raise DataError(folder, f"{exc.problem} (pass num_frames/size to resample inputs of different sizes)") from None

    def save_video_folder(self, folder: str | os.PathLike, fps: float = 15) -> dict[str, str]:
        """Write ``{name}.mp4`` per condition (and ``video.mp4``, ``first_frame.png``, ``prompt.txt``)."""
        folder = os.fspath(folder)
        os.makedirs(folder, exist_ok=True)
        written = {}
        for key, arr in list(self.conditions.items()) + [("video", self.video)]:
            if arr is not None:
                written[key] = write_video(os.path.join(folder, f"{key}.mp4"), arr, fps=fps)
        if self.first_frame is not None:
            written["first_frame"] = write_image(os.path.join(folder, "first_frame.png"), self.first_frame)
        write_text(os.path.join(folder, "prompt.txt"), self.prompt + "\n")
        return written

    # -------------------------------------------------------------- sim folder
    @classmethod
    def from_sim_folder(cls, folder: str | os.PathLike, names: Iterable[str] | None = None,
                        num_frames: int | None = None, size: tuple[int, int] | None = None,
                        resize_mode: ResizeMode = "crop", prompt: str | None = None,
                        name: str | None = None, time_sampling: str = "spread") -> "ConditionBundle":
        """Load a sim folder of ``rendered_{map}_{i}.png`` frames (maps: rgb, normal, depth, seg_mask,
        hand_keypoints, tracking). Frame indices must be contiguous from 0 and equal across maps. The shaded
        ``rgb`` render goes to ``extras['rgb']``.
        """
        folder = os.fspath(folder)
        if not os.path.isdir(folder):
            raise DataError(folder, "sim folder does not exist")
        frames: dict[str, dict[int, str]] = {}
        for entry in os.listdir(folder):
            match = SIM_FILE_RE.match(entry)
            if match and match["name"] in SIM_MAP_NAMES:
                frames.setdefault(match["name"], {})[int(match["index"])] = os.path.join(folder, entry)
        wanted = check_condition_names(names) if names is not None else [n for n in CONDITION_NAMES if n in frames]
        if not wanted:
            raise DataError(folder, "no rendered_{map}_{i}.png frames found")
        counts = {}
        for key in list(wanted) + (["rgb"] if "rgb" in frames else []):
            if key not in frames:
                raise DataError(folder, f"no rendered_{key}_{{i}}.png frames for condition '{key}'")
            indices = sorted(frames[key])
            if indices != list(range(len(indices))):
                gap = next(i for i, j in enumerate(indices) if i != j)
                raise DataError(folder, f"rendered_{key}_*.png frames are not contiguous from 0 (missing index {gap})")
            counts[key] = len(indices)
        if len(set(counts.values())) > 1:
            raise DataError(folder, f"maps have different frame counts: {counts}")

        check_sim_folder(folder)  # headers: 8-bit RGB or grey, one size for every frame

        def load(key):
            try:  # only the frames that are kept are decoded
                indices = (time_indices(counts[key], num_frames, time_sampling) if num_frames is not None
                           else np.arange(counts[key]))
            except DataError as exc:
                raise DataError(folder, f"rendered_{key}_*.png {exc.problem}") from None
            decoded = {i: read_map_image(frames[key][i]) for i in sorted(set(indices.tolist()))}
            video = np.stack([decoded[i] for i in indices.tolist()])
            if size is not None:
                video = resize_frames(video, size, resize_mode, CONDITION_INTERPOLATION.get(key, "area"))
            return video

        conditions = {key: load(key) for key in wanted}
        extras = {"rgb": load("rgb")} if "rgb" in frames else {}
        if prompt is None:
            prompt = read_prompt(folder)
        try:
            return cls(conditions, prompt=prompt, name=name or os.path.basename(os.path.normpath(folder)),
                       extras=extras)
        except DataError as exc:
            raise DataError(folder, exc.problem) from None

    def save_sim_folder(self, folder: str | os.PathLike) -> None:
        """Write every condition (and ``extras['rgb']``) as ``rendered_{map}_{i}.png`` frames and ``prompt.txt``."""
        folder = os.fspath(folder)
        os.makedirs(folder, exist_ok=True)
        for key, video in list(self.conditions.items()) + list(self.extras.items()):
            for i, frame in enumerate(video):
                write_image(os.path.join(folder, f"rendered_{key}_{i}.png"), frame)
        write_text(os.path.join(folder, "prompt.txt"), self.prompt + "\n")


def to_model_range(frames: np.ndarray):
    """uint8 ``(..., H, W, 3)`` -> float32 torch tensor ``(..., 3, H, W)`` in [-1, 1]."""
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(frames)).float().div_(127.5).sub_(1.0)
    return tensor.movedim(-1, -3)


def from_model_range(tensor) -> np.ndarray:
    """Float tensor ``(..., 3, H, W)`` in [-1, 1] -> uint8 numpy ``(..., H, W, 3)``."""
    arr = tensor.detach().float().clamp(-1, 1).add(1).mul(127.5).round().movedim(-3, -1)
    return arr.to("cpu").numpy().astype(np.uint8)
