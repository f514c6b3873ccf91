"""Throughput of the converters on synthetic full-resolution inputs (official layouts, see ``synthetic``).

    python -m data_tools.datasets.bench --out /tmp/pam_bench_datasets

Writes ``results.json`` and prints one markdown table row per case (seconds per clip).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from typing import Sequence

from data_tools.io.atomic import write_json
from data_tools.io.cli import positive_int, setup_logging
from data_tools.datasets import dexycb, oakink2, synthetic

logger = logging.getLogger(__name__)


def bench_dexycb(work: str, views: int, frames: int, workers: Sequence[int]) -> list[dict]:
    raw = os.path.join(work, "dexycb_raw")
    serials = [f"cam{i}" for i in range(views)]
    synthetic.write_dexycb(raw, subjects=synthetic.DEXYCB_SUBJECTS[:1], sequences=1, serials=serials,
                           num_frames=frames, height=480, width=640, missing_joints_frame=None)
    rows = []
    for policy, kwargs in (("native 640x480", {}), ("49 frames 480x720", {"num_frames": 49, "size": (480, 720)})):
        for n in workers:
            out = os.path.join(work, "dexycb_out")
            shutil.rmtree(out, ignore_errors=True)
            start = time.perf_counter()
            summary = dexycb.convert_dexycb(raw, out, workers=n, **kwargs)
            seconds = time.perf_counter() - start
            assert summary["num_converted"] == views, summary["failed"]
            rows.append({"case": f"DexYCB view, {frames} frames, {policy}", "workers": n, "clips": views,
                         "seconds": round(seconds, 2), "seconds_per_clip": round(seconds / views, 2)})
    return rows


def bench_oakink2(work: str, clips: int, workers: Sequence[int]) -> list[dict]:
    raw = os.path.join(work, "oakink2_raw")
    synthetic.write_oakink2_sequence(raw, num_frames=49 * clips, height=480, width=848)
    synthetic.write_oakink2_assets(raw)
    rows = []
    for n in workers:
        out = os.path.join(work, "oakink2_out")
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        summary = oakink2.convert_oakink2(raw, out, workers=n)
        seconds = time.perf_counter() - start
        done = summary["num_converted"]
        assert done == 2 * clips, summary["failed"]  # two cameras
        rows.append({"case": "OakInk2 clip, 49 frames 848x480, procedural hands + object rendered", "workers": n,
                     "clips": done, "seconds": round(seconds, 2), "seconds_per_clip": round(seconds / done, 2)})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_tools.datasets.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="/tmp/pam_bench_datasets", help="scratch folder (emptied first)")
    parser.add_argument("--views", type=int, default=4, help="DexYCB camera views to convert")
    parser.add_argument("--frames", type=positive_int, default=72, help="frames per DexYCB view (the release has 72)")
    parser.add_argument("--oakink2-clips", type=int, default=1, help="49-frame OakInk2 clips per camera")
    parser.add_argument("--workers", default="1,2", help="comma list of worker counts to time")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging; tracebacks of errors")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    workers = [int(w) for w in args.workers.split(",")]
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    rows = bench_dexycb(args.out, args.views, args.frames, workers) + bench_oakink2(args.out, args.oakink2_clips, workers)
    write_json(os.path.join(args.out, "results.json"), {"cpu_count": os.cpu_count(), "load": os.getloadavg(), "rows": rows})
    print("| case | workers | clips | s total | s / clip |\n| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['case']} | {r['workers']} | {r['clips']} | {r['seconds']} | {r['seconds_per_clip']} |")
    print(json.dumps({"load_average": os.getloadavg()}))
    return 0


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
