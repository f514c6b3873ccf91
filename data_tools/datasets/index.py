"""The index of a converted dataset: split filelists and ``prompts.jsonl``, built from the clip folders.

Each clip's caption lives in its ``descriptions.json`` (``"prompt"``); the index is derived from those, so a
re-captioning pass only has to update the descriptions and call ``write_index`` again.
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

from data_tools.errors import DataError
from data_tools.io.filelists import read_filelist
from data_tools.datasets.hoi_dataset import VIDEO_COLUMN, read_descriptions, split_dir, write_prompts, write_split

SPLITS = ("train", "val", "test")


def clip_prompt(root: str | os.PathLike, clip: str) -> str:
    """The caption of clip folder ``clip`` (relative to ``root``), from its ``descriptions.json``."""
    path = os.path.join(os.fspath(root), clip, "descriptions.json")
    prompt = read_descriptions(os.path.join(os.fspath(root), clip)).get("prompt")
    if not isinstance(prompt, str):
        raise DataError(path, "has no 'prompt' string")
    return prompt


def write_index(root: str | os.PathLike, split_clips: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Write ``filelists/<split>/<column>.txt`` for each split and ``prompts.jsonl`` over all clips.

    ``split_clips``: clip folders (relative to ``root``) per split, written in the given order; a clip may sit in
    several splits (it appears once in ``prompts.jsonl``). Returns the number of clips per split.
    """
    root = os.fspath(root)
    prompts: dict[str, str] = {}
    for split, clips in split_clips.items():
        split_prompts = []
        for clip in clips:
            if clip not in prompts:
                prompts[clip] = clip_prompt(root, clip)
            split_prompts.append(prompts[clip])
        write_split(root, split, list(clips), split_prompts)
    write_prompts(root, list(prompts), list(prompts.values()))
    return {split: len(clips) for split, clips in split_clips.items()}


def read_index(root: str | os.PathLike) -> dict[str, list[str]]:
    """Clip folders per split, read back from ``filelists/<split>/video.txt`` (splits without filelists skipped)."""
    root = os.fspath(root)
    index = {}
    for split in sorted(os.listdir(os.path.join(root, "filelists"))) if os.path.isdir(os.path.join(root, "filelists")) else []:
        path = os.path.join(split_dir(root, split), f"{VIDEO_COLUMN}.txt")
        if os.path.isfile(path):
            index[split] = [os.path.dirname(entry) for entry in read_filelist(path)]
    if not index:
        raise DataError(os.path.join(root, "filelists"), "no split filelists found (convert the dataset first)")
    return index
