"""The learned quantities whose value moves with the thread count, the seed and the CPU, and their test floors.

Each ``measure_*`` function computes one such quantity the way its test does; the test asserts it against
``FLOORS``. ``python tests/margins.py`` (``scripts/bench_test_margins.sh``) re-measures every quantity over seeds
and thread counts and prints the spread beside the floor, so a floor is set from a measured spread, with a margin,
never at the edge of it. The figures are in docs/benchmarks.md ("Test margins").
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# quantity -> floor the test asserts (value >= floor)
FLOORS = {
    "segmenter.iou_hand": 0.7,
    "segmenter.iou_object": 0.8,
    "segmenter.iou_foreground": 0.8,
    "motion_overfit.loss_ratio": 2.0,
    "demo.first_frame.iou_hand": 0.6,
    "demo.first_frame.iou_object": 0.6,
    "demo.video.iou_object": 0.45,
    # the same demo with generate.cache (pyramid_attention: first_block needs blocks after the branch, and the toy
    # model's branch copies all 4): the floor of the uncached video
    "demo_cache.video.iou_object": 0.45,
}


def check(values: dict[str, float]) -> None:
    """Assert each measured value against its floor, naming every one that fails."""
    low = {k: v for k, v in values.items() if not v >= FLOORS[k]}
    assert not low, {k: (v, FLOORS[k]) for k, v in low.items()}


def segmenter_data():
    """Five 48x72 frames of toy-world scene 3 and their region ids."""
    from data_tools.maps.segmentation import colorize_classes
    from data_tools.metrics import regions
    from data_tools.pose import toy_world as tw

    config = tw.ToyWorldConfig(height=48, width=72, num_frames=5, shadow_size=64)
    frames = tw.render_real(tw.sample_scene(3, config), config)
    rgb = np.stack([f.rgb for f in frames])
    return rgb, regions.region_labels(colorize_classes(np.stack([f.classes for f in frames])))


def fit_small_segmenter(rgb, labels, seed: int = 0):
    """A short segmenter fit (300 steps at lr 3e-3: 150 steps at 1e-2 spread from 0.42 to 0.88 hand IoU)."""
    from data_tools.metrics import regions

    return regions.fit_segmenter(rgb, labels, steps=300, batch=4, lr=3e-3, seed=seed, progress=False)


def measure_segmenter(seed: int = 0) -> dict[str, float]:
    from data_tools.metrics import regions

    rgb, labels = segmenter_data()
    score = regions.region_iou(fit_small_segmenter(rgb, labels, seed).predict(rgb), labels)
    return {f"segmenter.{k}": v for k, v in score.items()}


def motion_overfit_ratio(latents: str, out: str, seed: int = 0) -> tuple[float, float, dict, object, dict]:
    """30 steps of the tiny motion branch on one batch with fixed noise.

    Returns the loss before and after, the trainer's summary, the spec and a copy of the frozen base's weights
    taken before training."""
    from torch.utils.data import Subset

    from data_tools.runtime.training import Trainer
    from motion_gen.config import load_motion_config
    from motion_gen.train import build_spec

    torch.manual_seed(seed)
    cfg = load_motion_config("configs/motion/tiny.yaml", [
        f"data.latents={latents}", f"train.loop.output_dir={out}", "train.loop.validate_every=0",
        "train.loop.max_steps=30", "train.loop.checkpoint_every=0", "train.optim.lr=1.0e-2",
        "train.optim.warmup_steps=0", "train.optim.scheduler=constant", "train.noised_image_dropout=0.0"])
    spec, dataset = build_spec(cfg)
    batch = spec.collate([dataset[0]])
    fixed = lambda: torch.Generator().manual_seed(seed)  # noqa: E731
    spec.compute_loss = lambda model, b, acc: spec.loss(model, b, acc.device, generator=fixed())
    frozen = {n: p.detach().clone() for n, p in spec.transformer.named_parameters() if not p.requires_grad}
    with torch.no_grad():
        before = spec.loss(spec.transformer, batch, "cpu", generator=fixed()).item()
    summary = Trainer(spec, Subset(dataset, [0]), cfg.train.loop, cfg.train.optim).train()
    with torch.no_grad():
        after = spec.loss(spec.transformer, batch, "cpu", generator=fixed()).item()
    return before, after, summary, spec, frozen


def tiny_motion_latents(root: str) -> str:
    """Two synthetic clips prepared into the tiny motion config's latents."""
    from motion_gen.config import load_motion_config
    from motion_gen.prepare import prepare
    from motion_gen.tiny_data import synthetic_dataset

    synthetic_dataset(os.path.join(root, "ds"), num_clips=2)
    prepare(load_motion_config("configs/motion/tiny.yaml",
                               [f"data.root={root}/ds", f"data.latents={root}/lat"]))
    return os.path.join(root, "lat")


def measure_motion_overfit(seed: int = 0) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        before, after, *_ = motion_overfit_ratio(tiny_motion_latents(tmp), os.path.join(tmp, "run"), seed)
    return {"motion_overfit.loss_ratio": before / after}


DEMO_ARGS = ["--config", "configs/sim2real/toy_world.yaml", "--frames", "17", "--height", "96", "--width", "144",
             "--camera-distance", "0.37"]  # as scripts/demo.sh


def demo_iou(out: str, extra=()) -> dict:
    """Run the demo into ``out`` (``extra``: more demo arguments) and return its ``demo-iou`` row (the committed
    toy-world models)."""
    import contextlib
    import io

    from sim2real import demo
    from sim2real import toy_world as toy_training

    assert demo.main(["--out", out, *DEMO_ARGS, *extra]) == 0
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert toy_training.main(["demo-iou", out]) == 0
    return json.loads(printed.getvalue().strip().splitlines()[-1])


def measure_demo(seed: int = 0) -> dict[str, float]:
    """The demo is seeded by its config, so only the thread count moves it; ``seed`` is unused."""
    with tempfile.TemporaryDirectory() as tmp:
        row = demo_iou(tmp)
    return {f"demo.{part}.{key}": row[part][key] for part, key in
            [("first_frame", "iou_hand"), ("first_frame", "iou_object"), ("video", "iou_object")]}


DEMO_CACHE = ["--set", 'motion_overrides=["generate.cache={method: pyramid_attention}"]']


def measure_demo_cache(seed: int = 0) -> dict[str, float]:
    """The demo's video IoU with the motion cache on (over a minute on 2 cores: measured here, not in a test)."""
    with tempfile.TemporaryDirectory() as tmp:
        return {"demo_cache.video.iou_object": demo_iou(tmp, DEMO_CACHE)["video"]["iou_object"]}


MEASURES = {"segmenter": (measure_segmenter, True), "motion_overfit": (measure_motion_overfit, True),
            "demo": (measure_demo, False), "demo_cache": (measure_demo_cache, False)}  # name -> (function, seeded)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Re-measure the tests' learned quantities over seeds and thread "
                                                 "counts; print min / max beside each floor as JSON lines.")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (quantities the seed moves)")
    parser.add_argument("--threads", default="1,2", help="torch thread counts, comma-separated")
    parser.add_argument("--only", default=",".join(MEASURES), help="comma list of " + ", ".join(MEASURES))
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    import logging

    logging.disable(logging.WARNING)
    for name in args.only.split(","):
        function, seeded = MEASURES[name]
        values: dict[str, list[float]] = {}
        for threads in [int(t) for t in args.threads.split(",")]:
            torch.set_num_threads(threads)
            for seed in range(args.seeds if seeded else 1):
                for key, value in function(seed).items():
                    values.setdefault(key, []).append(value)
        for key, found in values.items():
            print(json.dumps({"quantity": key, "runs": len(found), "min": round(min(found), 4),
                              "max": round(max(found), 4), "floor": FLOORS[key],
                              "margin": round(min(found) - FLOORS[key], 4)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
