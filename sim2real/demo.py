"""Demo on the built-in sample: load its conditions, resample them, write condition videos and a contact sheet."""
from __future__ import annotations

import argparse
import logging
import os

from data_tools.bundle import ConditionBundle
from data_tools.cli import setup_logging, shared_samples_dir
from data_tools.contact_sheet import write_contact_sheet
from data_tools.errors import DataError

logger = logging.getLogger("sim2real.demo")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    parser.add_argument("--sample-dir", default=None,
                        help="folder of condition mp4s (default: ../shared/samples/dexycb_val)")
    parser.add_argument("--frames", type=int, default=49, help="frames per video (default: 49)")
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=360)
    parser.add_argument("--fps", type=float, default=15)
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    sample_dir = args.sample_dir or shared_samples_dir()
    if sample_dir is None:
        raise DataError(None, "no sample folder: pass --sample-dir (the DexYCB sample lives in ../shared/samples)")
    bundle = ConditionBundle.from_video_folder(sample_dir, num_frames=args.frames, size=(args.height, args.width))
    logger.info("loaded %s: conditions %s at (T, H, W) = %s", sample_dir, list(bundle.conditions), bundle.shape)
    cond_dir = os.path.join(args.out, "conditions")
    bundle.save_video_folder(cond_dir, fps=args.fps)
    columns = dict(bundle.conditions)
    if bundle.video is not None:
        columns["video"] = bundle.video
    sheet = write_contact_sheet(os.path.join(args.out, "contact_sheet.png"), columns)
    logger.info("wrote condition videos to %s and the contact sheet %s", cond_dir, sheet)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
