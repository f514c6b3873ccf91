"""Ground truth beside every generated video: the sequence's labels at the video's frame count and size.

``sequence_labels`` finds a sequence's labels (a trajectory: computed from it; a sim folder: its
``pose_labels.npz``, written by the renderer; a converted real clip: its ``hand_joints.npz``) and
``write_labels`` moves them through the same time resampling and crop/resize as the conditions and writes
``hand_joints.npz`` (+ ``pose_labels.npz``) and ``seg_mask.mp4`` into the sequence's output folder.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from data_tools.io.video_io import time_indices, video_info, write_video
from data_tools.maps.hand_joints import HAND_JOINTS_FILE, HandKeypoints, map_points
from data_tools.pose.labels import SequenceLabels, has_labels

logger = logging.getLogger("sim2real.labels")


def sequence_labels(kind: str, path: str, mano_path: str | None = None, trajectory_fps: float | None = None):
    """The source labels of an input sequence at its own frames and size: ``SequenceLabels`` (trajectory, retimed
    to ``trajectory_fps`` when given, or sim folder with ``pose_labels.npz``), ``(HandKeypoints, (H, W))`` (a clip
    folder with ``hand_joints.npz``), or None."""
    if kind == "trajectory":
        from data_tools.pose.trajectory import load_trajectory

        traj = load_trajectory(path)
        if trajectory_fps is not None:
            traj = traj.retimed(trajectory_fps)
        return SequenceLabels.from_trajectory(traj, traj.hand_model(mano_path))
    if kind == "sim" and has_labels(path):
        return SequenceLabels.load(path)
    joints = os.path.join(path, HAND_JOINTS_FILE)
    if kind == "video" and os.path.isfile(joints):
        video = next((os.path.join(path, f) for f in sorted(os.listdir(path)) if f.endswith("video.mp4")), None)
        if video is not None:
            info = video_info(video)
            return HandKeypoints.load(joints), (info["height"], info["width"])
    return None


def write_labels(out_dir: str, source, num_frames: int, size: tuple[int, int], resize_mode: str,
                 seg_mask: np.ndarray | None = None, fps: float = 15.0, time_sampling: str = "spread") -> dict:
    """Write ``source`` (from ``sequence_labels``) at ``num_frames`` x ``size`` (frames taken as the conditions'
    ``time_sampling``) into ``out_dir``; also ``seg_mask.mp4`` when given. Returns ``{name: path}`` of what was
    written (empty without labels)."""
    written = {}
    if isinstance(source, SequenceLabels):
        source.at(num_frames, size, resize_mode, time_sampling).save(out_dir)
        written = {"hand_joints": os.path.join(out_dir, HAND_JOINTS_FILE),
                   "pose_labels": os.path.join(out_dir, "pose_labels.npz")}
    elif source is not None:
        keypoints, src_hw = source
        idx = time_indices(keypoints.num_frames, num_frames, time_sampling)
        HandKeypoints(map_points(keypoints.joints_2d[idx], src_hw, size, resize_mode),
                      None if keypoints.joints_3d is None else keypoints.joints_3d[idx],
                      keypoints.side).save(os.path.join(out_dir, HAND_JOINTS_FILE))
        written = {"hand_joints": os.path.join(out_dir, HAND_JOINTS_FILE)}
    if seg_mask is not None:
        written["seg_mask"] = write_video(os.path.join(out_dir, "seg_mask.mp4"), seg_mask, fps=fps)
    if not written:
        logger.info("%s: no ground truth for this input (no pose_labels.npz / hand_joints.npz)", out_dir)
    return written
