"""Metrics over generated vs reference videos, and the per-condition results table (markdown + json).

A *run* is one generation setting (one condition set, e.g. the paper's ablation rows) and a list of sample
records ``{"name", "generated", "reference", "clip_dir", "resize_mode"}``: the generated video, the ground-truth
video (read with the same time / space resampling as the generator's input, so frames align), and the clip
folder that may hold ground-truth joints (``hand_joints.npz``). ``motion_gen.evaluate`` writes run folders
(``run.json`` + ``videos/*.mp4`` with one ``*.json`` record each); this module reads them, or two filelists.

    python -m data_tools.metrics.evaluation --runs out/eval/all out/eval/depth --config configs/eval/metrics_tiny.yaml
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import logging
import math
import os
from typing import Iterable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from data_tools.io.atomic import write_json, write_text
from data_tools.maps.bundle import CONDITION_NAMES
from data_tools.io.config import load_config, to_dict
from data_tools.errors import DataError
from data_tools.io.filelists import read_filelist
from data_tools.metrics.fvd import FVDConfig, FVDStats, VideoFeatureExtractor, fvd_from_stats
from data_tools.metrics.image_metrics import psnr, ssim
from data_tools.maps.hand_joints import HandKeypoints, map_points
from data_tools.metrics.keypoints import EstimatorConfig, build_estimator, keypoint_metrics
from data_tools.metrics.lpips import LPIPS, LPIPSConfig
from data_tools.io.video_io import read_video, resample_indices, video_info

logger = logging.getLogger(__name__)

METRICS = ("psnr", "ssim", "lpips", "fvd", "keypoints")
RECORD_SUFFIX = ".json"


@dataclasses.dataclass
class KeypointEvalConfig:
    """Hand-keypoint error: estimator on the generated video vs ground truth.

    ``reference``: "file" (``<clip_dir>/<file_name>``, joints in the clip's pixel frame, 3D in mm),
    "estimated" (the estimator run on the ground-truth video), or "auto" (the file when present).
    """

    estimator: EstimatorConfig = dataclasses.field(default_factory=EstimatorConfig)
    reference: str = "auto"
    file_name: str = "hand_joints.npz"
    pck_thresholds: list[float] = dataclasses.field(default_factory=lambda: [5.0, 10.0, 20.0])
    pck_box_fractions: list[float] = dataclasses.field(default_factory=lambda: [0.05, 0.1])  # of the hand box
    align_3d: str = "root"


@dataclasses.dataclass
class MetricsConfig:
    """Which metrics to compute and where their networks' weights are (local paths only)."""

    metrics: list[str] = dataclasses.field(default_factory=lambda: list(METRICS))
    fvd: FVDConfig = dataclasses.field(default_factory=FVDConfig)
    lpips: LPIPSConfig = dataclasses.field(default_factory=LPIPSConfig)
    keypoints: KeypointEvalConfig = dataclasses.field(default_factory=KeypointEvalConfig)
    fvd_reference_list: str | None = None  # real videos for FVD (default: the samples' own references)
    fvd_reference_root: str | None = None  # folder the list's relative paths start from (default: the list's folder)
    device: str | None = None


@dataclasses.dataclass
class Run:
    """One generation setting and its samples."""

    label: str
    conditions: list[str]
    records: list[dict]
    root: str = "."
    expected: int | None = None  # samples the run should have (from run.json)

    def path(self, record: dict, key: str) -> str | None:
        value = record.get(key)
        if not value:
            return None
        return value if os.path.isabs(value) else os.path.join(self.root, value)


def load_run(run_dir: str | os.PathLike) -> Run:
    """Read a run folder: ``run.json`` (label, conditions) and ``videos/*.json`` sample records."""
    run_dir = os.fspath(run_dir)
    meta_path = os.path.join(run_dir, "run.json")
    if not os.path.isfile(meta_path):
        raise DataError(meta_path, "run description does not exist (is this a motion_gen.evaluate output folder?)")
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    records = []
    for path in sorted(glob.glob(os.path.join(glob.escape(run_dir), "videos", "*" + RECORD_SUFFIX))):
        with open(path, encoding="utf-8") as f:
            try:
                record = json.load(f)
            except json.JSONDecodeError as exc:
                raise DataError(path, f"invalid JSON ({exc.msg})") from None
        if "generated" not in record:
            raise DataError(path, "sample record lacks 'generated'")
        records.append(record)
    if not records:
        raise DataError(run_dir, "no generated samples (videos/*.json) found")
    return Run(meta.get("label") or os.path.basename(os.path.normpath(run_dir)), list(meta.get("conditions", [])),
               records, root=run_dir, expected=meta.get("num_samples"))


def run_from_filelists(generated_list: str, reference_list: str | None, label: str = "run",
                       conditions: Sequence[str] = (), root: str | None = None) -> Run:
    """A run from a filelist of generated videos and (optionally) one of reference videos, line by line.

    Relative entries start from ``root``, else from their own filelist's folder. Ground-truth joints are looked up
    beside the reference video, or beside the generated one when there is no reference (an exported sim2real
    dataset keeps ``hand_joints.npz`` next to its ``video.mp4``).
    """
    def absolute(entries, list_path, default_root):
        base = os.path.abspath(default_root or os.path.dirname(os.path.abspath(list_path)))
        return [e if os.path.isabs(e) else os.path.join(base, e) for e in entries]

    generated = absolute(read_filelist(generated_list), generated_list, root)
    references = (absolute(read_filelist(reference_list), reference_list, root) if reference_list
                  else [None] * len(generated))
    if len(references) != len(generated):
        raise DataError(reference_list, f"has {len(references)} lines but {generated_list} has {len(generated)}")
    base = root or os.path.dirname(os.path.abspath(generated_list))
    records = [{"name": _sample_name(g, base), "generated": g, "reference": r,
                "clip_dir": os.path.dirname(r) if r else os.path.dirname(g), "resize_mode": "crop"}
               for g, r in zip(generated, references)]
    return Run(label, list(conditions), records, root=base)


def _sample_name(path: str, root: str) -> str:
    """A sample's name: its clip folder relative to ``root`` for ``<clip>/video.mp4`` entries, else the file stem."""
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem == "video":
        return os.path.relpath(os.path.dirname(os.path.abspath(path)), os.path.abspath(root))
    return stem


def check_metric_weights(config: MetricsConfig) -> None:
    """Raise DataError naming the first missing weight file of the configured metrics (loads nothing)."""
    needed = []
    if "fvd" in config.metrics:
        needed.append(("fvd.detector_path", config.fvd.detector_path))
    if "lpips" in config.metrics:
        needed += [("lpips.weights", p) for p in (config.lpips.weights or [None])]
    if "keypoints" in config.metrics and config.keypoints.estimator.kind == "torchscript":
        needed.append(("keypoints.estimator.path", config.keypoints.estimator.path))
    if "keypoints" in config.metrics and config.keypoints.estimator.kind == "mediapipe":
        from data_tools.metrics.mediapipe_hands import import_hands

        import_hands()
    for key, path in needed:
        if not path:
            raise DataError(None, f"metrics.{key} is not set")
        if not os.path.isfile(path):
            raise DataError(path, f"weight file for metrics.{key} does not exist")


class Evaluator:
    """Computes the configured metrics; the networks (LPIPS, I3D, estimator) load once, when it is built."""

    def __init__(self, config: MetricsConfig):
        unknown = sorted(set(config.metrics) - set(METRICS))
        if unknown:
            raise DataError(None, f"unknown metric(s) {unknown}; known: {list(METRICS)}")
        self.config = config
        self.metrics = list(config.metrics)
        device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        # Load everything up front so a missing weight file fails before hours of work.
        self.lpips = LPIPS.load(config.lpips.weights, config.lpips.backbone, device) if "lpips" in self.metrics else None
        self.extractor = VideoFeatureExtractor(config.fvd, device) if "fvd" in self.metrics else None
        self.estimator = build_estimator(config.keypoints.estimator, device) if "keypoints" in self.metrics else None
        self._fixed_real: FVDStats | None = None
        self._real_cache: dict[tuple, FVDStats] = {}  # runs over the same references share their I3D stats

    # ------------------------------------------------------------------ one sample
    def _reference_keypoints(self, run: Run, record: dict, reference: np.ndarray | None,
                             shape: tuple[int, int, int]) -> tuple[HandKeypoints | None, str]:
        kc = self.config.keypoints
        clip_dir = run.path(record, "clip_dir")
        file = os.path.join(clip_dir, kc.file_name) if clip_dir else None
        if kc.reference in ("file", "auto") and file and os.path.isfile(file):
            return _joints_to_generated_frame(HandKeypoints.load(file), run.path(record, "reference"), shape,
                                              record.get("resize_mode", "crop"), file), "file"
        if kc.reference == "file":
            raise DataError(file or record.get("name"), "ground-truth joints file does not exist "
                                                        "(keypoints.reference=file)")
        if kc.reference not in ("auto", "estimated"):
            raise DataError(None, f"keypoints.reference must be file, estimated or auto, got {kc.reference!r}")
        if reference is None:
            return None, "none"
        return self.estimator.estimate(reference), "estimated"

    def sample(self, run: Run, record: dict, real: FVDStats | None, generated_stats: FVDStats | None) -> dict:
        """Metrics of one record (frame means); feeds the FVD accumulators."""
        gen_path = run.path(record, "generated")
        generated = read_video(gen_path)
        t, h, w = generated.shape[:3]
        ref_path = run.path(record, "reference")
        reference = (read_video(ref_path, t, (h, w), record.get("resize_mode", "crop"), "area")
                     if ref_path else None)
        out: dict = {"name": record.get("name", os.path.basename(gen_path)), "generated": gen_path}
        if reference is not None:
            if "psnr" in self.metrics:
                frames = psnr(generated, reference)
                out["psnr"] = float(np.mean(frames))
                if t > 1:  # an image-to-video model is given frame 0: the frames it predicts, alone
                    out["psnr_after_first"] = float(np.mean(frames[1:]))
            if "ssim" in self.metrics:
                out["ssim"] = float(np.mean(ssim(generated, reference)))
            if self.lpips is not None:
                out["lpips"] = float(np.mean(self.lpips.video(generated, reference, self.config.lpips.batch_size)))
        if generated_stats is not None:
            generated_stats.add(generated, gen_path)
            if real is not None and reference is not None:
                real.add(reference, ref_path)
        if self.estimator is not None:
            target, source = self._reference_keypoints(run, record, reference, (t, h, w))
            if target is not None:
                pred = self.estimator.estimate(generated)
                kc = self.config.keypoints
                out.update(keypoint_metrics(pred, target, kc.pck_thresholds, kc.align_3d, kc.pck_box_fractions))
                out["keypoint_reference"] = source
        return out

    # ------------------------------------------------------------------ one run
    def _fixed_real_stats(self, size: tuple[int, int, int]) -> FVDStats:
        if self._fixed_real is None:
            c = self.config
            paths = read_filelist(c.fvd_reference_list)
            base = c.fvd_reference_root or os.path.dirname(os.path.abspath(c.fvd_reference_list))
            stats = FVDStats(self.extractor)
            for p in tqdm(paths, desc="FVD reference videos", leave=False):
                full = p if os.path.isabs(p) else os.path.join(base, p)
                stats.add(read_video(full, size[0], size[1:], "crop", "area"), full)
            self._fixed_real = stats
        return self._fixed_real

    def evaluate(self, run: Run) -> dict:
        """Aggregate metrics of a run: means over samples, FVD over all clips, per-sample values kept."""
        gen_stats = FVDStats(self.extractor) if self.extractor is not None else None
        real, real_key = None, None
        if gen_stats is not None and not self.config.fvd_reference_list:
            info = video_info(run.path(run.records[0], "generated"))
            real_key = (info["num_frames"], info["height"], info["width"],
                        tuple((run.path(r, "reference"), r.get("resize_mode", "crop")) for r in run.records))
            real = self._real_cache.get(real_key)
        new_real = real is None and real_key is not None
        if new_real:
            real = FVDStats(self.extractor)
        samples = [self.sample(run, r, real if new_real else None, gen_stats)
                   for r in tqdm(run.records, desc=f"metrics [{run.label}]")]
        if new_real:
            self._real_cache[real_key] = real
        row: dict = {"label": run.label, "conditions": run.conditions, "num_samples": len(samples)}
        for key in dict.fromkeys(k for s in samples for k, v in s.items() if isinstance(v, float)):
            values = np.array([s[key] for s in samples if key in s], np.float64)
            values = values[~np.isnan(values)]  # NaN: not measurable for that sample (e.g. no valid joints)
            row[key] = float(np.mean(values)) if values.size else float("nan")
        if gen_stats is not None:
            if real is None:
                info = video_info(run.path(run.records[0], "generated"))
                real = self._fixed_real_stats((info["num_frames"], info["height"], info["width"]))
            try:
                row.update(fvd_from_stats(real, gen_stats, self.config.fvd.method))
            except DataError as exc:
                logger.warning("[%s] FVD not computed: %s", run.label, exc)
                row["fvd"] = float("nan")
        row["samples"] = samples
        return row


def _joints_to_generated_frame(kp: HandKeypoints, reference_path: str | None, shape: tuple[int, int, int],
                               resize_mode: str, source: str) -> HandKeypoints:
    """Resample clip-frame joints in time and space exactly as the reference video is resampled."""
    t, h, w = shape
    if reference_path:
        info = video_info(reference_path)
        src_hw = (info["height"], info["width"])
        if info["num_frames"] != kp.num_frames:
            raise DataError(source, f"{kp.num_frames} joint frames but the clip video has {info['num_frames']}")
    else:
        src_hw = (h, w)
    idx = resample_indices(kp.num_frames, t)
    joints_2d = map_points(kp.joints_2d[idx], src_hw, (h, w), resize_mode)
    return HandKeypoints(joints_2d, None if kp.joints_3d is None else kp.joints_3d[idx])


# ---------------------------------------------------------------------------------------------- results table
_COLUMNS = [  # (key, header, higher is better, decimals)
    ("fvd", "FVD", False, 2), ("psnr", "PSNR", True, 2), ("psnr_after_first", "PSNR 1+", True, 2),
    ("ssim", "SSIM", True, 4), ("lpips", "LPIPS", False, 4),
    ("detection_rate", "Hand found", True, 3), ("mpjpe_2d_px", "MPJPE-2D (px)", False, 2),
    ("mpjpe_3d_mm", "MPJPE-3D (mm)", False, 2), ("pa_mpjpe_3d_mm", "PA-MPJPE (mm)", False, 2),
]
POSE_KEYS = ("detection_rate", "mpjpe_2d_px", "mpjpe_3d_mm", "pa_mpjpe_3d_mm")


def _fmt(value, decimals: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{decimals}f}"


def results_markdown(rows: Sequence[dict], title: str = "Evaluation") -> str:
    """The per-condition ablation layout: one ✓ column per condition, then the metrics (arrows give the sense)."""
    conditions = [c for c in CONDITION_NAMES if any(c in r.get("conditions", []) for r in rows)]
    columns = [c for c in _COLUMNS if any(c[0] in r for r in rows)]
    insert_at = next((i for i, c in enumerate(columns) if c[0] == "mpjpe_3d_mm"), len(columns))
    columns[insert_at:insert_at] = _pck_columns(rows)
    header = ["Run"] + conditions + [f"{name} {'↑' if up else '↓'}" for _, name, up, _ in columns] + ["N"]
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["label"]] + ["✓" if c in r.get("conditions", []) else "" for c in conditions]
        cells += [_fmt(r.get(key), d) for key, _, _, d in columns] + [str(r.get("num_samples", ""))]
        lines.append("| " + " | ".join(cells) + " |")
    samples = [(r["label"], s) for r in rows for s in r.get("samples", []) if "detection_rate" in s]
    if samples:   # pose fidelity per sequence
        pose = [c for c in _COLUMNS if c[0] in POSE_KEYS and any(c[0] in s for _, s in samples)]
        pose[2:2] = _pck_columns([s for _, s in samples])
        lines += ["", "## Pose fidelity per sequence", "",
                  "| Run | Sequence | " + " | ".join(f"{n} {'↑' if up else '↓'}" for _, n, up, _ in pose) + " |",
                  "|" + "---|" * (len(pose) + 2)]
        lines += ["| " + " | ".join([label, str(s.get("name", ""))] + [_fmt(s.get(k), d) for k, _, _, d in pose]) + " |"
                  for label, s in samples]
    return "\n".join(lines) + "\n"


def _pck_columns(rows: Sequence[dict]) -> list[tuple]:
    """PCK columns present in ``rows``: pixel thresholds first, then fractions of the hand box, ascending."""
    keys = {k for r in rows for k in r if k.startswith("pck_")}
    px = sorted((k for k in keys if k.endswith("px")), key=lambda k: float(k[4:-2]))
    box = sorted((k for k in keys if k.endswith("box")), key=lambda k: float(k[4:-3]))
    return [(k, f"PCK@{k[4:]}", True, 3) for k in px] + [(k, f"PCK@{k[4:-3]} box", True, 3) for k in box]


def sort_rows(rows: Iterable[dict]) -> list[dict]:
    """Ablation order: fewer conditions first, conditions in the canonical order, then by label."""
    order = {c: i for i, c in enumerate(CONDITION_NAMES)}
    return sorted(rows, key=lambda r: (len(r.get("conditions", [])),
                                       [order.get(c, 99) for c in r.get("conditions", [])], r["label"]))


def write_results(rows: Sequence[dict], output_dir: str | os.PathLike, config: MetricsConfig | None = None,
                  title: str = "Evaluation") -> dict[str, str]:
    """Write ``results.json`` (rows with per-sample values, plus the config) and ``results.md``."""
    output_dir = os.fspath(output_dir)
    rows = sort_rows(rows)
    paths = {"json": os.path.join(output_dir, "results.json"), "markdown": os.path.join(output_dir, "results.md")}
    write_json(paths["json"], {"title": title, "config": to_dict(config) if config else None,
                               "runs": _jsonable(rows)})
    write_text(paths["markdown"], results_markdown(rows, title))
    return paths


def _jsonable(obj):
    """NaN / inf -> None so the json stays standard."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def evaluate_runs(runs: Sequence[Run], config: MetricsConfig, output_dir: str | os.PathLike,
                  title: str = "Evaluation") -> list[dict]:
    """Evaluate every run with one ``Evaluator`` and write the results table; returns the rows (ablation order)."""
    evaluator = Evaluator(config)
    rows = sort_rows(evaluator.evaluate(run) for run in runs)
    paths = write_results(rows, output_dir, config, title)
    logger.info("wrote %s and %s", paths["markdown"], paths["json"])
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    from data_tools.io.cli import setup_logging

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="*", default=[], help="run folders written by motion_gen.evaluate")
    parser.add_argument("--generated", help="filelist of generated videos (instead of --runs)")
    parser.add_argument("--reference", help="filelist of reference videos, same order as --generated")
    parser.add_argument("--root", help="folder the --generated/--reference entries start from (default: each list's own)")
    parser.add_argument("--label", default="run", help="row label for --generated")
    parser.add_argument("--conditions", default="", help="comma-separated condition names of --generated")
    parser.add_argument("--config", help="YAML metrics config (MetricsConfig)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set fvd.detector_path=/weights/i3d_torchscript.pt")
    parser.add_argument("--output", help="folder for results.md / results.json (default: next to the first run)")
    parser.add_argument("--title", default="Evaluation")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    config = load_config(MetricsConfig, args.config, args.overrides)
    runs = [load_run(d) for d in args.runs]
    if args.generated:
        runs.append(run_from_filelists(args.generated, args.reference, args.label,
                                       [c for c in args.conditions.split(",") if c], args.root))
    if not runs:
        parser.error("give --runs or --generated")
    output = args.output or (os.path.dirname(os.path.abspath(args.runs[0])) if args.runs
                             else os.path.dirname(os.path.abspath(args.generated)))
    rows = evaluate_runs(runs, config, output, args.title)
    print(results_markdown(rows, args.title))
    return 0


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
