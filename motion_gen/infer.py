"""Generate a video from a first frame and condition videos; write it with the conditions side by side.

    python -m motion_gen.infer --config configs/motion/tiny.yaml --conditions ../shared/samples/dexycb_val \\
        --out outputs/motion/infer_tiny
The conditions folder is a video folder (``{name}.mp4`` or ``*_{name}.mp4`` per condition, also the reference's
``val_hand.mp4`` for hand_keypoints; optional first frame ``first_frame.png``/``*_image.jpg``, ``prompt.txt``) or a
sim folder (``rendered_{map}_{i}.png``). Bad input prints one line ``error: <file>: <problem>`` and exits with 2.
"""
from __future__ import annotations

import argparse
import logging
import os

import numpy as np

from data_tools.io.atomic import write_text
from data_tools.maps.bundle import SIM_FILE_RE, ConditionBundle, condition_videos
from data_tools.io.cli import positive_int, setup_logging
from data_tools.errors import DataError, require_file, require_output_dir
from data_tools.io.video_io import read_image, write_image, write_video

logger = logging.getLogger(__name__)


def load_inputs(folder: str, generator, first_frame: str | None = None, prompt: str | None = None):
    """``(bundle, first frame)`` at the generator's size and frame count from a video or sim folder."""
    size = (generator.height, generator.width)
    kwargs = dict(names=generator.condition_names, num_frames=generator.num_frames, size=size, prompt=prompt)
    is_sim = os.path.isdir(folder) and any(SIM_FILE_RE.match(f) for f in os.listdir(folder))
    bundle = (ConditionBundle.from_sim_folder if is_sim else ConditionBundle.from_video_folder)(folder, **kwargs)
    if first_frame:
        first = read_image(first_frame, size)
    elif bundle.first_frame is not None:
        first = bundle.first_frame
    elif bundle.video is not None:
        first = bundle.video[0]
    else:
        raise DataError(folder, "no first frame (first_frame.png, *_image.jpg or video.mp4); pass --first-frame")
    return bundle, first


def side_by_side(video: np.ndarray, bundle: ConditionBundle) -> np.ndarray:
    """Frames ``[condition_1 | ... | condition_k | (ground truth) | generated]`` concatenated on width."""
    columns = [bundle.conditions[n] for n in bundle.conditions]
    if bundle.video is not None:
        columns.append(bundle.video)
    columns.append(video)
    return np.concatenate([c[: len(video)] for c in columns], axis=2)


def write_outputs(out_dir: str, video: np.ndarray, bundle: ConditionBundle, fps: int = 15,
                  first_frame: np.ndarray | None = None) -> dict[str, str]:
    """Write ``video.mp4``, ``side_by_side.mp4`` (conditions | generated), ``prompt.txt`` (and the first frame)."""
    os.makedirs(out_dir, exist_ok=True)
    written = {"video": write_video(os.path.join(out_dir, "video.mp4"), video, fps=fps),
               "side_by_side": write_video(os.path.join(out_dir, "side_by_side.mp4"), side_by_side(video, bundle), fps=fps)}
    if first_frame is not None:
        written["first_frame"] = write_image(os.path.join(out_dir, "first_frame.png"), first_frame)
    write_text(os.path.join(out_dir, "prompt.txt"), bundle.prompt + "\n")
    return written


def check_inputs(folder: str, cfg, first_frame: str | None = None) -> None:
    """Fail on a missing folder, condition video or first frame before any model is loaded (files only)."""
    from motion_gen.generator import fixed_conditions

    streams = list(cfg.model.condition_names)
    fixed = fixed_conditions(cfg.generate, streams)
    if not (os.path.isdir(folder) and any(SIM_FILE_RE.match(f) for f in os.listdir(folder))):
        condition_videos(folder, [n for n in streams if n not in fixed])
    if first_frame:
        require_file(first_frame, "first frame")


def main(argv=None) -> None:
    from motion_gen.config import load_motion_config
    from motion_gen.generator import MotionGenerator, build_pipeline

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="motion YAML (configs/motion/tiny.yaml, cogvideox5b_i2v.yaml)")
    parser.add_argument("--conditions", required=True, help="video folder or sim folder with the condition videos")
    parser.add_argument("--first-frame", help="first frame image (default: from the folder)")
    parser.add_argument("--prompt", help="caption (default: prompt.txt in the folder)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=positive_int, help="inference steps (default: generate.num_inference_steps)")
    parser.add_argument("--guidance", type=float, help="CFG scale (default: generate.guidance_scale)")
    parser.add_argument("--device", help="cuda / cpu (default: cuda when available)")
    parser.add_argument("overrides", nargs="*", help="key.sub=value config overrides")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging; tracebacks of errors")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    cfg = load_motion_config(args.config, args.overrides)
    check_inputs(args.conditions, cfg, args.first_frame)
    require_output_dir(args.out)
    generator = MotionGenerator(cfg, build_pipeline(cfg, args.device))
    bundle, first = load_inputs(args.conditions, generator, args.first_frame, args.prompt)
    video = generator.generate(first, bundle, seed=args.seed, num_inference_steps=args.steps,
                               guidance_scale=args.guidance)
    written = write_outputs(args.out, video, bundle, fps=generator.cfg.generate.fps, first_frame=first)
    logger.info("wrote %s", written)


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
