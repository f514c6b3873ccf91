"""Benchmark the condition renderer: a procedural grasp of ``--frames`` frames rendered at ``--height`` x ``--width``
with all maps (depth, normal, seg mask, hand keypoints, shaded rgb), then written as a sim folder and as mp4s.
Prints frames/s per phase and appends a JSON record to ``--log`` (default outputs/bench/render.jsonl).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import tempfile
import time

import torch

from data_tools.io.cli import positive_int, setup_logging
from data_tools.pose.objects import resolve_object
from data_tools.pose.procedural_hand import load_hand_model
from data_tools.pose.render import RenderConfig, render_trajectory, write_outputs
from data_tools.pose.trajectory import generate_grasp_trajectory

logger = logging.getLogger("sim2real.bench_render")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=positive_int, default=49)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=720)
    parser.add_argument("--object", default="mustard_bottle")
    parser.add_argument("--mano", default=None, help="MANO pkl (default: procedural hand)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads while rendering (default: 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed render repeats (best is reported)")
    parser.add_argument("--style", default="engine", help="condition style (pam_release also draws the tracking map)")
    parser.add_argument("--log", default="outputs/bench/render.jsonl")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    hand = load_hand_model(args.mano)
    traj = generate_grasp_trajectory(hand, resolve_object(args.object), args.object, args.frames, args.height,
                                     args.width, seed=0, name="bench")
    config = RenderConfig(height=args.height, width=args.width, device=args.device, cpu_threads=args.threads,
                          style=args.style)
    render_trajectory(traj, config, hand, progress=False)          # warm-up (allocations, kernels)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        bundle = render_trajectory(traj, config, hand, progress=False)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    tmp = tempfile.mkdtemp(prefix="bench_render_")
    try:
        start = time.perf_counter()
        write_outputs(bundle, tmp, config.fps, sim=True, mp4=False)
        png_s = time.perf_counter() - start
        start = time.perf_counter()
        write_outputs(bundle, tmp, config.fps, sim=False, mp4=True)
        mp4_s = time.perf_counter() - start
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = args.frames
    record = {"frames": n, "height": args.height, "width": args.width, "device": args.device,
              "threads": args.threads, "style": args.style, "hand": hand.data.name, "object": args.object,
              "render_fps_best": round(n / min(times), 2), "render_fps_median": round(n / sorted(times)[len(times) // 2], 2),
              "sim_png_fps": round(n / png_s, 2), "mp4_fps": round(n / mp4_s, 2),
              "end_to_end_fps": round(n / (min(times) + png_s + mp4_s), 2),
              "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
              "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.makedirs(os.path.dirname(os.path.abspath(args.log)), exist_ok=True)
    with open(args.log, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    logger.info("render %d frames %dx%d (%s, %d threads): %.1f frames/s (best of %d, median %.1f); sim PNGs %.1f "
                "frames/s; mp4s %.1f frames/s; all %.1f frames/s", n, args.height, args.width, args.device,
                record["threads"], record["render_fps_best"], args.repeats, record["render_fps_median"],
                record["sim_png_fps"], record["mp4_fps"], record["end_to_end_fps"])
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
