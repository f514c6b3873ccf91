"""Processed HOI datasets on disk: per-clip folders, per-split column filelists, and a torch Dataset over them.

Layout of a dataset root::

    <root>/<clip>/video.mp4, hand_keypoints.mp4, depth.mp4, seg_mask.mp4 [, normal.mp4], descriptions.json
    <root>/filelists/<split>/{video,hand_keypoints,depth,seg_mask[,normal],prompt}.txt   (paths relative to root)
    <root>/prompts.jsonl                                                               ({"video", "prompt"} per clip)
"""
from __future__ import annotations

import json
import os
from typing import Iterable, Mapping, Sequence

import numpy as np

from torch.utils.data import Dataset

from data_tools.maps.bundle import CONDITION_INTERPOLATION, CONDITION_NAMES, ConditionBundle, check_condition_names
from data_tools.errors import DataError
from data_tools.io.atomic import write_json
from data_tools.io.filelists import read_columns, read_filelist, write_filelist, write_prompts_jsonl
from data_tools.io.video_io import ResizeMode, read_video, write_video

PROMPT_COLUMN = "prompt"
VIDEO_COLUMN = "video"


def split_dir(root: str | os.PathLike, split: str) -> str:
    """Folder holding the column filelists of ``split``."""
    return os.path.join(os.fspath(root), "filelists", split)


def write_split(root: str | os.PathLike, split: str, clip_dirs: Sequence[str], prompts: Sequence[str],
                columns: Iterable[str] = ("video", "hand_keypoints", "depth", "seg_mask")) -> dict[str, str]:
    """Write ``filelists/<split>/<column>.txt`` for clips (folders relative to ``root``) and their captions.

    Every ``<clip>/<column>.mp4`` must exist. Returns ``{column: filelist path}``.
    """
    root = os.fspath(root)
    if len(clip_dirs) != len(prompts):
        raise DataError(root, f"split '{split}': {len(clip_dirs)} clips but {len(prompts)} prompts")
    out = {}
    for column in columns:
        entries = [f"{clip.rstrip('/')}/{column}.mp4" for clip in clip_dirs]
        for entry in entries:
            if not os.path.isfile(os.path.join(root, entry)):
                raise DataError(os.path.join(root, entry), f"missing clip file for split '{split}'")
        out[column] = os.path.join(split_dir(root, split), f"{column}.txt")
        write_filelist(out[column], entries)
    out[PROMPT_COLUMN] = os.path.join(split_dir(root, split), f"{PROMPT_COLUMN}.txt")
    write_filelist(out[PROMPT_COLUMN], [" ".join(p.split()) or "." for p in prompts])
    return out


def write_prompts(root: str | os.PathLike, clip_dirs: Sequence[str], prompts: Sequence[str]) -> str:
    """Write ``<root>/prompts.jsonl`` (one ``{"video", "prompt"}`` record per clip)."""
    path = os.path.join(os.fspath(root), "prompts.jsonl")
    write_prompts_jsonl(path, [{"video": f"{c.rstrip('/')}/video.mp4", "prompt": p} for c, p in zip(clip_dirs, prompts)])
    return path


def write_clip(root: str | os.PathLike, clip: str, videos: Mapping[str, np.ndarray], prompt: str,
               fps: float = 15) -> str:
    """Write one clip folder of the layout: ``{name}.mp4`` per video and ``descriptions.json`` with the prompt."""
    folder = os.path.join(os.fspath(root), clip)
    for name, frames in videos.items():
        write_video(os.path.join(folder, f"{name}.mp4"), frames, fps=fps)
    write_json(os.path.join(folder, "descriptions.json"), {"prompt": prompt})
    return folder


def write_bundle_dataset(root: str | os.PathLike, bundle: ConditionBundle, clip: str,
                         splits: Sequence[str] = ("train",)) -> str:
    """A one-clip dataset (smoke runs): ``bundle``'s video and conditions as clip ``clip``, listed in ``splits``."""
    if bundle.video is None:
        raise DataError(None, f"bundle '{bundle.name}' needs a video (video.mp4 or *_video.mp4) to become a dataset")
    columns = [VIDEO_COLUMN, *bundle.conditions]
    write_clip(root, clip, {VIDEO_COLUMN: bundle.video, **bundle.conditions}, bundle.prompt)
    for split in splits:
        write_split(root, split, [clip], [bundle.prompt], columns=columns)
    write_prompts(root, [clip], [bundle.prompt])
    return os.fspath(root)


class HOISplit(Dataset):
    """One split of a processed dataset; item ``i`` is a ``ConditionBundle`` (conditions, ``video``, prompt,
    first frame = the video's first frame), resampled to ``num_frames`` and ``size`` when given."""

    def __init__(self, root: str | os.PathLike, split: str, conditions: Sequence[str] = ("hand_keypoints", "depth", "seg_mask"),
                 num_frames: int | None = None, size: tuple[int, int] | None = None, resize_mode: ResizeMode = "crop",
                 load_video: bool = True):
        self.root = os.fspath(root)
        self.split = split
        self.conditions = check_condition_names(conditions)
        self.num_frames, self.size, self.resize_mode = num_frames, size, resize_mode
        self.load_video = load_video
        folder = split_dir(self.root, split)
        if not os.path.isdir(folder):
            raise DataError(folder, f"split '{split}' has no filelists (expected {folder}/<column>.txt)")
        columns = {c: os.path.join(folder, f"{c}.txt") for c in [VIDEO_COLUMN, *self.conditions]}
        for column, path in columns.items():
            if not os.path.isfile(path):
                raise DataError(path, f"filelist for column '{column}' is missing"
                                      f"{' (unknown condition for this dataset?)' if column in CONDITION_NAMES else ''}")
        self.columns = read_columns(columns, root=self.root)
        prompt_path = os.path.join(folder, f"{PROMPT_COLUMN}.txt")
        self.prompts = read_filelist(prompt_path) if os.path.isfile(prompt_path) else [""] * len(self)
        if len(self.prompts) != len(self):
            raise DataError(prompt_path, f"has {len(self.prompts)} lines but the split has {len(self)} clips")

    def __len__(self) -> int:
        return len(self.columns[VIDEO_COLUMN])

    def clip_name(self, index: int) -> str:
        """Relative folder of clip ``index`` (e.g. ``subject/sequence/serial``)."""
        return os.path.dirname(self.columns[VIDEO_COLUMN][index])

    def path(self, column: str, index: int) -> str:
        """Absolute path of ``column`` for clip ``index``."""
        return os.path.join(self.root, self.columns[column][index])

    def __getitem__(self, index: int) -> ConditionBundle:
        read = lambda column, interp: read_video(self.path(column, index), self.num_frames, self.size,  # noqa: E731
                                                 self.resize_mode, interp)
        conditions = {c: read(c, CONDITION_INTERPOLATION[c]) for c in self.conditions}
        video = read(VIDEO_COLUMN, "area") if self.load_video else None
        try:
            return ConditionBundle(conditions, prompt=self.prompts[index],
                                   first_frame=None if video is None else video[0].copy(), video=video,
                                   name=self.clip_name(index))
        except DataError as exc:
            raise DataError(os.path.join(self.root, self.clip_name(index)),
                            f"{exc.problem} (pass num_frames/size to resample)") from None


def read_descriptions(clip_dir: str | os.PathLike) -> dict:
    """``descriptions.json`` of a clip folder (empty dict when absent)."""
    path = os.path.join(os.fspath(clip_dir), "descriptions.json")
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"invalid JSON ({exc.msg})") from None
