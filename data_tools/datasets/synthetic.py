"""Small synthetic downloads in the official DexYCB and OakInk2 layouts, with known content.

Tests convert them end to end and check pixels against the values defined here; benchmarks time the
converters on them at full resolution. DexYCB views show a hand box (label 255, 500 mm) and an object box
(YCB id 5, 800 mm) on a 1500 mm background, with a flat 21-joint hand that moves right over time. OakInk2
sequences hold two flat MANO hands and one box object in front of a pinhole camera.
"""
from __future__ import annotations

import json
import os
import pickle
from typing import Sequence

import cv2
import numpy as np
import yaml

# ------------------------------------------------------------------------------------------------- DexYCB
DEXYCB_SUBJECTS = ("20200709-subject-01", "20200820-subject-03")  # official indices 0 (-> val) and 2 (-> test)
DEXYCB_SERIAL = "836212060125"
HAND_LABEL, OBJECT_LABEL = 255, 5
HAND_DEPTH_MM, OBJECT_DEPTH_MM, BACKGROUND_DEPTH_MM = 500, 800, 1500
_HAND_BOX = (0.09, 0.41, 0.08, 0.38)    # top, bottom, left, right as fractions of the image
_OBJECT_BOX = (0.53, 0.91, 0.52, 0.94)


def _box(frac, height: int, width: int) -> tuple[slice, slice]:
    top, bottom, left, right = frac
    return slice(round(top * height), round(bottom * height)), slice(round(left * width), round(right * width))


def dexycb_boxes(height: int, width: int) -> dict[str, tuple[slice, slice]]:
    """Row/column slices of the hand and object boxes at a frame size."""
    return {"hand": _box(_HAND_BOX, height, width), "object": _box(_OBJECT_BOX, height, width)}


def dexycb_joints(t: int, height: int, width: int) -> np.ndarray:
    """Flat hand at frame ``t``: wrist at the bottom left, five straight fingers, moving right over time."""
    scale = height / 64
    wrist = np.array([width / 8 + 3 * scale * t, 0.875 * height])
    joints = [wrist]
    for finger in range(5):
        angle = np.radians(-150 + 30 * finger)
        direction = np.array([abs(np.cos(angle)) * (1 if finger else 0.6) + 0.3, -abs(np.sin(angle)) - 0.2])
        joints.extend(wrist + direction * 7 * scale * k for k in range(1, 5))
    return np.stack(joints)


def write_dexycb_view(view_dir: str, num_frames: int, height: int = 64, width: int = 96,
                      missing_joints_frame: int | None = None) -> None:
    """One camera folder: ``color_*.jpg``, ``aligned_depth_to_color_*.png``, ``labels_*.npz``."""
    os.makedirs(view_dir, exist_ok=True)
    boxes = dexycb_boxes(height, width)
    for t in range(num_frames):
        color = np.full((height, width, 3), 90, np.uint8)
        color[boxes["hand"]], color[boxes["object"]] = (200, 150, 120), (230, 200, 30)
        cv2.imwrite(os.path.join(view_dir, f"color_{t:06d}.jpg"), cv2.cvtColor(color, cv2.COLOR_RGB2BGR))
        seg = np.zeros((height, width), np.uint8)
        seg[boxes["hand"]], seg[boxes["object"]] = HAND_LABEL, OBJECT_LABEL
        depth = np.full((height, width), BACKGROUND_DEPTH_MM, np.uint16)
        depth[boxes["hand"]], depth[boxes["object"]] = HAND_DEPTH_MM, OBJECT_DEPTH_MM
        depth[0, 0] = 0  # a sensor hole
        cv2.imwrite(os.path.join(view_dir, f"aligned_depth_to_color_{t:06d}.png"), depth)
        j2d = dexycb_joints(t, height, width)[None].astype(np.float32)
        if t == missing_joints_frame:
            j2d[:] = -1
        j3d = np.concatenate([j2d[0], np.linspace(0.5, 0.6, 21)[:, None]], axis=1)[None].astype(np.float32)
        np.savez(os.path.join(view_dir, f"labels_{t:06d}.npz"), seg=seg, joint_2d=j2d, joint_3d=j3d,
                 pose_y=np.zeros((1, 3, 4), np.float32), pose_m=np.zeros((1, 51), np.float32))


def write_dexycb(root: str, subjects: Sequence[str] = DEXYCB_SUBJECTS, sequences: int = 5,
                 serials: Sequence[str] = (DEXYCB_SERIAL,), num_frames: int = 3, height: int = 64, width: int = 96,
                 missing_joints_frame: int | None = 1) -> str:
    """``subjects`` x ``sequences`` x ``serials`` views with ``meta.yml`` (objects 5 and 14, grasping 5, right
    hand), plus a ``calibration/`` folder that is not a subject."""
    os.makedirs(os.path.join(root, "calibration"), exist_ok=True)
    for subject in subjects:
        for q in range(sequences):
            seq_dir = os.path.join(root, subject, f"20200709_1411{q:02d}")
            os.makedirs(seq_dir, exist_ok=True)
            meta = {"serials": list(serials), "num_frames": num_frames, "ycb_ids": [OBJECT_LABEL, 14],
                    "ycb_grasp_ind": 0, "mano_sides": ["right"], "mano_calib": ["subject_right"]}
            with open(os.path.join(seq_dir, "meta.yml"), "w") as f:
                yaml.safe_dump(meta, f)
            for serial in serials:
                write_dexycb_view(os.path.join(seq_dir, serial), num_frames, height, width, missing_joints_frame)
    return root


# ------------------------------------------------------------------------------------------------ OakInk2
OAKINK2_TOKEN = "scene_01__A001++seq__demo"
OAKINK2_FIRST_FRAME = 100
RH_START, LH_TSL, OBJECT_TSL = np.array([0.02, 0.0, 0.5]), np.array([-0.03, 0.02, 0.65]), np.array([0.0, -0.13, 0.55])
RH_STEP = 0.01  # the right hand moves +x by 1 cm per frame


def oakink2_intrinsics(height: int, width: int) -> np.ndarray:
    f = 1.25 * height
    return np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]])


def oakink2_rh_tsl(frame_id: int) -> np.ndarray:
    return RH_START + [RH_STEP * (frame_id - OAKINK2_FIRST_FRAME), 0, 0]


def write_oakink2_sequence(root: str, token: str = OAKINK2_TOKEN, num_frames: int = 7, height: int = 48,
                           width: int = 64, drop_mano_frame: int | None = None) -> list[int]:
    """Annotation pickle + frames of cameras ``cam_a`` (at the origin) and ``cam_b`` (5 cm behind) for one
    sequence; MANO parameters as torch tensors like the release. Returns the frame ids."""
    import torch

    ids = list(range(OAKINK2_FIRST_FRAME, OAKINK2_FIRST_FRAME + num_frames))
    k = oakink2_intrinsics(height, width)
    flat = torch.tensor([[1.0, 0, 0, 0]]).repeat(16, 1)[None]  # (1, 16, 4) wxyz identity: flat hand
    extr_b = np.eye(4)
    extr_b[:3, 3] = [0.0, 0.0, 0.05]
    views = ("allocentric_left", "egocentric")
    anno = {"cam_def": dict(zip(("cam_a", "cam_b"), views)), "cam_selection": list(views), "frame_id_list": ids,
            "mocap_frame_id_list": ids, "obj_list": ["O01"],
            "cam_intr": {v: {f: k.copy() for f in ids} for v in views},
            "cam_extr": {views[0]: {f: np.eye(4) for f in ids}, views[1]: {f: extr_b for f in ids}},
            "raw_mano": {}, "obj_transf": {"O01": {}}}
    for fid in ids:
        transf = np.eye(4)
        transf[:3, 3] = OBJECT_TSL
        anno["obj_transf"]["O01"][fid] = transf
        if fid == drop_mano_frame:
            continue
        anno["raw_mano"][fid] = {
            "rh__pose_coeffs": flat.clone(), "rh__betas": torch.zeros(1, 10),
            "rh__tsl": torch.tensor(oakink2_rh_tsl(fid), dtype=torch.float32)[None],
            "lh__pose_coeffs": flat.clone(), "lh__betas": torch.zeros(1, 10),
            "lh__tsl": torch.tensor(LH_TSL, dtype=torch.float32)[None]}
    os.makedirs(os.path.join(root, "anno_preview"), exist_ok=True)
    with open(os.path.join(root, "anno_preview", f"{token}.pkl"), "wb") as f:
        pickle.dump(anno, f)
    for serial in ("cam_a", "cam_b"):
        cam_dir = os.path.join(root, "data", token, serial)
        os.makedirs(cam_dir, exist_ok=True)
        for fid in ids:
            frame = np.full((height, width, 3), min(255, 60 + 10 * (fid - ids[0])), np.uint8)
            cv2.imwrite(os.path.join(cam_dir, f"{fid:06d}.png"), frame)
    return ids


def write_oakink2_assets(root: str, token: str = OAKINK2_TOKEN) -> None:
    """Object mesh ``O01`` (a 5 x 4 x 4 cm box) with its name, and two task descriptions for ``token``."""
    import trimesh

    mesh_dir = os.path.join(root, "object_preview", "align_ds", "O01")
    os.makedirs(mesh_dir, exist_ok=True)
    trimesh.creation.box(extents=(0.05, 0.04, 0.04)).export(os.path.join(mesh_dir, "O01.obj"))
    with open(os.path.join(root, "object_preview", "obj_desc.json"), "w") as f:
        json.dump({"O01": {"obj_name": "green box"}}, f)
    os.makedirs(os.path.join(root, "program", "desc_info"), exist_ok=True)
    with open(os.path.join(root, "program", "desc_info", f"{token}.json"), "w") as f:
        json.dump({"((100, 103), (100, 103))": {"seg_desc": "Pick up the green box."},
                   "((103, 107), None)": {"seg_desc": "Put down the green box."}}, f)
