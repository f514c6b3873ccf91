"""Evaluate the motion stage: generate over a dataset split (or sim folders), then compute the metrics.

Generation is shardable (``--shard i/n``: clip indices ``i, i+n, ...``) and resumable (a sample whose
``videos/<index>.json`` record exists is skipped; the record is written after its mp4). Each configured run
(one motion checkpoint / condition set, the rows of the paper's ablation) writes ``<output>/<label>/``;
the metrics stage then writes ``<output>/results.md`` and ``results.json``.

    python -m motion_gen.evaluate --config configs/eval/dexycb.yaml --shard 0/4 --stage generate   # x4, any order
    python -m motion_gen.evaluate --config configs/eval/dexycb.yaml --stage metrics
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib
import json
import logging
import os
from typing import Sequence

import torch
from tqdm import tqdm

from data_tools.io.atomic import write_json
from data_tools.maps.bundle import ConditionBundle, check_condition_names
from data_tools.io.config import load_config, to_dict
from data_tools.errors import DataError
from data_tools.metrics.evaluation import MetricsConfig, check_metric_weights, evaluate_runs, load_run, results_markdown
from data_tools.io.filelists import read_filelist
from data_tools.runtime.claims import remove_temporaries
from data_tools.runtime.sharding import parse_shard, process_device
from data_tools.io.video_io import read_image, write_video

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class DatasetConfig:
    """What to generate over. ``kind``: "hoi" (a processed dataset split) or "sim" (sim folders)."""

    kind: str = "hoi"
    root: str | None = None
    split: str = "test"
    num_frames: int | None = None   # default: the generator's num_frames
    size: list[int] | None = None   # (H, W); default: the generator's (height, width)
    resize_mode: str = "crop"
    limit: int | None = None        # only the first N clips (the reference evaluates an ordered prefix)
    sim_list: str | None = None     # kind=sim: filelist of sim folders
    first_frame_list: str | None = None  # kind=sim: the chosen first-frame image per sim folder, same order


@dataclasses.dataclass
class RunConfig:
    """One motion model / condition set."""

    config: str = "configs/motion/tiny.yaml"
    overrides: list[str] = dataclasses.field(default_factory=list)
    label: str | None = None               # default: the conditions joined by "+"
    conditions: list[str] | None = None    # default: the generator's condition_names
    fill_missing: bool = False             # conditions the generator needs but the run drops become black videos
    seed: int = 42
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    generator: str = "motion_gen.generator:MotionGenerator"


@dataclasses.dataclass
class EvalConfig:
    dataset: DatasetConfig = dataclasses.field(default_factory=DatasetConfig)
    runs: list[RunConfig] = dataclasses.field(default_factory=lambda: [RunConfig()])
    run_overrides: list[str] = dataclasses.field(default_factory=list)  # after every run's own, e.g. a sampler:
    # --set "run_overrides=[generate.scheduler=ddim]" --set output=outputs/eval_ddim
    metrics: MetricsConfig = dataclasses.field(default_factory=MetricsConfig)
    output: str = "outputs/eval"
    fps: float = 15
    device: str | None = None
    title: str = "Evaluation"


def load_generator(run: RunConfig, device: str | None, extra_overrides: Sequence[str] = ()):
    """Import ``run.generator`` ("module:Class") and ``load`` it from ``run.config`` with the run's overrides,
    then ``extra_overrides`` (the evaluation's ``run_overrides``)."""
    module, _, name = run.generator.partition(":")
    cls = getattr(importlib.import_module(module), name)
    return cls.load(run.config, list(run.overrides) + list(extra_overrides), device=device)


def run_conditions(run: RunConfig, generator) -> list[str]:
    return check_condition_names(run.conditions if run.conditions else list(generator.condition_names))


def run_label(run: RunConfig, conditions: Sequence[str]) -> str:
    return run.label or "+".join(conditions)


class SampleSource:
    """The clips to generate: ``len``, ``bundle(i)``, and the record fields for clip ``i``."""

    def __init__(self, cfg: DatasetConfig, conditions: Sequence[str], num_frames: int, size: tuple[int, int]):
        self.cfg, self.conditions, self.num_frames, self.size = cfg, list(conditions), num_frames, size
        if cfg.kind == "hoi":
            from data_tools.datasets.hoi_dataset import HOISplit

            if not cfg.root:
                raise DataError(None, "dataset.root is not set")
            self.split = HOISplit(cfg.root, cfg.split, self.conditions, num_frames, size, cfg.resize_mode)
            self.count = len(self.split)
        elif cfg.kind == "sim":
            if not cfg.sim_list or not cfg.first_frame_list:
                raise DataError(None, "dataset.kind=sim needs dataset.sim_list and dataset.first_frame_list")
            base = os.path.dirname(os.path.abspath(cfg.sim_list))
            absolute = lambda p, b: p if os.path.isabs(p) else os.path.join(b, p)  # noqa: E731
            self.folders = [absolute(p, base) for p in read_filelist(cfg.sim_list)]
            ff_base = os.path.dirname(os.path.abspath(cfg.first_frame_list))
            self.first_frames = [absolute(p, ff_base) for p in read_filelist(cfg.first_frame_list)]
            if len(self.first_frames) != len(self.folders):
                raise DataError(cfg.first_frame_list, f"has {len(self.first_frames)} lines but "
                                                      f"{cfg.sim_list} has {len(self.folders)}")
            self.count = len(self.folders)
        else:
            raise DataError(None, f"dataset.kind must be hoi or sim, got {cfg.kind!r}")
        if cfg.limit is not None:
            self.count = min(self.count, cfg.limit)

    def __len__(self) -> int:
        return self.count

    def bundle(self, index: int) -> ConditionBundle:
        if self.cfg.kind == "hoi":
            return self.split[index]
        bundle = ConditionBundle.from_sim_folder(self.folders[index], self.conditions, self.num_frames, self.size,
                                                 self.cfg.resize_mode)
        bundle.first_frame = read_image(self.first_frames[index], self.size, self.cfg.resize_mode)
        return bundle

    def record(self, index: int) -> dict:
        if self.cfg.kind == "hoi":
            return {"name": self.split.clip_name(index), "reference": os.path.abspath(self.split.path("video", index)),
                    "clip_dir": os.path.abspath(os.path.join(self.split.root, self.split.clip_name(index))),
                    "prompt": self.split.prompts[index], "resize_mode": self.cfg.resize_mode}
        return {"name": os.path.basename(os.path.normpath(self.folders[index])), "reference": None,
                "clip_dir": self.folders[index], "first_frame": self.first_frames[index],
                "resize_mode": self.cfg.resize_mode}


def _fill_missing(bundle: ConditionBundle, needed: Sequence[str]) -> ConditionBundle:
    """Add black videos for conditions the generator needs but the bundle lacks."""
    import numpy as np

    shape = bundle.shape + (3,)
    conditions = {n: bundle.conditions[n] if n in bundle.conditions else np.zeros(shape, np.uint8) for n in needed}
    return dataclasses.replace(bundle, conditions=conditions)


def check_same_run(path: str, record: dict) -> None:
    """Resuming a run folder is only right for the same generator settings (run entry, ``run_overrides``, frames,
    size): otherwise its finished samples would be kept under the new settings' name."""
    if not os.path.isfile(path):
        return
    with open(path, encoding="utf-8") as f:
        old = json.load(f)
    old.setdefault("run_overrides", [])  # folders written before the key existed
    changed = [k for k in ("run", "run_overrides", "num_frames", "size") if old.get(k) != record[k]]
    if changed:
        raise DataError(path, f"holds samples generated with other settings ({', '.join(changed)}); "
                              "choose another output or remove the folder")


def generate_run(config: EvalConfig, run: RunConfig, shard: tuple[int, int] = (0, 1), generator=None) -> str:
    """Generate the shard's missing samples of one run; returns the run folder."""
    generator = generator if generator is not None else load_generator(run, config.device, config.run_overrides)
    conditions = run_conditions(run, generator)
    label = run_label(run, conditions)
    num_frames = generator.num_frames if config.dataset.num_frames is None else config.dataset.num_frames
    size = tuple(config.dataset.size) if config.dataset.size else (generator.height, generator.width)
    source = SampleSource(config.dataset, conditions, num_frames, size)
    run_dir = os.path.join(config.output, label)
    record = {"label": label, "conditions": conditions, "generator_conditions": list(generator.condition_names),
              "run": to_dict(run), "run_overrides": list(config.run_overrides), "dataset": to_dict(config.dataset),
              "num_frames": num_frames, "size": list(size), "num_samples": len(source)}
    check_same_run(os.path.join(run_dir, "run.json"), record)
    os.makedirs(os.path.join(run_dir, "videos"), exist_ok=True)
    write_json(os.path.join(run_dir, "run.json"), record)
    todo = [i for i in range(shard[0], len(source), shard[1])
            if not os.path.isfile(os.path.join(run_dir, "videos", f"{i:05d}.json"))]
    logger.info("[%s] shard %d/%d: %d of %d samples left to generate", label, shard[0], shard[1], len(todo),
                len(range(shard[0], len(source), shard[1])))
    # those not written to for 10 minutes: a duplicate worker may be writing a fresh one
    for stale in remove_temporaries(os.path.join(run_dir, "videos"), [f"{i:05d}" for i in todo], older_than_s=600):
        logger.info("removed the stale temporary %s of an interrupted run", stale)
    for i in tqdm(todo, desc=f"generate [{label}]"):
        bundle = source.bundle(i)
        if run.fill_missing:
            bundle = _fill_missing(bundle, generator.condition_names)
        if bundle.first_frame is None:
            raise DataError(source.record(i)["name"], "sample has no first frame")
        video = generator.generate(bundle.first_frame, bundle, seed=run.seed,
                                   num_inference_steps=run.num_inference_steps, guidance_scale=run.guidance_scale)
        stem = os.path.join(run_dir, "videos", f"{i:05d}")
        write_video(stem + ".mp4", video, fps=config.fps)
        write_json(stem + ".json", {"index": i, "generated": f"videos/{i:05d}.mp4", "conditions": conditions,
                                    "seed": run.seed, **source.record(i)})
    return run_dir


def run_dirs(config: EvalConfig) -> list[str]:
    """Existing run folders of the config's output (each holds ``run.json``)."""
    found = sorted(os.path.join(config.output, d) for d in os.listdir(config.output)
                   if os.path.isfile(os.path.join(config.output, d, "run.json"))) if os.path.isdir(config.output) else []
    if not found:
        raise DataError(config.output, "no generated runs found (run the generate stage first)")
    return found


def compute_metrics(config: EvalConfig) -> list[dict]:
    """Metrics over every run folder in ``config.output``; writes results.md / results.json there."""
    runs = [load_run(d) for d in run_dirs(config)]
    for run in runs:
        if run.expected is not None and len(run.records) < run.expected:
            logger.warning("[%s] only %d of %d samples are generated; metrics cover those", run.label,
                           len(run.records), run.expected)
    if config.metrics.device is None:
        config.metrics.device = config.device
    return evaluate_runs(runs, config.metrics, config.output, config.title)


def main(argv: Sequence[str] | None = None) -> int:
    from data_tools.io.cli import setup_logging

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML evaluation config (configs/eval/*.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set dataset.root=/data/dexycb_videos")
    parser.add_argument("--shard", default="0/1", help="generate clip indices i, i+n, ... (default 0/1)")
    parser.add_argument("--stage", choices=("generate", "metrics", "all"), default="all",
                        help="'all' with n > 1 shards only generates; run --stage metrics once all shards finish")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    config = load_config(EvalConfig, args.config, args.overrides)
    shard = parse_shard(args.shard)
    config.device = process_device(config.device, shard[0])  # shards side by side: one GPU each
    if args.stage == "all" and shard[1] == 1:
        check_metric_weights(config.metrics)  # fail now, not after hours of generation
    if args.stage in ("generate", "all"):
        for run in config.runs:
            generate_run(config, run, shard)
            gc.collect()  # drop this run's generator before loading the next
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    if args.stage == "metrics" or (args.stage == "all" and shard[1] == 1):
        rows = compute_metrics(config)
        print(results_markdown(rows, config.title))
    elif args.stage == "all":
        logger.info("sharded generation done; run --stage metrics after every shard has finished")
    return 0


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
