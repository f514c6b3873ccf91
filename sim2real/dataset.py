"""A labelled dataset in one command: scenarios -> trajectories -> sim2real -> quality control -> index and card.

    python -m sim2real.dataset generate --config configs/dataset/toy.yaml --out DIR [--count N] [--shard i/n]
    python -m sim2real.dataset merge DIR
    python -m sim2real.dataset estimate --config configs/dataset/pam_release.yaml   (GPU-hours, an estimate)

Sequence k (``seq_00042``) is a pure function of the config's seed and k (``data_tools.pose.scenarios``): no
shard count, rerun or other sequence changes it. Each worker takes the sequences ``k = i, i + n, ...`` of its shard
``i/n`` (default: the SLURM array task id i of an array 0..n-1, else RANK / WORLD_SIZE, else 0/1), each under a
claim (``data_tools.runtime.claims``: a duplicated or resubmitted task never does one twice), and writes into
``DIR/sequences/seq_<k>/``: ``scenario.json`` and ``trajectory.npz`` (the draw and its checks), the sim2real
outputs (candidates, first frame, ``video.mp4``, conditions, labels, ``manifest.json``), then ``qc.json`` (scores
and verdict). ``qc.json`` is written last: a sequence without it is redone from where it stopped, so a killed
shard resumes by running it again. ``DIR/dataset_config.yaml`` records the config of the first run; a later
shard or rerun with another config is refused (the QC thresholds are recorded apart: ``merge DIR --set`` changes
them, and every video is judged again).

``merge`` (also run at the end of every shard; safe while others still run) writes ``DIR/index.json`` (accepted,
rejected with their scores and reasons, pending), ``DIR/dataset/`` (the accepted sequences in the processed-dataset
layout with ``filelists/<split>/``, read by ``HOISplit`` and the trainers) and ``DIR/card.md`` with its plots.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import logging
import math
import os
import shutil
import time
import uuid

import numpy as np
import yaml

from data_tools.errors import DataError, read_json_file, require_output_dir
from data_tools.io.cli import positive_int, setup_logging
from data_tools.io.atomic import write_json
from data_tools.io.config import load_config, read_yaml_mapping, to_dict
from data_tools.metrics.quality import THRESHOLDS, QualityConfig, QualityScorer, quality, verdict
from data_tools.pose.scenarios import CheckConfig, NoValidDraw, ScenarioConfig, make_scenario
from data_tools.runtime.claims import claim, exclusive
from data_tools.runtime.sharding import parse_shard
from sim2real.release import ReleaseConfig, check_release, prepare_release
from sim2real.run import Sim2Real, SimInput

logger = logging.getLogger("sim2real.dataset")

CONFIG_RECORD = "dataset_config.yaml"
SEQUENCES = "sequences"
QC_FILE = "qc.json"
FAILED_FILE = "failed.json"   # a sequence whose scenario draws all failed the trajectory checks (final)
THRESHOLD_FIELDS = [field for field, _ in THRESHOLDS.values()]
SCENARIO_FILE = "scenario.json"
TRAJECTORY_FILE = "trajectory.npz"
SPLIT_STREAM = 7   # the random stream of split assignment, apart from the scenario draws


@dataclasses.dataclass
class DatasetConfig:
    """A dataset recipe (YAML: configs/dataset/*.yaml)."""

    sim2real_config: str = "configs/sim2real/toy_world.yaml"
    sim2real_overrides: list[str] = dataclasses.field(default_factory=list)
    count: int = 6
    seed: int = 0
    scenarios: ScenarioConfig = dataclasses.field(default_factory=ScenarioConfig)
    checks: CheckConfig = dataclasses.field(default_factory=CheckConfig)
    qc: QualityConfig = dataclasses.field(default_factory=QualityConfig)
    splits: dict = dataclasses.field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})
    mosaic_size: int = 24             # first frames shown per mosaic in the card

    RANGES = {"count": (1, None), "seed": (0, None), "mosaic_size": (1, None)}

    def __post_init__(self):
        fractions = list(self.splits.values()) if isinstance(self.splits, dict) else []
        if (not fractions or any(not isinstance(f, (int, float)) or isinstance(f, bool) or not 0 <= f < math.inf
                                 for f in fractions) or sum(fractions) <= 0 or not all(
                isinstance(name, str) and name for name in self.splits)):
            raise DataError(None, f"'splits' must map split names to non-negative fractions (e.g. {{train: 0.8, val: "
                                  f"0.2}}), got {self.splits!r}")


def sequence_name(k: int) -> str:
    return f"seq_{k:05d}"


def split_of(seed: int, k: int, splits: dict) -> str:
    """The split of sequence k: a pure function of (seed, k), in proportion to the fractions (split names in sorted
    order, so the order they are written in changes nothing)."""
    names = sorted(splits)
    fractions = np.array([splits[name] for name in names], np.float64)
    u = np.random.default_rng([seed, k, SPLIT_STREAM]).random()
    return names[int(np.searchsorted(np.cumsum(fractions / fractions.sum()), u, side="right").clip(0, len(names) - 1))]


def load_dataset_config(path: str, overrides=()) -> tuple[DatasetConfig, ReleaseConfig]:
    """The dataset config and its sim2real config (a ``ReleaseConfig``: with ``weights.pam`` set, the released
    weights are converted once and used)."""
    config = load_config(DatasetConfig, path, overrides)
    try:
        sim2real = load_config(ReleaseConfig, config.sim2real_config, config.sim2real_overrides)
    except DataError as exc:
        raise DataError(exc.path or path, f"{exc.problem} (sim2real_config of {path})") from None
    return config, sim2real


def config_record(config: DatasetConfig, sim2real: ReleaseConfig) -> dict:
    """What fixes the dataset's content, as recorded in ``DIR/dataset_config.yaml``: everything but ``count`` and
    the QC thresholds (kept apart under ``qc_thresholds``: they only decide the verdicts, which ``merge`` redoes),
    plus the mesh files ``object_meshes`` matched (adding a file to the folder would change every draw).
    ``count`` (the largest any run asked for: which sequences the dataset should have) is kept apart too."""
    dataset = {k: v for k, v in to_dict(config).items() if k != "count"}
    dataset["qc"] = {k: v for k, v in dataset["qc"].items() if k not in THRESHOLD_FIELDS}
    meshes = config.scenarios.object_choices()[len(config.scenarios.objects):] if not config.scenarios.graspxl else []
    return {"dataset": dataset, "sim2real": to_dict(sim2real), "object_mesh_files": meshes,
            "qc_thresholds": config.qc.thresholds(), "count": config.count}


# recorded but not compared: they never change what a sequence is (the thresholds only judge; the sim2real config's
# file and override list are compared as the resolved config, ``sim2real``; where the converted weights are cached
# and when the stages offload to the CPU change neither a weight nor a pixel)
APART = ("qc_thresholds", "count", "dataset.sim2real_config", "dataset.sim2real_overrides", "sim2real.weights.cache",
         "sim2real.weights.offload_below_gib")


def differences(wanted, recorded, prefix: str = "") -> list[str]:
    """Dotted paths of the leaves where two nested mappings differ."""
    if isinstance(wanted, dict) and isinstance(recorded, dict):
        return [path for key in sorted(set(wanted) | set(recorded), key=str)
                for path in differences(wanted.get(key), recorded.get(key), f"{prefix}{key}.")]
    if isinstance(wanted, list) and isinstance(recorded, list) and len(wanted) == len(recorded):
        return [path for i, (a, b) in enumerate(zip(wanted, recorded)) for path in differences(a, b, f"{prefix}{i}.")]
    nan = lambda v: isinstance(v, float) and math.isnan(v)  # noqa: E731  (YAML reads .nan back unequal)
    return [] if wanted == recorded or (nan(wanted) and nan(recorded)) else [prefix.rstrip(".")]


def read_record(out: str) -> dict:
    """``DIR/dataset_config.yaml`` (checked: a dataset folder's record with its parts)."""
    path = os.path.join(out, CONFIG_RECORD)
    if not os.path.isfile(path):
        raise DataError(out, f"not a dataset folder (no {CONFIG_RECORD})")
    recorded = read_yaml_mapping(path, "dataset record")
    missing = [part for part in ("dataset", "sim2real", "qc_thresholds") if not isinstance(recorded.get(part), dict)]
    dataset = recorded.get("dataset") if isinstance(recorded.get("dataset"), dict) else {}
    missing += [f"dataset.{key}" for key in ("qc", "splits") if not isinstance(dataset.get(key), dict)]
    if missing or not isinstance(recorded.get("count"), int):
        raise DataError(path, f"not a dataset record of this version: {missing or ['count']} missing or of the "
                              "wrong type")
    return recorded


@contextlib.contextmanager
def locked_record(out: str):
    """The record of dataset folder ``out``, read under its merge lock (one merge or record update at a time); a
    folder that is not a dataset is refused before any lock file is made in it."""
    read_record(out)
    with exclusive(os.path.join(out, ".merge.lock")):
        yield read_record(out)


def _write_record(path: str, record: dict) -> None:
    from data_tools.io.atomic import write_text

    write_text(path, yaml.safe_dump(record, sort_keys=True))


def record_config(out: str, record: dict) -> dict:
    """Write ``DIR/dataset_config.yaml`` on the first run; later runs must bring the same config. The recorded QC
    thresholds stay (``merge --set`` changes them; a run whose config has others is warned); the recorded count
    grows to the largest asked for. Returns the record as the folder now holds it."""
    path = os.path.join(out, CONFIG_RECORD)
    if not os.path.exists(path):
        os.makedirs(out, exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(yaml.safe_dump(record, sort_keys=True))
        try:
            os.link(tmp, path)        # exclusive: two shards starting together record one config
        except FileExistsError:
            pass
        finally:
            os.remove(tmp)
    recorded = read_record(out)
    wanted = yaml.safe_load(yaml.safe_dump(record, sort_keys=True))   # as the file holds it
    differ = [d for d in differences(wanted, recorded) if not d.startswith(APART)]
    if differ:
        raise DataError(path, f"this dataset was started with another config (differs in {differ}); use a new "
                              "--out, or the recorded config")
    if differences(wanted["qc_thresholds"], recorded["qc_thresholds"]):
        logger.warning("%s: this config's QC thresholds %s differ from the recorded %s, which decide; change those "
                       "with `python -m sim2real.dataset merge %s --set THRESHOLD=VALUE`", path,
                       wanted["qc_thresholds"], recorded["qc_thresholds"], out)
    if wanted["count"] > recorded["count"]:
        return update_record(out, count=wanted["count"])
    return recorded


def update_record(out: str, count: int | None = None, thresholds: dict | None = None) -> dict:
    """Raise the recorded ``count`` to ``count`` and/or replace QC thresholds (checked as a ``QualityConfig`` would
    be), under the folder's lock; returns the record."""
    unknown = sorted(set(thresholds or {}) - set(THRESHOLD_FIELDS))
    if unknown:
        raise DataError(None, f"unknown QC thresholds {unknown}; known: {THRESHOLD_FIELDS}")
    with locked_record(out) as recorded:
        new = {**recorded, "count": max(recorded["count"], count or 0),
               "qc_thresholds": {**recorded["qc_thresholds"], **(thresholds or {})}}
        quality_config(new["dataset"]["qc"], new["qc_thresholds"])   # a bad value, a threshold nothing measures
        if new != recorded:
            if new["qc_thresholds"] != recorded["qc_thresholds"]:
                logger.info("QC thresholds of %s: %s -> %s (every video is judged again at the merge)", out,
                            recorded["qc_thresholds"], new["qc_thresholds"])
            _write_record(os.path.join(out, CONFIG_RECORD), new)
    return new


def quality_config(qc: dict, thresholds: dict) -> QualityConfig:
    """The ``QualityConfig`` of a record's QC part and thresholds (the estimator is not needed to judge)."""
    from data_tools.io.config import from_dict

    return from_dict(QualityConfig, {**{k: v for k, v in qc.items() if k != "estimator"}, **thresholds})


class DatasetWorker:
    """Makes the sequences of one shard: scenario, sim2real, quality control."""

    def __init__(self, config: DatasetConfig, sim2real: ReleaseConfig, out: str):
        self.config, self.sim2real, self.out = config, sim2real, out
        self.scorer = QualityScorer(config.qc)      # estimator / segmenter problems surface before any work
        self._engine: Sim2Real | None = None

    @property
    def engine(self) -> Sim2Real:
        if self._engine is None:   # the released weights: checked and converted once, when first needed
            release = self.sim2real.weights.pam is not None
            self._engine = Sim2Real(prepare_release(self.sim2real) if release else self.sim2real)
        return self._engine

    def judge_with(self, thresholds: dict) -> None:
        """Judge with the dataset's recorded thresholds (which ``merge`` applies), not this run's config's."""
        self.config = dataclasses.replace(self.config, qc=dataclasses.replace(self.config.qc, **thresholds))

    def folder(self, k: int) -> str:
        return os.path.join(self.out, SEQUENCES, sequence_name(k))

    def scenario(self, k: int) -> dict:
        """Draw, check and save sequence k's trajectory (kept when already there); returns the scenario record.
        Raises ``NoValidDraw`` when every draw failed the checks."""
        folder = self.folder(k)
        path = os.path.join(folder, SCENARIO_FILE)
        if os.path.isfile(path) and os.path.isfile(os.path.join(folder, TRAJECTORY_FILE)):
            return read_json_file(path, "scenario file")
        from data_tools.pose.trajectory import save_trajectory

        start = time.perf_counter()
        traj, record = make_scenario(self.config.scenarios, self.config.checks, self.config.seed, k,
                                     sequence_name(k), self.sim2real.mano_path)
        save_trajectory(traj, os.path.join(folder, TRAJECTORY_FILE))
        record = {"name": sequence_name(k), "k": k, "split": split_of(self.config.seed, k, self.config.splits),
                  **record, "scenario_s": round(time.perf_counter() - start, 3)}
        write_json(path, record)
        return record

    def chooser(self, trajectory: str):
        """Picks the first-frame candidate of best ``quality`` against the first frame's ground truth."""
        def choose(images, bundle):
            joints = self.ground_truth(trajectory, bundle.num_frames, tuple(bundle.size))
            first_joints = dataclasses.replace(joints, joints_2d=joints.joints_2d[:1], joints_3d=None)
            seg = bundle.conditions.get("seg_mask")
            scores = [self.scorer.score(np.asarray(image)[None], first_joints, None if seg is None else seg[:1])
                      for image in images]
            ranks = [quality(s) for s in scores]
            best = int(np.argmax(ranks))
            return best, {"chosen_by": "quality", "candidate_scores": [
                {"seed": seed, "quality": round(rank, 4), **s} for seed, rank, s in zip(self.sim2real.seeds, ranks, scores)]}
        return choose

    def ground_truth(self, trajectory: str, frames: int, size: tuple[int, int]):
        """The hand keypoints of the generated frames (the labels ``sim2real`` writes, computed ahead)."""
        from sim2real.labels import sequence_labels

        cfg = self.sim2real
        labels = sequence_labels("trajectory", trajectory, cfg.mano_path, cfg.trajectory_fps)
        return labels.at(frames, size, "resize", cfg.time_sampling).keypoints

    def quality_control(self, folder: str) -> dict:
        """Score the finished video against its labels and write ``qc.json`` (the sequence's last file)."""
        from data_tools.io.video_io import read_video
        from data_tools.maps.hand_joints import HAND_JOINTS_FILE, HandKeypoints

        start = time.perf_counter()
        video = read_video(os.path.join(folder, "video.mp4"))
        joints_path = os.path.join(folder, HAND_JOINTS_FILE)
        joints = HandKeypoints.load(joints_path) if os.path.isfile(joints_path) else None
        seg_path = os.path.join(folder, "seg_mask.mp4")
        seg = read_video(seg_path) if os.path.isfile(seg_path) else None
        scores = self.scorer.score(video, joints, seg)
        accepted, reasons = verdict(scores, self.config.qc)
        record = {"scores": scores, "quality": round(quality(scores), 4), "accepted": accepted, "reasons": reasons,
                  "thresholds": self.config.qc.thresholds(), "qc_s": round(time.perf_counter() - start, 3)}
        write_json(os.path.join(folder, QC_FILE), record)
        return record

    def finished(self, k: int) -> bool:
        """Sequence k has its verdict (qc.json) or its failure (failed.json): nothing left to do."""
        return any(os.path.isfile(os.path.join(self.folder(k), f)) for f in (QC_FILE, FAILED_FILE))

    def run_one(self, k: int, stage: str) -> str:
        """Make sequence k up to ``stage`` (pose | all); returns what happened (done, made, failed, busy)."""
        folder = self.folder(k)
        if self.finished(k):
            return "done"
        with claim(folder) as ours:
            if not ours:
                return "busy"
            if self.finished(k):
                return "done"
            try:
                self.scenario(k)
            except NoValidDraw as exc:   # the same draws fail on every rerun: recorded as final, the shard goes on
                logger.warning("%s: %s", sequence_name(k), exc.problem)
                write_json(os.path.join(folder, FAILED_FILE), {"name": sequence_name(k), "k": k,
                                                               "reason": exc.problem, "rejected_draws": exc.rejected})
                return "failed"
            if stage == "pose":
                return "made"
            trajectory = os.path.join(folder, TRAJECTORY_FILE)
            if not os.path.isfile(os.path.join(folder, "manifest.json")):
                choose = self.chooser(trajectory) if self.config.qc.choose_first_frame else None
                self.engine.run_sequence(SimInput(sequence_name(k), trajectory, "trajectory"), folder, choose=choose)
            record = self.quality_control(folder)
            logger.info("%s: %s (quality %.3f%s)", sequence_name(k), "accepted" if record["accepted"] else "rejected",
                        record["quality"], f"; {', '.join(record['reasons'])}" if record["reasons"] else "")
            return "made"


def shard_from_environment(shard: str | None) -> str | None:
    """``--shard`` when given; else a SLURM array task's ``i/n`` (task id i of an array 0..n-1 with step 1, so that a
    resubmitted task keeps its shard); else None (RANK / WORLD_SIZE or 0/1)."""
    if shard is not None or "SLURM_ARRAY_TASK_ID" not in os.environ:
        return shard
    env = os.environ
    last = env.get("SLURM_ARRAY_TASK_MAX", env["SLURM_ARRAY_TASK_ID"])
    if (env.get("SLURM_ARRAY_TASK_MIN", "0") != "0" or env.get("SLURM_ARRAY_TASK_STEP", "1") != "1"
            or env.get("SLURM_ARRAY_TASK_COUNT", str(int(last) + 1)) != str(int(last) + 1)):
        raise DataError(None, "a SLURM array that is not 0..n-1 with step 1 (some tasks resubmitted, a step, a "
                              "list): give --shard i/n (scripts/slurm/generate.sbatch gives it, from --shards n)")
    return f"{env['SLURM_ARRAY_TASK_ID']}/{int(last) + 1}"


def generate(config_path: str, out: str, overrides=(), count: int | None = None, shard: str | None = None,
             stage: str = "all") -> dict:
    """Make this shard's sequences of the dataset, then merge; returns the counts of what happened."""
    from tqdm import tqdm

    config, sim2real = load_dataset_config(config_path, overrides)
    count = config.count if count is None else count
    if count < 1:
        raise DataError(None, f"--count must be at least 1, got {count}")
    index, shards = parse_shard(shard_from_environment(shard))
    require_output_dir(out, "--out")
    worker = DatasetWorker(config, sim2real, out)   # the estimator and segmenter load here: problems before any record
    if sim2real.weights.pam is not None:
        check_release(sim2real.weights)             # the weight folders, before anything is recorded or drawn
    recorded = record_config(out, config_record(dataclasses.replace(config, count=count), sim2real))
    worker.judge_with(recorded["qc_thresholds"])
    mine = list(range(index, count, shards))
    logger.info("dataset %s: %d sequences, shard %d/%d has %d", out, count, index, shards, len(mine))
    outcome: dict[str, int] = {}
    busy = []
    for k in tqdm(mine, desc=f"dataset shard {index}/{shards}", disable=len(mine) < 2):
        what = worker.run_one(k, stage)
        if what == "busy":
            busy.append(k)
        else:
            outcome[what] = outcome.get(what, 0) + 1
    for k in busy:   # once more at the end: a claim that was held may have been released or gone stale since
        what = worker.run_one(k, stage)
        outcome[what] = outcome.get(what, 0) + 1
    logger.info("shard %d/%d: %s", index, shards, outcome)
    if outcome.get("busy"):
        logger.warning("%d sequence(s) of this shard are held by another live worker and left to it (listed as "
                       "pending by merge); run this shard again after that worker ended to finish any it left",
                       outcome["busy"])
    if outcome.get("failed"):
        logger.warning("%d sequence(s) found no draw passing the trajectory checks (failed.json; listed as failed "
                       "by merge): widen the scenario ranges or the checks", outcome["failed"])
    merge(out)
    return outcome


# ----------------------------------------------------------------------------------------------------- merge
def read_sequences(out: str) -> list[dict]:
    """Every sequence folder's records: ``name``, ``k``, ``scenario``, ``qc``, ``manifest``, ``failed`` (each or
    None); folders with neither a scenario nor a failure (just claimed) are left out. A file of the wrong shape is
    a ``DataError`` naming it."""
    needs = {"scenario": {"k": int, "split": str}, "qc": {"scores": dict, "quality": (int, float)},
             "manifest": {}, "failed": {"k": int, "reason": str}}
    records = []
    for folder in sorted(glob.glob(os.path.join(out, SEQUENCES, "seq_[0-9]*"))):
        name = os.path.basename(folder)
        if not name[4:].isdigit():
            continue
        entry = {"name": name, "k": int(name[4:]), "folder": folder}
        for key, file in (("scenario", SCENARIO_FILE), ("qc", QC_FILE), ("manifest", "manifest.json"),
                          ("failed", FAILED_FILE)):
            path = os.path.join(folder, file)
            entry[key] = read_json_file(path, f"{key} file") if os.path.isfile(path) else None
            if entry[key] is not None and (not isinstance(entry[key], dict) or not all(
                    isinstance(entry[key].get(field), kind) for field, kind in needs[key].items())):
                raise DataError(path, f"not a {key} file of this dataset: needs a mapping with {list(needs[key])}")
        if entry["scenario"] is not None or entry["failed"] is not None:
            records.append(entry)
    return records


def merge(out: str, thresholds: dict | None = None) -> dict:
    """Write ``index.json``, the processed dataset of the accepted sequences and the card; returns the index.
    ``thresholds`` (QC threshold fields) replace the recorded ones first."""
    from data_tools.datasets.hoi_dataset import write_prompts, write_split
    from sim2real.dataset_card import write_card
    from sim2real.export import export_sequence

    if thresholds:
        update_record(out, thresholds=thresholds)
    dataset = os.path.join(out, "dataset")
    with locked_record(out) as recorded:
        qc_config = quality_config(recorded["dataset"]["qc"], recorded["qc_thresholds"])
        records = read_sequences(out)
        accepted, rejected, pending, failed = [], [], [], []
        seen = {entry["k"] for entry in records}
        pending += [{"name": sequence_name(k), "k": k, "split": None}   # not begun (or still drawing its scenario)
                    for k in range(recorded["count"]) if k not in seen]
        for entry in records:
            if entry["scenario"] is None:
                failed.append({key: entry["failed"].get(key) for key in ("name", "k", "reason")})
                continue
            summary = {"name": entry["name"], "k": entry["scenario"]["k"], "split": entry["scenario"]["split"]}
            if entry["qc"] is None:
                pending.append(summary)
                continue
            ok, reasons = verdict(entry["qc"]["scores"], qc_config)   # the recorded thresholds decide
            entry["accepted"] = ok
            summary.update(scores=entry["qc"]["scores"], quality=entry["qc"]["quality"])
            (accepted if ok else rejected).append(summary if ok else {**summary, "reasons": reasons})
        exported = {}
        for item in accepted:
            name, prompt, columns = export_sequence(os.path.join(out, SEQUENCES, item["name"]), dataset)
            exported[name] = (prompt, columns, item["split"])
        for stale in set(os.listdir(dataset) if os.path.isdir(dataset) else ()) - set(exported):
            if stale.startswith("seq_"):   # no longer accepted (thresholds changed)
                shutil.rmtree(os.path.join(dataset, stale))
        splits = {}
        for split in recorded["dataset"]["splits"]:
            names = sorted(n for n, (_, _, s) in exported.items() if s == split)
            folder = os.path.join(dataset, "filelists", split)
            if not names:
                shutil.rmtree(folder, ignore_errors=True)
                continue
            columns = [c for c in exported[names[0]][1] if all(c in exported[n][1] for n in names)]
            write_split(dataset, split, names, [exported[n][0] for n in names], columns=columns)
            splits[split] = len(names)
        names = sorted(exported)
        if exported:
            write_prompts(dataset, names, [exported[n][0] for n in names])
        elif os.path.exists(os.path.join(dataset, "prompts.jsonl")):
            os.remove(os.path.join(dataset, "prompts.jsonl"))
        pending.sort(key=lambda item: item["k"])
        index = {"total": len(records) + sum(k not in seen for k in range(recorded["count"])),
                 "accepted": accepted, "rejected": rejected, "pending": pending,
                 "failed": failed, "splits": splits, "dataset": "dataset", "thresholds": qc_config.thresholds()}
        write_json(os.path.join(out, "index.json"), index)
        write_card(out, [e for e in records if e["scenario"] is not None], index, recorded)
    logger.info("merged %s: %d accepted, %d rejected, %d pending, %d failed", out, len(accepted), len(rejected),
                len(pending), len(failed))
    if rejected and not accepted:
        logger.warning("%s: no sequence passes the QC thresholds %s, so dataset/ is empty; see card.md's score "
                       "histograms, and `merge %s --set THRESHOLD=VALUE` to judge again", out, index["thresholds"], out)
    return index


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sim2real.dataset", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="make this shard's sequences, then merge")
    gen.add_argument("--config", required=True, help="dataset YAML (configs/dataset/toy.yaml, pam_release.yaml)")
    gen.add_argument("--out", required=True, help="dataset folder (shared by all shards)")
    gen.add_argument("--count", type=positive_int, default=None, help="number of sequences (default: the config's count)")
    gen.add_argument("--shard", default=None, help="i/n (default: the SLURM array task, else RANK/WORLD_SIZE, else 0/1)")
    gen.add_argument("--stage", default="all", choices=("all", "pose"),
                     help="pose: only draw and check the scenarios (trajectory.npz, scenario.json)")
    gen.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides, e.g. seed=3")
    gen.add_argument("-v", "--verbose", action="store_true")
    mer = sub.add_parser("merge", help="write index.json, the accepted sequences' dataset and card.md")
    mer.add_argument("out", help="dataset folder")
    mer.add_argument("--set", nargs="*", default=[], metavar="THRESHOLD=VALUE",
                     help=f"new QC thresholds, recorded and applied to every video ({', '.join(THRESHOLD_FIELDS)}; "
                          "null: not gating)")
    mer.add_argument("-v", "--verbose", action="store_true")
    est = sub.add_parser("estimate", help="estimated seconds per video and GPU-hours on one H100 (sim2real.throughput)")
    est.add_argument("--config", required=True, help="dataset YAML")
    est.add_argument("--count", type=positive_int, default=None, help="videos (default: the config's count)")
    est.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    if args.command == "merge":
        from data_tools.io.config import parse_override

        merge(args.out, {".".join(keys): value for keys, value in map(parse_override, args.set)} or None)
    elif args.command == "estimate":
        from sim2real.throughput import summary

        config, sim2real = load_dataset_config(args.config)
        print(summary(sim2real, args.count or config.count))
    else:
        generate(args.config, args.out, args.set, args.count, args.shard, args.stage)
    return 0


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
