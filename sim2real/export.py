"""Lay finished sim2real sequences out as a processed dataset, so the evaluation, the trainers and any
DexYCB-style reader (``data_tools.datasets.hoi_dataset.HOISplit``) consume generated data unchanged.

Per sequence ``<out>/<name>/`` with a ``manifest.json`` it makes ``<dataset>/<name>/``: ``video.mp4`` (the generated
video), one ``<condition>.mp4`` per condition map, ``hand_joints.npz`` / ``pose_labels.npz`` (the ground truth at
the video's frames and size), ``descriptions.json`` (prompt, source and seeds); then ``filelists/<split>/`` over
every exported clip (the columns all clips share) and ``prompts.jsonl``. Files are hard-linked when possible,
else copied. Rerunning (e.g. by each shard) refreshes the clips and rewrites the filelists over all of them.

    python -m sim2real.export outputs/sim2real --dataset outputs/sim2real_dataset
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil

from data_tools.datasets.hoi_dataset import VIDEO_COLUMN, write_prompts, write_split
from data_tools.errors import DataError
from data_tools.io.atomic import write_json
from data_tools.maps.bundle import CONDITION_NAMES
from data_tools.maps.hand_joints import HAND_JOINTS_FILE
from data_tools.pose.labels import POSE_LABELS_FILE

logger = logging.getLogger("sim2real.export")


def _place(src: str, dst: str) -> None:
    """Hard-link ``src`` to ``dst`` (copy across file systems), replacing ``dst``."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    tmp = dst + ".tmp"
    if os.path.lexists(tmp):
        os.remove(tmp)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def export_sequence(seq_dir: str, dataset: str) -> tuple[str, str, list[str]]:
    """Export one finished sequence folder; returns (clip name, prompt, columns it has). The outputs are taken from
    ``seq_dir`` by their names in the manifest, wherever the folder was made from or has moved since."""
    with open(os.path.join(seq_dir, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    name = manifest["name"]
    clip = os.path.join(dataset, name)
    outputs = {key: os.path.join(seq_dir, os.path.basename(os.path.normpath(manifest["outputs"][key])))
               for key in ("video", "conditions")}
    _place(outputs["video"], os.path.join(clip, "video.mp4"))
    columns = [VIDEO_COLUMN]
    conditions = outputs["conditions"]
    for condition in CONDITION_NAMES:
        path = os.path.join(conditions, f"{condition}.mp4")
        if os.path.isfile(path):
            _place(path, os.path.join(clip, f"{condition}.mp4"))
            columns.append(condition)
    for label in (HAND_JOINTS_FILE, POSE_LABELS_FILE):
        if os.path.isfile(os.path.join(seq_dir, label)):
            _place(os.path.join(seq_dir, label), os.path.join(clip, label))
    write_json(os.path.join(clip, "descriptions.json"),
               {"prompt": manifest["prompt"], "dataset": "sim2real", "source": manifest["input"],
                "seeds": manifest["seeds"], "num_frames": manifest["num_frames"], "size": manifest["size"],
                "fps": manifest["config"].get("fps"), "ground_truth": os.path.isfile(os.path.join(clip, HAND_JOINTS_FILE))})
    return name, manifest["prompt"], columns


def export_dataset(out: str, dataset: str, split: str = "train") -> dict:
    """Export every finished sequence under ``out`` into ``dataset``; returns ``{"clips", "columns", "split"}``."""
    if not os.path.isdir(out):
        raise DataError(out, "sim2real output folder does not exist")
    done = sorted(d for d in os.listdir(out) if os.path.isfile(os.path.join(out, d, "manifest.json")))
    if not done:
        raise DataError(out, "no finished sequences (<name>/manifest.json) to export")
    exported = [export_sequence(os.path.join(out, d), dataset) for d in done]
    names, prompts = [e[0] for e in exported], [e[1] for e in exported]
    columns = [c for c in exported[0][2] if all(c in e[2] for e in exported)]
    write_split(dataset, split, names, prompts, columns=columns)
    write_prompts(dataset, names, prompts)
    logger.info("exported %d sequences to %s (split %s, columns %s)", len(names), dataset, split, columns)
    return {"clips": names, "columns": columns, "split": split}


def main(argv=None) -> int:
    from data_tools.io.cli import setup_logging

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="sim2real output folder (holds <name>/manifest.json)")
    parser.add_argument("--dataset", required=True, help="processed-dataset folder to write")
    parser.add_argument("--split", default="train", help="split to list the clips in (default: train)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    export_dataset(args.out, args.dataset, args.split)
    return 0


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
