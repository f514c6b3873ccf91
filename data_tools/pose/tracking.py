"""Tracking video of the sim's 3D points, drawn like the reference's ``tracking.mp4`` (3D point tracks).

Points are seeded on a pixel grid over every visible surface of the first frame (hand, object, table). Mesh
points stay on their triangle (same barycentrics) as the meshes move; table points are static. Every point
keeps the colour of its first-frame camera-space position, normalised over all points (red: x to the right,
green: y down, blue: near), and is drawn in each frame as a small filled square where it is visible (its depth
matches the frame's depth buffer), nearer squares over farther ones, on black. The reference's DexYCB sample
(``val_tracking.mp4``: a grid of ~7 px squares every ~9 px at 480 rows) shows the same look.
"""
from __future__ import annotations

import numpy as np
import torch

from data_tools.pose.camera import Camera
from data_tools.pose.render import Frame, Part, RenderConfig, rasterize

REFERENCE_ROWS = 480        # the grid spacing and square size are given at 480 rows and scale with the height
VISIBLE_TOLERANCE = 0.01    # a point is visible when its depth is within 1% (+2 mm) of the depth buffer's


def _mesh(parts: list[Part], camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame vertices and faces of all parts concatenated (the same topology in every frame)."""
    rot, trans = (torch.as_tensor(a, dtype=torch.float32) for a in (camera.rotation, camera.translation))
    verts, faces, offset = [], [], 0
    for part in parts:   # float32 as in the renderer, so that seeds land on the pixels it drew
        verts.append((torch.as_tensor(part.vertices, dtype=torch.float32) @ rot.T + trans).numpy())
        faces.append(np.asarray(part.faces, dtype=np.int64) + offset)
        offset += len(part.vertices)
    return np.concatenate(verts), np.concatenate(faces)


def _grid_mask(height: int, width: int, stride: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[stride // 2::stride, stride // 2::stride] = True
    return mask


def seed_points(parts: list[Part], frame: Frame, camera: Camera, stride: int, max_candidates: int = 6_000_000):
    """Grid points on the first frame's visible surfaces: ``(face, barycentrics)`` of mesh points and
    camera-frame positions of static (table) points."""
    h, w = camera.height, camera.width
    grid = _grid_mask(h, w, stride).reshape(-1) & (frame.depth.reshape(-1) > 0)
    verts, faces = _mesh(parts, camera)
    pix, face, bary = rasterize(torch.from_numpy(verts), torch.from_numpy(faces), camera, max_candidates)
    pix, face, bary = pix.numpy(), face.numpy(), bary.double().numpy()
    z = np.einsum("pk,pk->p", bary, verts[faces[face], 2].astype(np.float64))
    on_mesh = grid[pix] & np.isclose(z, frame.depth.reshape(-1)[pix], rtol=1e-4, atol=1e-4)
    static = np.flatnonzero(grid)
    static = static[~np.isin(static, pix[on_mesh])]
    d = frame.depth.reshape(-1)[static].astype(np.float64)
    rays = np.stack([(static % w - camera.cx) / camera.fx, (static // w - camera.cy) / camera.fy, np.ones(len(static))], 1)
    return face[on_mesh], bary[on_mesh], rays * d[:, None]


def point_colors(points: np.ndarray) -> np.ndarray:
    """uint8 RGB per camera-frame point ``(N, 3)``: x -> red, y -> green, nearness -> blue, each min-max over all."""
    lo, span = points.min(0), np.ptp(points, 0)
    scaled = (points - lo) / np.where(span > 1e-6, span, np.inf)      # a flat extent (below a micron) gives 0
    scaled[:, 2] = 1.0 - scaled[:, 2]
    return np.round(scaled * 255).astype(np.uint8)


def draw_points(points: np.ndarray, colors: np.ndarray, depth: np.ndarray, camera: Camera, size: int) -> np.ndarray:
    """One frame ``(H, W, 3)``: each visible point as a ``size`` x ``size`` square, nearer squares on top."""
    h, w = camera.height, camera.width
    out = np.zeros((h, w, 3), dtype=np.uint8)
    z = points[:, 2]
    front = z > camera.near
    u = np.round(camera.fx * points[:, 0] / np.where(front, z, 1) + camera.cx).astype(np.int64)
    v = np.round(camera.fy * points[:, 1] / np.where(front, z, 1) + camera.cy).astype(np.int64)
    inside = front & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    buffer = depth[v.clip(0, h - 1), u.clip(0, w - 1)]
    visible = inside & (buffer > 0) & (np.abs(z - buffer) <= VISIBLE_TOLERANCE * buffer + 0.002)
    if not visible.any():
        return out
    offsets = np.arange(size) - size // 2
    du, dv = np.meshgrid(offsets, offsets)
    pu = (u[visible][:, None] + du.reshape(1, -1)).reshape(-1)
    pv = (v[visible][:, None] + dv.reshape(1, -1)).reshape(-1)
    pz = np.repeat(z[visible], size * size)
    pc = np.repeat(colors[visible], size * size, axis=0)
    keep = (pu >= 0) & (pu < w) & (pv >= 0) & (pv < h)
    flat, pz, pc = (pv * w + pu)[keep], pz[keep], pc[keep]
    order = np.lexsort((pz, flat))                       # per pixel, the nearest square first
    flat, pc = flat[order], pc[order]
    first = np.r_[True, flat[1:] != flat[:-1]]
    out.reshape(-1, 3)[flat[first]] = pc[first]
    return out


def tracking_video(parts_per_frame: list[list[Part]], frames: list[Frame], camera: Camera,
                   config: RenderConfig) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 tracking video of the parts' surface points (and the table's) seeded on frame 0."""
    scale = camera.height / REFERENCE_ROWS
    stride = max(1, round(config.tracking_stride * scale))
    size = max(1, min(round(config.tracking_point_size * scale), stride - 1))   # keep a black gap between squares
    face, bary, static = seed_points(parts_per_frame[0], frames[0], camera, stride, config.max_candidates)
    video, colors = [], None
    for parts, frame in zip(parts_per_frame, frames):
        verts, faces = _mesh(parts, camera)
        points = np.concatenate([np.einsum("pk,pkc->pc", bary, verts[faces[face]].astype(np.float64)), static])
        if colors is None:
            colors = point_colors(points) if len(points) else np.zeros((0, 3), np.uint8)
        video.append(draw_points(points, colors, frame.depth, camera, size))
    return np.stack(video)
