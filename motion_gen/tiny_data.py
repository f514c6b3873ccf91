"""Small processed datasets for smoke runs of the motion stage (tests, ``scripts/train_motion_tiny.sh``).

``synthetic_dataset``: clips of a square moving over a textured background, with matching keypoint, depth and
seg-mask videos, so the conditions really predict the video. ``sample_dataset``: the shared DexYCB sample as a
one-clip dataset. Both write the processed-dataset layout of ``data_tools.datasets.hoi_dataset``.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from data_tools.maps.bundle import ConditionBundle
from data_tools.io.cli import positive_int, setup_logging, shared_samples_dir
from data_tools.errors import DataError
from data_tools.datasets.hoi_dataset import write_bundle_dataset, write_clip, write_prompts, write_split

COLUMNS = ("video", "hand_keypoints", "depth", "seg_mask")


def synthetic_clip(index: int, num_frames: int, size: tuple[int, int], seed: int = 0) -> dict[str, np.ndarray]:
    """Video and condition videos of one moving-square clip."""
    rng = np.random.default_rng(seed + index)
    h, w = size
    side = max(4, min(h, w) // 3)
    background = rng.integers(40, 120, (h, w, 3), dtype=np.uint8)
    colour = rng.integers(150, 255, 3, dtype=np.uint8)
    start, end = rng.uniform(0, [h - side, w - side]), rng.uniform(0, [h - side, w - side])
    out = {name: np.zeros((num_frames, h, w, 3), np.uint8) for name in COLUMNS}
    for t in range(num_frames):
        y, x = (start + (end - start) * t / max(1, num_frames - 1)).astype(int)
        out["video"][t] = background
        out["video"][t, y:y + side, x:x + side] = colour
        out["seg_mask"][t, y:y + side, x:x + side] = (120, 120, 180)
        out["depth"][t, y:y + side, x:x + side] = 200 - 10 * (t % 5)
        out["hand_keypoints"][t, y + side // 2 - 1:y + side // 2 + 2, x + side // 2 - 1:x + side // 2 + 2] = (255, 53, 139)
    return out


def synthetic_dataset(root: str | os.PathLike, num_clips: int = 3, num_frames: int = 9,
                      size: tuple[int, int] = (32, 48), seed: int = 0, split: str = "train") -> str:
    """Write ``num_clips`` synthetic clips and the ``split`` filelists; returns ``root``."""
    root = os.fspath(root)
    clips, prompts = [], []
    for i in range(num_clips):
        clip = f"synthetic/clip_{i:03d}"
        prompt = f"a square moves across the table, clip {i}"
        write_clip(root, clip, synthetic_clip(i, num_frames, size, seed), prompt)
        clips.append(clip)
        prompts.append(prompt)
    write_split(root, split, clips, prompts, columns=COLUMNS)
    write_prompts(root, clips, prompts)
    return root


def sample_dataset(root: str | os.PathLike, sample_dir: str, num_frames: int = 9, size: tuple[int, int] = (32, 48),
                   split: str = "train") -> str:
    """The DexYCB sample (``val_{video,hand_keypoints,depth,seg_mask}.mp4``) as a one-clip dataset."""
    bundle = ConditionBundle.from_video_folder(sample_dir, COLUMNS[1:], num_frames, size,
                                               prompt="a hand grasps an object on the table", require_video=True)
    return write_bundle_dataset(root, bundle, "dexycb_sample/val", splits=[split])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="output dataset root")
    parser.add_argument("--source", choices=("synthetic", "sample", "auto"), default="auto",
                        help="auto: the shared DexYCB sample when present, else synthetic clips")
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--frames", type=positive_int, default=9)
    parser.add_argument("--size", type=int, nargs=2, default=(32, 48), metavar=("H", "W"))
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging; tracebacks of errors")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    sample = shared_samples_dir()
    if args.source == "sample" or (args.source == "auto" and sample):
        if not sample:
            raise DataError(None, "the shared DexYCB sample is absent")
        sample_dataset(args.root, sample, args.frames, tuple(args.size))
    else:
        synthetic_dataset(args.root, args.clips, args.frames, tuple(args.size))


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
