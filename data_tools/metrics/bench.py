"""Timing of the metrics at the paper's video size (49 x 480 x 720) and of the Fréchet distance at I3D's 400-d.

    python -m data_tools.metrics.bench --output outputs/bench/evaluation.json

LPIPS runs the real AlexNet architecture with random weights (same cost as the real ones).
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Sequence

import numpy as np
import torch

from data_tools.io.cli import positive_int
from data_tools.io.atomic import write_json
from data_tools.metrics.frechet import frechet_distance
from data_tools.metrics.image_metrics import psnr, ssim
from data_tools.metrics.lpips import LPIPS


def _time(fn, repeats: int = 1) -> tuple[float, object]:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    return (time.perf_counter() - start) / repeats, out


def run(frames: int, height: int, width: int, dims: int, device: str) -> dict:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    b = np.clip(a.astype(np.int16) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    torch.manual_seed(0)
    lpips = LPIPS("alex").to(device)
    x = rng.normal(size=(2 * dims, dims))
    y = rng.normal(size=(2 * dims, dims)) + 0.1
    mu1, s1, mu2, s2 = x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)
    t_psnr, _ = _time(lambda: psnr(a, b))
    t_ssim, _ = _time(lambda: ssim(a, b))
    t_lpips, _ = _time(lambda: lpips.video(a, b, batch_size=8))
    t_eigh, d_eigh = _time(lambda: frechet_distance(mu1, s1, mu2, s2, "eigh"))
    t_sqrtm, d_sqrtm = _time(lambda: frechet_distance(mu1, s1, mu2, s2, "sqrtm"))
    return {
        "video": [frames, height, width], "device": device, "threads": torch.get_num_threads(),
        "psnr_s_per_video": t_psnr, "ssim_s_per_video": t_ssim, "lpips_alex_s_per_video": t_lpips,
        "frechet_dims": dims, "frechet_eigh_s": t_eigh, "frechet_sqrtm_s": t_sqrtm,
        "frechet_eigh_vs_sqrtm_rel_diff": abs(d_eigh - d_sqrtm) / abs(d_sqrtm),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=positive_int, default=49)
    parser.add_argument("--size", type=int, nargs=2, default=[480, 720], metavar=("H", "W"))
    parser.add_argument("--dims", type=int, default=400, help="feature size for the Fréchet distance (I3D: 400)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output", default="outputs/bench/evaluation.json")
    parser.add_argument("-v", "--verbose", action="store_true", help="tracebacks of errors")
    args = parser.parse_args(argv)
    result = run(args.frames, *args.size, args.dims, args.device)
    write_json(args.output, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
