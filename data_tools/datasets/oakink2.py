"""OakInk2 -> processed dataset: 49-frame clips per camera with hand keypoints and seg masks from the MANO
annotations, depth (rendered or imported), captions from the task descriptions, and split filelists.

Official layout read (as the OakInk2 toolkit organises it)::

    <root>/data/<seq_token>/<camera_serial>/<frame_id:06d>.png|jpg
    <root>/anno_preview/<seq_token>.pkl     cam_def {serial: view}, cam_intr/cam_extr {view: {frame_id: K (3,3) |
                                            world->camera (4,4)}}, raw_mano {frame_id: {lh__/rh__ pose_coeffs (1,16,4)
                                            wxyz quaternions, betas (1,10), tsl (1,3)}}, obj_list, obj_transf
                                            {obj_id: {frame_id: (4,4) object->world}}
    <root>/object_preview/align_ds/<obj_id>/<one .obj or .ply>   (optional: object masks and depth)
    <root>/object_preview/obj_desc.json     {obj_id: {"obj_name": ...}}   (optional: captions)
    <root>/program/desc_info/<seq_token>.json {"((lh range), (rh range))": {"seg_desc": ...}}   (optional: captions)

A camera's frames (sorted by id) are cut into consecutive clips of ``--video-len`` frames (49; a shorter tail is
dropped), each written to ``<out>/<seq_token>/<serial>/<k>/``. Hands come from the MANO layer of the pose stage
(``--mano-dir`` with MANO_RIGHT.pkl/MANO_LEFT.pkl, or the built-in procedural hand), posed as the toolkit's
manotorch layer does (flat hand mean, wrist-centred, then ``tsl``), projected with each frame's camera and
rendered through ``data_tools.pose.render``.

    python -m data_tools.datasets.oakink2 --root /data/OakInk-v2 --out data/oakink2_processed --mano-dir assets/mano_v1_2/models
"""
from __future__ import annotations

import argparse
import ast
import functools
import glob
import json
import logging
import os
import pickle
import re
from typing import Sequence

import numpy as np

from data_tools.io.atomic import write_json
from data_tools.pose.camera import Camera
from data_tools.io.cli import setup_logging
from data_tools.datasets.captions import template_caption
from data_tools.datasets.clips import external_depth_map, write_clip_maps
from data_tools.datasets.runner import ClipJob, add_converter_args, clip_options, convert_dataset
from data_tools.errors import DataError
from data_tools.maps.segmentation import BACKGROUND_CLASS, HAND_CLASS
from data_tools.io.video_io import read_image, resample_indices

logger = logging.getLogger(__name__)

VIDEO_LEN = 49
OUTPUTS = ("video.mp4", "hand_keypoints.mp4", "depth.mp4", "seg_mask.mp4", "descriptions.json")
FRAME_RE = re.compile(r"^(\d+)\.(png|jpg|jpeg)$", re.IGNORECASE)
HANDS = (("lh", "left"), ("rh", "right"))
MAX_OBJECT_CLASS = HAND_CLASS - 1  # object class ids 1..148 (149 is the hand, 150 the background)


# --------------------------------------------------------------------------------------------------- layout
def frame_files(cam_dir: str) -> dict[int, str]:
    """``{frame_id: path}`` of a camera folder's frames (``000123.png`` / ``.jpg``)."""
    frames = {}
    for name in os.listdir(cam_dir):
        match = FRAME_RE.match(name)
        if match:
            frames[int(match.group(1))] = os.path.join(cam_dir, name)
    return frames


def discover(root: str, video_len: int = VIDEO_LEN) -> tuple[list[tuple[str, str, str, list[int]]], dict[str, str]]:
    """Clips ``(key, seq_token, serial, frame_ids)`` and problems ``{seq_token[/serial]: reason}``.

    Sequences are the annotation files ``anno_preview/*.pkl``; their cameras are the sub-folders of
    ``data/<seq_token>/`` holding frames. Only the folders are listed here (annotations load per clip).
    """
    anno_dir, data_dir = os.path.join(root, "anno_preview"), os.path.join(root, "data")
    for folder in (anno_dir, data_dir):
        if not os.path.isdir(folder):
            raise DataError(folder, "missing: an OakInk2 root holds data/ and anno_preview/ (see the OakInk2 toolkit)")
    clips, problems = [], {}
    tokens = sorted(os.path.splitext(n)[0] for n in os.listdir(anno_dir) if n.endswith(".pkl"))
    if not tokens:
        raise DataError(anno_dir, "no <seq_token>.pkl annotation files")
    for token in tokens:
        seq_dir = os.path.join(data_dir, token)
        if not os.path.isdir(seq_dir):
            problems[token] = f"{seq_dir}: no frames folder for this annotated sequence"
            continue
        cameras = sorted(d for d in os.listdir(seq_dir) if os.path.isdir(os.path.join(seq_dir, d)))
        if not cameras:
            problems[token] = f"{seq_dir}: no camera folders"
        for serial in cameras:
            ids = sorted(frame_files(os.path.join(seq_dir, serial)))
            if len(ids) < video_len:
                problems[f"{token}/{serial}"] = (f"{os.path.join(seq_dir, serial)}: {len(ids)} frames, fewer than one "
                                                 f"clip of {video_len}")
                continue
            for k in range(len(ids) // video_len):
                clips.append((f"{token}/{serial}/{k}", token, serial, ids[k * video_len:(k + 1) * video_len]))
    return clips, problems


@functools.lru_cache(maxsize=2)
def load_annotation(path: str) -> dict:
    """One ``anno_preview`` pickle (cached per process: the clips of a sequence share it)."""
    if not os.path.isfile(path):
        raise DataError(path, "annotation file does not exist")
    try:
        with open(path, "rb") as f:
            anno = pickle.load(f)
    except Exception as exc:  # truncated / foreign pickles
        raise DataError(path, f"cannot unpickle annotation ({type(exc).__name__}: {exc})") from None
    missing = [k for k in ("cam_def", "cam_intr", "cam_extr", "raw_mano") if k not in anno]
    if missing:
        raise DataError(path, f"annotation lacks keys {missing}")
    return anno


def _array(value, shape: tuple | None, path: str, what: str) -> np.ndarray:
    """A numpy/torch annotation value as float64 of ``shape`` (None: flattened)."""
    arr = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value, dtype=np.float64)
    if shape is None:
        return arr.reshape(-1)
    if arr.size != int(np.prod(shape)):
        raise DataError(path, f"{what} has shape {arr.shape}, expected {shape}")
    return arr.reshape(shape)


def quat_to_axis_angle(quat: np.ndarray) -> np.ndarray:
    """Quaternions ``(..., 4)`` in (w, x, y, z) order -> axis-angle ``(..., 3)``."""
    quat = np.asarray(quat, dtype=np.float64)
    quat = quat / np.linalg.norm(quat, axis=-1, keepdims=True).clip(1e-12)
    quat = np.where(quat[..., :1] < 0, -quat, quat)
    sin_half = np.linalg.norm(quat[..., 1:], axis=-1, keepdims=True)
    angle = 2 * np.arctan2(sin_half, quat[..., :1])
    return quat[..., 1:] * np.where(sin_half > 1e-12, angle / np.maximum(sin_half, 1e-12), 2.0)


def frame_camera(anno: dict, serial: str, frame_id: int, height: int, width: int, path: str) -> Camera:
    """The camera of ``serial`` at ``frame_id`` (intrinsics at the stored frame size)."""
    view = anno["cam_def"].get(serial, serial)
    try:
        k = _array(anno["cam_intr"][view][frame_id], (3, 3), path, f"cam_intr[{view}][{frame_id}]")
        extr = _array(anno["cam_extr"][view][frame_id], (4, 4), path, f"cam_extr[{view}][{frame_id}]")
    except KeyError as exc:
        raise DataError(path, f"no camera annotation for camera {serial} ({view}) at frame {frame_id} "
                              f"(missing key {exc})") from None
    return Camera(k[0, 0], k[1, 1], k[0, 2], k[1, 2], height, width, rotation=extr[:3, :3], translation=extr[:3, 3])


# ------------------------------------------------------------------------------------------------- hands
@functools.lru_cache(maxsize=4)
def hand_model(side: str, mano_dir: str | None):
    """The pose stage's hand layer for ``side`` (MANO from ``mano_dir``, else the procedural hand)."""
    from data_tools.pose.procedural_hand import load_hand_model

    path = None
    if mano_dir:
        path = os.path.join(mano_dir, f"MANO_{side.upper()}.pkl")
        if not os.path.isfile(path):
            raise DataError(path, "MANO model file not found in --mano-dir")
    return load_hand_model(path, side=side, flat_hand_mean=True)


def pose_hands(anno: dict, frame_ids: Sequence[int], mano_dir: str | None, path: str) -> dict[str, dict]:
    """World-space vertices ``(T, V, 3)``, joints ``(T, 21, 3)`` and faces of both hands over ``frame_ids``.

    As the toolkit's manotorch layer: quaternion pose (16 joints), flat hand mean, wrist at the origin, then ``tsl``.
    """
    import torch

    hands = {}
    for prefix, side in HANDS:
        quats, betas, tsl = [], [], []
        for fid in frame_ids:
            params = anno["raw_mano"].get(fid)
            if params is None or f"{prefix}__pose_coeffs" not in params:
                raise DataError(path, f"raw_mano has no {prefix}__pose_coeffs for frame {fid}")
            quats.append(_array(params[f"{prefix}__pose_coeffs"], (16, 4), path, f"{prefix}__pose_coeffs"))
            beta = params.get(f"{prefix}__betas")
            betas.append(np.zeros(10) if beta is None else _array(beta, None, path, f"{prefix}__betas"))
            tsl.append(_array(params[f"{prefix}__tsl"], (3,), path, f"{prefix}__tsl"))
        model = hand_model(side, mano_dir)
        aa = quat_to_axis_angle(np.stack(quats)).reshape(len(frame_ids), 48)
        shape = np.stack(betas)[:, :model.num_betas]
        with torch.no_grad():
            out = model(global_orient=aa[:, :3], hand_pose=aa[:, 3:], betas=shape)
        wrist = out.joints[:, :1]
        offset = torch.as_tensor(np.stack(tsl), dtype=wrist.dtype)[:, None] - wrist
        hands[side] = {"vertices": (out.vertices + offset).double().numpy(),
                       "joints": (out.joints + offset).double().numpy(), "faces": np.asarray(model.faces)}
    return hands


# ------------------------------------------------------------------------------------------------ objects
@functools.lru_cache(maxsize=64)
def object_mesh(root: str, obj_id: str):
    """The ``ObjectMesh`` of ``object_preview/align_ds/<obj_id>/`` (its one .obj/.ply), or None without a mesh."""
    from data_tools.pose.objects import load_mesh

    folder = os.path.join(root, "object_preview", "align_ds", str(obj_id))
    files = sorted(glob.glob(os.path.join(glob.escape(folder), "*.obj")) +
                   glob.glob(os.path.join(glob.escape(folder), "*.ply")))
    return load_mesh(files[0], name=str(obj_id)) if files else None


def object_vertices(anno: dict, obj_id: str, mesh_vertices: np.ndarray, frame_ids: Sequence[int], path: str) -> np.ndarray:
    """World vertices ``(T, V, 3)`` of an object over ``frame_ids`` (``obj_transf`` object->world 4x4)."""
    out = []
    for fid in frame_ids:
        try:
            transf = _array(anno["obj_transf"][obj_id][fid], (4, 4), path, f"obj_transf[{obj_id}][{fid}]")
        except KeyError:
            raise DataError(path, f"no obj_transf for object {obj_id} at frame {fid}") from None
        out.append(mesh_vertices @ transf[:3, :3].T + transf[:3, 3])
    return np.stack(out)


# ------------------------------------------------------------------------------------------------ captions
def _frame_range(key: str) -> tuple[int, int] | None:
    """Enclosing frame range of a desc_info key ``"((lh0, lh1), (rh0, rh1))"`` (either hand may be None)."""
    try:
        ranges = [r for r in ast.literal_eval(key) if r is not None]
    except (ValueError, SyntaxError):
        return None
    return (min(r[0] for r in ranges), max(r[1] for r in ranges)) if ranges else None


def clip_caption(root: str, token: str, frame_ids: Sequence[int], objects: Sequence[str]) -> dict:
    """Caption fields for a clip: the task description overlapping the clip most, object names, a template prompt."""
    names_path = os.path.join(root, "object_preview", "obj_desc.json")
    names = {}
    if os.path.isfile(names_path):
        with open(names_path, encoding="utf-8") as f:
            names = {k: v.get("obj_name", k) if isinstance(v, dict) else str(v) for k, v in json.load(f).items()}
    object_names = [names.get(o, str(o)) for o in objects]
    action = None
    desc_path = os.path.join(root, "program", "desc_info", f"{token}.json")
    if os.path.isfile(desc_path):
        with open(desc_path, encoding="utf-8") as f:
            desc_info = json.load(f)
        lo, hi, best = min(frame_ids), max(frame_ids), 0
        for key, value in desc_info.items():
            span = _frame_range(key)
            text = value.get("seg_desc") if isinstance(value, dict) else None
            overlap = 0 if span is None else min(hi, span[1]) - max(lo, span[0])
            if text and overlap > best:
                best, action = overlap, text
    prompt = template_caption(object_names[:1] if action else object_names, hand_side="both", action=action)
    return {"prompt": prompt, "caption_source": "template", "objects": object_names, "action": action,
            "hand_side": "both"}


# ---------------------------------------------------------------------------------------------- conversion
def hand_joints_per_frame(cameras: Sequence[Camera], hands: dict[str, dict]) -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``(T, 2, 21, 2)`` and camera-frame joints ``(T, 2, 21, 3)`` of both hands, ordered per frame
    farther hand first (so the nearer hand's skeleton is drawn on top)."""
    joints_2d, joints_cam = [], []
    for t, camera in enumerate(cameras):
        cam = np.stack([camera.to_camera(hands[side]["joints"][t]) for side in hands])    # (2, 21, 3)
        order = np.argsort(-cam[:, 0, 2], kind="stable")
        joints_cam.append(cam[order])
        joints_2d.append(camera.project(cam[order], world=False))
    return np.stack(joints_2d), np.stack(joints_cam)


def convert_clip(job: ClipJob, staging: str) -> None:
    """Convert one clip (``job.params``: token, serial, frame_ids and options) into ``staging``."""
    from data_tools.pose.render import Part, RenderConfig, condition_maps, render_parts  # the pose stage's renderer

    p = job.params
    root, token, serial = job.source, p["token"], p["serial"]
    anno_path = os.path.join(root, "anno_preview", f"{token}.pkl")
    anno = load_annotation(anno_path)
    files = frame_files(os.path.join(root, "data", token, serial))
    indices = resample_indices(len(p["frame_ids"]), p["num_frames"]) if p.get("num_frames") else np.arange(len(p["frame_ids"]))
    frame_ids = [p["frame_ids"][i] for i in indices]
    missing = [fid for fid in frame_ids if fid not in files]
    if missing:
        raise DataError(os.path.join(root, "data", token, serial), f"frames {missing[:5]} disappeared")
    video = np.stack([read_image(files[fid]) for fid in frame_ids])
    h, w = video.shape[1:3]
    cameras = [frame_camera(anno, serial, fid, h, w, anno_path) for fid in frame_ids]
    hands = pose_hands(anno, frame_ids, p.get("mano_dir"), anno_path)
    objects = [str(o) for o in anno.get("obj_list", [])]
    meshes = [(hands[side]["vertices"], hands[side]["faces"], HAND_CLASS) for side in hands]
    for index, obj_id in enumerate(objects):
        mesh = object_mesh(root, obj_id)
        if mesh is not None:  # objects without a mesh are not drawn
            meshes.append((object_vertices(anno, obj_id, mesh.vertices, frame_ids, anno_path), mesh.faces,
                           index % MAX_OBJECT_CLASS + 1))
    config = RenderConfig(height=h, width=w, fps=p["fps"], table=False)
    frames = [render_parts([Part(v[t], f, c, (200, 200, 200)) for v, f, c in meshes], camera, config)
              for t, camera in enumerate(cameras)]
    maps = condition_maps(frames, *hand_joints_per_frame(cameras, hands), config)
    if p.get("depth_dir"):
        foreground = np.stack([fr.classes for fr in frames]) != BACKGROUND_CLASS
        maps["depth"] = external_depth_map(p["depth_dir"], job.key, indices, len(p["frame_ids"]), foreground,
                                           p.get("depth_kind", "disparity"))
    maps = {"video": video, **{k: maps[k] for k in ("hand_keypoints", "depth", "seg_mask")}}
    size = write_clip_maps(staging, maps, p["fps"], p.get("size"), p.get("resize_mode", "crop"),
                           p.get("depth_colormap", "gray"))
    write_json(os.path.join(staging, "descriptions.json"), {
        **clip_caption(root, token, frame_ids, objects), "dataset": "oakink2", "sequence": token, "serial": serial,
        "view": anno["cam_def"].get(serial), "frame_ids": [int(f) for f in frame_ids], "split": p["split"],
        "num_frames": len(frame_ids), "size": list(size), "fps": p["fps"],
        "depth_source": "external" if p.get("depth_dir") else "rendered", "hand_model": p.get("mano_dir") or "procedural"})


# ------------------------------------------------------------------------------------------------- command
def assign_splits(keys: Sequence[str], num_train: int) -> dict[str, str]:
    """The reference's split: the first ``num_train`` clips (sorted) train, the rest val; test = val."""
    return {key: "train" if i < num_train else "val" for i, key in enumerate(sorted(keys))}


def convert_oakink2(root: str, out: str, video_len: int = VIDEO_LEN, mano_dir: str | None = None,
                    num_train: int = 3000, workers: int = 1, overwrite: bool = False, **options) -> dict:
    """Convert an OakInk2 download at ``root`` into ``out``; returns the summary (also ``out/conversion_summary.json``).

    ``options``: the per-clip ``runner.CLIP_OPTIONS`` (num_frames, size, resize_mode, fps, depth_dir, depth_kind,
    depth_colormap).
    """
    if mano_dir is None:
        logger.warning("no --mano-dir: hands use the built-in procedural hand, not MANO (keypoints and masks are "
                       "approximate)")
    clips, problems = discover(root, video_len)
    splits = assign_splits([c[0] for c in clips], num_train)
    params = {**clip_options(**options), "mano_dir": mano_dir}
    jobs = [ClipJob(key, root, {**params, "token": token, "serial": serial, "frame_ids": ids, "split": splits[key]})
            for key, token, serial, ids in clips]
    memberships = {key: ("train",) if split == "train" else ("val", "test") for key, split in splits.items()}
    return convert_dataset(jobs, convert_clip, out, OUTPUTS, memberships, workers=workers, overwrite=overwrite,
                           failed=problems, desc="oakink2 clips")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data_tools.datasets.oakink2",
        description="Convert the official OakInk2 download into 49-frame clips per camera (video, hand keypoints "
                    "and seg masks rendered from the MANO annotations, depth, descriptions), filelists and "
                    "prompts.jsonl. Resumable; failures are listed in <out>/conversion_summary.json.")
    add_converter_args(parser, "OakInk2 root (holds data/, anno_preview/, object_preview/, program/)",
                       "rendering the hands' and objects' depth: <dir>/<seq>/<serial>/<k>.npz or .../depth.mp4")
    parser.add_argument("--video-len", type=int, default=VIDEO_LEN, help=f"frames per clip (default {VIDEO_LEN})")
    parser.add_argument("--mano-dir", default=None,
                        help="folder with MANO_RIGHT.pkl and MANO_LEFT.pkl (default: the built-in procedural hand)")
    parser.add_argument("--num-train", type=int, default=3000,
                        help="the first N clips (sorted) form train, the rest val (= test); default 3000 as the reference")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    convert_oakink2(args.root, args.out, args.video_len, args.mano_dir, args.num_train, args.workers, args.overwrite,
                    **clip_options(args))
    return 0

if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
