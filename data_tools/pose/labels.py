"""Ground-truth labels of a rendered sequence, kept in step with its frames through resampling and resizing.

Written beside a sim folder by the renderer and beside every generated video by ``sim2real.run``:

* ``hand_joints.npz``: the keypoint-metric ground truth in the DexYCB converter's format (``HandKeypoints``:
  ``joints_2d`` (T, 21, 2) pixels of the video, ``joints_3d`` (T, 21, 3) mm in the camera frame, ``hand_side``);
* ``pose_labels.npz``: everything the joints came from: the hand model's parameters per frame
  (``hand_global_orient``, ``hand_pose``, ``hand_betas``, ``hand_transl``; ``hand_model`` mano/procedural,
  ``hand_pose_space``, ``hand_side``), the object's pose (``object_rot`` axis-angle, ``object_transl``, world frame,
  metres; ``object``), the camera (``K`` at the video's size, world->camera ``R``, ``t``), ``joints_3d_m`` (camera
  frame, metres) and ``source_frames`` (the trajectory frame of each video frame; fractional for a retimed trajectory).

Projecting ``joints_3d`` with ``K`` gives ``joints_2d`` exactly: resizing changes ``K`` the way
``map_points`` moves points (``Camera.resized``).
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from data_tools.errors import DataError
from data_tools.io.atomic import write_label_npz
from data_tools.io.video_io import time_indices
from data_tools.maps.hand_joints import HAND_JOINTS_FILE, HandKeypoints
from data_tools.pose.camera import Camera

POSE_LABELS_FILE = "pose_labels.npz"
PER_FRAME = ("joints_3d_m", "hand_global_orient", "hand_pose", "hand_transl", "object_rot", "object_transl")


@dataclasses.dataclass
class SequenceLabels:
    """Per-frame ground truth of one sequence at one video size (see the module docstring for the fields)."""

    joints_3d_m: np.ndarray          # (T, 21, 3) camera frame, metres
    camera: Camera                   # at the labelled video's size
    hand_global_orient: np.ndarray   # (T, 3)
    hand_pose: np.ndarray            # (T, n)
    hand_transl: np.ndarray          # (T, 3)
    hand_betas: np.ndarray           # (S,)
    object_rot: np.ndarray           # (T, 3)
    object_transl: np.ndarray        # (T, 3)
    source_frames: np.ndarray        # (T,)
    hand_side: str = "right"
    hand_model: str = "procedural"
    hand_pose_space: str = "axis_angle"
    object: str = ""

    @property
    def num_frames(self) -> int:
        return len(self.joints_3d_m)

    @property
    def keypoints(self) -> HandKeypoints:
        """2D joints projected into the video (behind the camera: -1), 3D in mm."""
        return HandKeypoints(self.camera.project(self.joints_3d_m, world=False), self.joints_3d_m * 1000.0,
                             self.hand_side)

    @classmethod
    def from_trajectory(cls, traj, hand_model, camera: Camera | None = None) -> "SequenceLabels":
        """Labels of a ``Trajectory`` posed by ``hand_model`` (the renderer's), seen by ``camera`` (default: the
        trajectory's)."""
        import torch

        camera = camera or traj.camera
        with torch.no_grad():
            out = hand_model(traj.hand_global_orient, traj.hand_pose, traj.hand_betas[None], traj.hand_transl)
        joints = camera.to_camera(out.joints.double().cpu().numpy())
        return cls(joints, camera, traj.hand_global_orient, traj.hand_pose, traj.hand_transl, traj.hand_betas,
                   traj.object_rot, traj.object_transl, traj.frame_positions(), traj.hand_side,
                   "procedural" if hand_model.data.name.startswith("procedural") else "mano",
                   traj.hand_pose_space, str(traj.object))

    def at(self, num_frames: int, size: tuple[int, int], resize_mode: str = "crop",
           time_sampling: str = "spread") -> "SequenceLabels":
        """The labels of the frames after ``time_indices(T, num_frames, time_sampling)`` and
        ``resize_frames(size, mode)``."""
        idx = time_indices(self.num_frames, num_frames, time_sampling)
        per_frame = {key: getattr(self, key)[idx] for key in PER_FRAME}
        return dataclasses.replace(self, **per_frame, source_frames=self.source_frames[idx],
                                   camera=self.camera.resized(size[0], size[1], resize_mode))

    def save(self, folder: str | os.PathLike) -> str:
        """Write ``hand_joints.npz`` and ``pose_labels.npz`` into ``folder`` (atomically); returns the folder."""
        folder = os.fspath(folder)
        self.keypoints.save(os.path.join(folder, HAND_JOINTS_FILE))
        arrays = {key: getattr(self, key) for key in PER_FRAME}
        arrays.update(hand_betas=self.hand_betas, source_frames=self.source_frames, K=self.camera.K,
                      R=self.camera.rotation, t=self.camera.translation,
                      size=np.array([self.camera.height, self.camera.width]),
                      hand_side=np.array(self.hand_side), hand_model=np.array(self.hand_model),
                      hand_pose_space=np.array(self.hand_pose_space), object=np.array(self.object))
        write_label_npz(os.path.join(folder, POSE_LABELS_FILE), arrays)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "SequenceLabels":
        """Read ``pose_labels.npz`` from ``folder`` (DataError naming the file when absent or incomplete)."""
        path = os.path.join(os.fspath(folder), POSE_LABELS_FILE)
        if not os.path.isfile(path):
            raise DataError(path, "pose labels file does not exist")
        try:
            with np.load(path) as data:
                d = {k: data[k] for k in data.files}
            k = d["K"]
            camera = Camera(k[0, 0], k[1, 1], k[0, 2], k[1, 2], int(d["size"][0]), int(d["size"][1]), d["R"], d["t"])
            return cls(**{key: d[key] for key in PER_FRAME}, camera=camera, hand_betas=d["hand_betas"],
                       source_frames=d["source_frames"], hand_side=str(d["hand_side"]),
                       hand_model=str(d["hand_model"]), hand_pose_space=str(d["hand_pose_space"]),
                       object=str(d["object"]))
        except KeyError as exc:
            raise DataError(path, f"pose labels lack {exc}") from None


def has_labels(folder: str | os.PathLike) -> bool:
    return os.path.isfile(os.path.join(os.fspath(folder), POSE_LABELS_FILE))
