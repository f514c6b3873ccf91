"""Pinhole camera: intrinsics, world->camera extrinsics and projection (OpenCV convention).

Camera frame: x right, y down, z forward (into the scene). Pixel ``(u, v)`` has its centre at integer
coordinates, so a point on the optical axis projects to ``(cx, cy)``.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from data_tools.errors import DataError
from data_tools.maps.hand_joints import resize_transform


def rotation_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """Axis-angle ``(..., 3)`` -> rotation matrices ``(..., 3, 3)`` (Rodrigues, numpy)."""
    aa = np.asarray(axis_angle, dtype=np.float64)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    axis = np.divide(aa, angle, out=np.zeros_like(aa), where=angle > 1e-12)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(aa.shape[:-1] + (3, 3))
    s, c = np.sin(angle)[..., None], np.cos(angle)[..., None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """World->camera ``(R, t)`` for a camera at ``eye`` looking at ``target`` (world ``up`` is up on screen)."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    forward = target - eye
    norm = np.linalg.norm(forward)
    if norm < 1e-12:
        raise DataError(None, "look_at: eye and target coincide")
    z = forward / norm
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:  # looking along 'up': pick any perpendicular
        x = np.cross(z, [1.0, 0.0, 0.0] if abs(z[0]) < 0.9 else [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    rot = np.stack([x, y, z])  # rows: camera axes in world coordinates
    return rot, -rot @ eye


@dataclasses.dataclass
class Camera:
    """Pinhole camera. ``rotation``/``translation`` map world points to camera: ``X_c = R X_w + t``."""

    fx: float
    fy: float
    cx: float
    cy: float
    height: int
    width: int
    rotation: np.ndarray = dataclasses.field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(3))
    near: float = 0.01

    def __post_init__(self):
        self.rotation = np.asarray(self.rotation, dtype=np.float64).reshape(3, 3)
        self.translation = np.asarray(self.translation, dtype=np.float64).reshape(3)

    @classmethod
    def from_fov(cls, height: int, width: int, fov_y_deg: float = 45.0, **extrinsics) -> "Camera":
        """A centred camera with vertical field of view ``fov_y_deg`` and square pixels."""
        f = 0.5 * height / np.tan(np.radians(fov_y_deg) / 2)
        return cls(f, f, (width - 1) / 2, (height - 1) / 2, height, width, **extrinsics)

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)

    def scaled(self, height: int, width: int) -> "Camera":
        """The same camera for another image size (intrinsics scaled about pixel centres)."""
        return self.resized(height, width, "resize")

    def resized(self, height: int, width: int, mode: str = "resize") -> "Camera":
        """The camera of the frames after ``video_io.resize_frames(mode)`` to ``height x width`` (crop / pad
        shift the principal point; ``resize`` equals ``scaled``): projections move like ``map_points``."""
        (sx, sy), (x0, y0) = resize_transform((self.height, self.width), (height, width), mode)
        return dataclasses.replace(self, fx=self.fx * sx, fy=self.fy * sy, cx=(self.cx + 0.5) * sx - 0.5 + x0,
                                   cy=(self.cy + 0.5) * sy - 0.5 + y0, height=height, width=width)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points ``(..., 3)`` -> camera-frame points ``(..., 3)``."""
        return np.asarray(points, dtype=np.float64) @ self.rotation.T + self.translation

    def project(self, points: np.ndarray, world: bool = True) -> np.ndarray:
        """Points ``(..., 3)`` (world, or camera frame with ``world=False``) -> pixels ``(..., 2)`` (u, v).

        Points at or behind ``near`` get ``-1`` (the "missing" marker the keypoint drawer understands).
        """
        cam = self.to_camera(points) if world else np.asarray(points, dtype=np.float64)
        z = cam[..., 2:3]
        ok = z > self.near
        safe = np.where(ok, z, 1.0)
        uv = np.concatenate([self.fx * cam[..., 0:1] / safe + self.cx, self.fy * cam[..., 1:2] / safe + self.cy], -1)
        return np.where(ok, uv, -1.0)

    def to_dict(self) -> dict:
        return {"fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy, "height": self.height,
                "width": self.width, "rotation": self.rotation.tolist(), "translation": self.translation.tolist()}

    @classmethod
    def from_dict(cls, data: dict, source: str | None = None) -> "Camera":
        try:
            return cls(**data)
        except TypeError as exc:
            raise DataError(source, f"invalid camera: {exc}") from None
