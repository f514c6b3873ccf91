"""DexYCB -> processed dataset: one clip per camera view, s0 split filelists and prompts.

Official layout read (strictly)::

    <root>/<subject>/<sequence>/meta.yml                    (serials, num_frames, ycb_ids, ycb_grasp_ind, mano_sides)
    <root>/<subject>/<sequence>/<serial>/color_%06d.jpg
                                        aligned_depth_to_color_%06d.png   (uint16 depth, mm)
                                        labels_%06d.npz                   (seg (H,W), joint_2d (1,21,2), joint_3d (1,21,3))

Subjects, sequences and camera serials are discovered from the folders (``calibration``/``models``/``bop`` and
hidden folders are not subjects), so a dataset written in this layout by other tools converts unchanged.
Output per view ``<out>/<subject>/<sequence>/<serial>/``: ``video.mp4``, ``seg_mask.mp4`` (ADE20K colours),
``hand_keypoints.mp4``, ``depth.mp4`` (sensor depth masked to the foreground, or imported from ``--depth-dir``),
``hand_joints.npz`` (ground-truth joints for the keypoint metrics: ``joints_2d`` in the clip's pixels, ``joints_3d``
in mm), ``descriptions.json``; then ``filelists/{train,val,test}/`` (s0 split) and ``prompts.jsonl``.

    python -m data_tools.datasets.dexycb --root /data/dex-ycb --out data/dexycb_processed --num-frames 49 --size 480x720
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
from typing import Sequence

import numpy as np
import yaml

from data_tools.io.atomic import write_json
from data_tools.io.cli import setup_logging
from data_tools.datasets.captions import template_caption
from data_tools.datasets.clips import external_depth_map, write_clip_maps
from data_tools.datasets.runner import ClipJob, add_converter_args, clip_options, convert_dataset
from data_tools.errors import DataError
from data_tools.maps.geometry_maps import normalize_depth
from data_tools.maps.keypoints import NUM_JOINTS, draw_hand_keypoints_video
from data_tools.maps.segmentation import colorize_dexycb_labels
from data_tools.maps.hand_joints import HandKeypoints, map_points
from data_tools.io.video_io import read_image, resample_indices

logger = logging.getLogger(__name__)

COLOR_FORMAT = "color_{:06d}.jpg"
DEPTH_FORMAT = "aligned_depth_to_color_{:06d}.png"
LABEL_FORMAT = "labels_{:06d}.npz"
NOT_SUBJECTS = {"calibration", "models", "bop"}
JOINTS_FILE = "hand_joints.npz"  # read by data_tools.metrics.evaluation (KeypointEvalConfig.file_name)
OUTPUTS = ("video.mp4", "hand_keypoints.mp4", "depth.mp4", "seg_mask.mp4", JOINTS_FILE, "descriptions.json")

# Official subject order of the DexYCB toolkit (folders start with the capture date); used for the split when
# the discovered subjects are official ones, so a partial download keeps the official split.
OFFICIAL_SUBJECT_DATES = ("20200709", "20200813", "20200820", "20200903", "20200908",
                          "20200918", "20200928", "20201002", "20201015", "20201022")
YCB_CLASSES = {
    1: "002_master_chef_can", 2: "003_cracker_box", 3: "004_sugar_box", 4: "005_tomato_soup_can",
    5: "006_mustard_bottle", 6: "007_tuna_fish_can", 7: "008_pudding_box", 8: "009_gelatin_box",
    9: "010_potted_meat_can", 10: "011_banana", 11: "019_pitcher_base", 12: "021_bleach_cleanser",
    13: "024_bowl", 14: "025_mug", 15: "035_power_drill", 16: "036_wood_block", 17: "037_scissors",
    18: "040_large_marker", 19: "051_large_clamp", 20: "052_extra_large_clamp", 21: "061_foam_brick",
}


# ------------------------------------------------------------------------------------------------- split
def s0_split(subject_index: int, sequence_index: int) -> str:
    """The DexYCB toolkit's default "s0" split (seen subjects, views and objects).

    Within each subject's sorted sequences, every 5th (index % 5 == 4) is held out: it goes to ``val`` for the
    first two subjects and to ``test`` for the others; all remaining sequences of all subjects are ``train``.
    All camera views of a sequence share its split.
    """
    if sequence_index % 5 != 4:
        return "train"
    return "val" if subject_index in (0, 1) else "test"


def subject_indices(subjects: Sequence[str]) -> dict[str, int]:
    """Index of each subject in the official order when all are official (matched by capture date),
    else in sorted order."""
    dates = [s[:8] for s in subjects]
    if all(d in OFFICIAL_SUBJECT_DATES for d in dates) and len(set(dates)) == len(dates):
        return {s: OFFICIAL_SUBJECT_DATES.index(s[:8]) for s in subjects}
    return {s: i for i, s in enumerate(sorted(subjects))}


# ------------------------------------------------------------------------------------------------- layout
@dataclasses.dataclass
class DexYCBView:
    """One camera view of one sequence."""

    subject: str
    sequence: str
    serial: str
    subject_index: int
    sequence_index: int
    meta: dict

    @property
    def key(self) -> str:
        return f"{self.subject}/{self.sequence}/{self.serial}"

    @property
    def split(self) -> str:
        return s0_split(self.subject_index, self.sequence_index)


def _subdirs(path: str) -> list[str]:
    return sorted(d for d in os.listdir(path) if not d.startswith(".") and os.path.isdir(os.path.join(path, d)))


def _has_frames(path: str) -> bool:
    return os.path.isfile(os.path.join(path, COLOR_FORMAT.format(0)))


def _is_sequence(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "meta.yml")) or any(_has_frames(os.path.join(path, d)) for d in _subdirs(path))


def read_meta(path: str) -> dict:
    """``meta.yml`` of a sequence as a dict (DataError naming the file when it is not a YAML mapping)."""
    try:
        with open(path, encoding="utf-8") as f:
            meta = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise DataError(path, f"invalid YAML: {exc}") from None
    if not isinstance(meta, dict):
        raise DataError(path, "meta.yml must be a YAML mapping")
    if "num_frames" in meta and (not isinstance(meta["num_frames"], int) or meta["num_frames"] <= 0):
        raise DataError(path, f"num_frames must be a positive integer, got {meta['num_frames']!r}")
    return meta


def discover(root: str) -> tuple[list[DexYCBView], dict[str, str]]:
    """All camera views under ``root`` and the problems found (``{subject/sequence[/serial]: reason}``).

    A subject is a top-level folder holding at least one sequence (a folder with ``meta.yml`` or camera
    folders with ``color_000000.jpg``). Sequence indices count the subject's sorted sequence folders, as the
    toolkit does; serials come from ``meta.yml`` (``serials``) or, without it, from the camera folders.
    """
    if not os.path.isdir(root):
        raise DataError(root, "DexYCB root folder does not exist")
    subjects = [s for s in _subdirs(root) if s not in NOT_SUBJECTS
                and any(_is_sequence(os.path.join(root, s, q)) for q in _subdirs(os.path.join(root, s)))]
    if not subjects:
        raise DataError(root, "no DexYCB subjects found (expected <subject>/<sequence>/<serial>/color_000000.jpg)")
    views, problems = [], {}
    for subject, s_index in subject_indices(subjects).items():
        for q_index, sequence in enumerate(_subdirs(os.path.join(root, subject))):
            seq_dir = os.path.join(root, subject, sequence)
            key = f"{subject}/{sequence}"
            meta_path = os.path.join(seq_dir, "meta.yml")
            try:
                if not _is_sequence(seq_dir):
                    raise DataError(seq_dir, "not a DexYCB sequence (no meta.yml and no camera folder with "
                                             f"{COLOR_FORMAT.format(0)})")
                meta = read_meta(meta_path) if os.path.isfile(meta_path) else {}
            except DataError as exc:
                problems[key] = str(exc)
                continue
            serials = [str(s) for s in meta.get("serials", [])] or [d for d in _subdirs(seq_dir) if _has_frames(os.path.join(seq_dir, d))]
            for serial in serials:
                if not os.path.isdir(os.path.join(seq_dir, serial)):
                    problems[f"{key}/{serial}"] = f"{os.path.join(seq_dir, serial)}: camera folder listed in meta.yml is missing"
                    continue
                views.append(DexYCBView(subject, sequence, serial, s_index, q_index, meta))
    return views, problems


def object_names(meta: dict) -> tuple[list[str], str | None]:
    """Object names of a sequence and the grasped one, from ``meta.yml`` (``object_names`` wins over ``ycb_ids``)."""
    ids = [int(i) for i in meta.get("ycb_ids", [])]
    names = [str(n) for n in meta.get("object_names", [])] or [YCB_CLASSES.get(i, f"object_{i}") for i in ids]
    grasp = meta.get("ycb_grasp_ind")
    grasped = names[grasp] if isinstance(grasp, int) and 0 <= grasp < len(names) else None
    return names, grasped


def describe(view: DexYCBView) -> dict:
    """The ``descriptions.json`` fields of a view (template prompt included)."""
    names, grasped = object_names(view.meta)
    sides = view.meta.get("mano_sides") or []
    side = str(sides[0]) if len(sides) == 1 else ("both" if len(sides) > 1 else None)
    return {"prompt": template_caption(names, grasped, side), "caption_source": "template", "dataset": "dexycb",
            "subject": view.subject, "sequence": view.sequence, "serial": view.serial, "split": view.split,
            "objects": names, "grasped_object": grasped, "hand_side": side}


# ---------------------------------------------------------------------------------------------- conversion
def _frame_count(view_dir: str, meta: dict) -> int:
    if "num_frames" in meta:
        return int(meta["num_frames"])
    names = [n for n in os.listdir(view_dir) if re.fullmatch(r"color_\d{6}\.jpg", n)]
    return len(names)


def _load_labels(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(seg (H,W), joint_2d (21,2), joint_3d (21,3) or None)`` of one ``labels_%06d.npz`` (first hand)."""
    if not os.path.isfile(path):
        raise DataError(path, "label file is missing")
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in ("seg", "joint_2d", "joint_3d") if k in data.files}
    except Exception as exc:  # zip / pickle errors of a corrupt npz
        raise DataError(path, f"cannot read label file ({type(exc).__name__}: {exc})") from None
    for key in ("seg", "joint_2d"):
        if key not in arrays:
            raise DataError(path, f"label file lacks '{key}'")
    seg, j2d = arrays["seg"], arrays["joint_2d"]
    if seg.ndim != 2:
        raise DataError(path, f"'seg' must be (H, W), got shape {seg.shape}")
    if j2d.size < NUM_JOINTS * 2 or j2d.shape[-2:] != (NUM_JOINTS, 2):
        raise DataError(path, f"'joint_2d' must be (1, {NUM_JOINTS}, 2), got shape {j2d.shape}")
    j3d = arrays.get("joint_3d")
    j3d = j3d.reshape(-1, NUM_JOINTS, 3)[0] if j3d is not None and j3d.size >= NUM_JOINTS * 3 else None
    return seg, j2d.reshape(-1, NUM_JOINTS, 2)[0], j3d


def convert_view(job: ClipJob, staging: str) -> None:
    """Convert one camera view (``job.source`` = its folder) into ``staging`` (the runner commits it)."""
    p = job.params
    view_dir = job.source
    n = _frame_count(view_dir, p["meta"])
    if n <= 0:
        raise DataError(view_dir, f"no {COLOR_FORMAT.format(0)} frames")
    indices = resample_indices(n, p["num_frames"]) if p.get("num_frames") else np.arange(n)
    colors, segs, j2ds, j3ds = [], [], [], []
    for i in indices:
        color = read_image(os.path.join(view_dir, COLOR_FORMAT.format(int(i))))
        seg, j2d, j3d = _load_labels(os.path.join(view_dir, LABEL_FORMAT.format(int(i))))
        if colors and color.shape != colors[0].shape:
            raise DataError(os.path.join(view_dir, COLOR_FORMAT.format(int(i))),
                            f"frame size {color.shape[:2]} differs from the first frame's {colors[0].shape[:2]}")
        if seg.shape != color.shape[:2]:
            raise DataError(os.path.join(view_dir, LABEL_FORMAT.format(int(i))),
                            f"'seg' is {seg.shape} but the colour frame is {color.shape[:2]}")
        colors.append(color), segs.append(seg), j2ds.append(j2d), j3ds.append(j3d)
    video, seg = np.stack(colors), np.stack(segs)
    h, w = video.shape[1:3]
    try:
        seg_rgb = colorize_dexycb_labels(seg)
    except ValueError as exc:
        raise DataError(view_dir, f"bad seg labels: {exc}") from None
    joints_3d = None if any(j is None for j in j3ds) else np.stack(j3ds)
    keypoints = draw_hand_keypoints_video(np.stack(j2ds), h, w, joints_3d)
    foreground = seg != 0
    if p.get("depth_dir"):
        depth = external_depth_map(p["depth_dir"], job.key, indices, n, foreground, p.get("depth_kind", "disparity"))
    else:
        raw = np.stack([read_image(os.path.join(view_dir, DEPTH_FORMAT.format(int(i))), grayscale=True) for i in indices])
        if raw.shape[1:] != (h, w):
            raise DataError(os.path.join(view_dir, DEPTH_FORMAT.format(int(indices[0]))),
                            f"depth is {raw.shape[1:]} but the colour frames are {(h, w)}")
        depth = normalize_depth(raw, foreground, near_is_bright=True, invalid_value=0)
    maps = {"video": video, "hand_keypoints": keypoints, "depth": depth, "seg_mask": seg_rgb}
    size = write_clip_maps(staging, maps, p["fps"], p.get("size"), p.get("resize_mode", "crop"),
                           p.get("depth_colormap", "gray"))
    # ground-truth joints for the keypoint metrics: 2D moved like the frames, 3D in mm; missing frames stay -1
    joints_2d = map_points(np.stack(j2ds), (h, w), size, p.get("resize_mode", "crop"))
    if joints_3d is not None:
        joints_3d = np.where(joints_3d == -1, -1.0, joints_3d * 1000.0)
    HandKeypoints(joints_2d, joints_3d).save(os.path.join(staging, JOINTS_FILE))
    write_json(os.path.join(staging, "descriptions.json"),
               {**p["descriptions"], "num_frames": len(indices), "source_frames": n, "size": list(size),
                "fps": p["fps"], "depth_source": "external" if p.get("depth_dir") else "sensor"})


# ------------------------------------------------------------------------------------------------- command
def convert_dexycb(root: str, out: str, subjects: Sequence[str] | None = None, serials: Sequence[str] | None = None,
                   workers: int = 1, overwrite: bool = False, **options) -> dict:
    """Convert a DexYCB download at ``root`` into ``out``; returns the summary (also ``out/conversion_summary.json``).

    ``options``: the per-clip ``runner.CLIP_OPTIONS`` (num_frames, size, resize_mode, fps, depth_dir, depth_kind,
    depth_colormap). Filelists and ``prompts.jsonl`` list every view whose outputs are complete.
    """
    views, problems = discover(root)
    memberships = {v.key: (v.split,) for v in views}
    views = [v for v in views if (not subjects or v.subject in subjects) and (not serials or v.serial in serials)]
    problems = {k: r for k, r in problems.items() if not subjects or k.split("/")[0] in subjects}
    params = clip_options(**options)
    jobs = [ClipJob(v.key, os.path.join(root, v.key), {**params, "meta": v.meta, "descriptions": describe(v)})
            for v in views]
    return convert_dataset(jobs, convert_view, out, OUTPUTS, memberships, workers=workers,
                           overwrite=overwrite, failed=problems, desc="dexycb views")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data_tools.datasets.dexycb",
        description="Convert the official DexYCB download into per-view clips (video, seg_mask, hand_keypoints, "
                    "depth, descriptions), s0 split filelists and prompts.jsonl. Resumable: finished views are "
                    "skipped; failed views are listed in <out>/conversion_summary.json.")
    add_converter_args(parser, "DexYCB root (holds <subject>/<sequence>/<serial>/ folders)",
                       "the sensor depth: <dir>/<subject>/<sequence>/<serial>.npz (key 'depth') or .../depth.mp4")
    parser.add_argument("--subjects", type=lambda s: s.split(","), default=None, help="comma list of subjects only")
    parser.add_argument("--serials", type=lambda s: s.split(","), default=None, help="comma list of camera serials only")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    convert_dexycb(args.root, args.out, args.subjects, args.serials, args.workers, args.overwrite, **clip_options(args))
    return 0

if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
