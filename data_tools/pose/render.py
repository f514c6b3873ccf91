"""CPU/GPU condition renderer: a vectorised torch z-buffer rasteriser (no GL libraries needed).

For each frame of a trajectory it renders, at any size: metric depth, camera-space normals, a class map (hand =
149, objects keep their YCB ids, background 150) and a Lambert-shaded RGB, then turns them into the condition
maps of the reference: depth (relative, near bright, background removed with the seg mask, normalised over the
clip), normals (RGB), seg mask (ADE20K palette), hand keypoints (projected joints drawn by
``data_tools.maps.keypoints``). Results come back as a ``ConditionBundle`` (the shaded RGB in ``extras['rgb']``) and
can be written as a sim folder (``rendered_{map}_{i}.png``) and as condition mp4s.

Rasteriser: pixel centres at integer coordinates (as ``data_tools.pose.camera``); every triangle is split into
pixel rows, each row's column span inside the triangle is solved from the edge functions, and a packed
(depth, face) int64 key per covered pixel is reduced with ``scatter_reduce(amin)``: the nearest face wins. Attributes use perspective-correct
barycentrics. Triangles with a vertex behind the near plane are dropped (no clipping).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import time

import numpy as np
import torch
from tqdm import tqdm

from data_tools.maps.bundle import ConditionBundle
from data_tools.pose.camera import Camera, rotation_matrix
from data_tools.maps.geometry_maps import normalize_depth, normals_to_rgb
from data_tools.maps.keypoints import draw_hand_keypoints_video
from data_tools.pose.labels import SequenceLabels
from data_tools.pose.objects import ObjectMesh, corner_normals
from data_tools.maps.segmentation import BACKGROUND_CLASS, HAND_CLASS, colorize_classes
from data_tools.maps.style import get_style
from data_tools.io.video_io import write_video

logger = logging.getLogger(__name__)

DEPTH_SCALE = 1e5           # depth quantisation for the z-buffer key: 10 micrometres
FACE_BITS = 24              # up to 16.7M faces per frame
MAX_KEY = torch.iinfo(torch.int64).max
INSIDE_EPS = 1e-6           # barycentric tolerance on triangle edges


@dataclasses.dataclass
class RenderConfig:
    """How conditions are rendered (YAML: configs/pose/render.yaml)."""

    height: int = 480
    width: int = 720
    fps: float = 15.0
    style: str = "engine"              # condition style (data_tools.maps.style): engine | pam_release | ...
    depth_colormap: str | None = None  # gray | inferno | turbo; None: the style's
    depth_near_is_bright: bool = True  # like DepthCrafter's relative depth in the real data
    depth_scope: str = "clip"          # clip: one min/max over all frames; frame: per frame
    normal_convention: str = "opengl"  # opengl: x right, y up, z towards the camera (bluish); opencv: as the camera
    table: bool = True                 # a table plane at z = 0 (background class, visible in normal/rgb maps)
    table_size: float = 1.6
    hand_color: tuple[int, int, int] = (225, 175, 145)
    table_color: tuple[int, int, int] = (150, 140, 125)
    background_color: tuple[int, int, int] = (40, 40, 40)
    ambient: float = 0.3
    hand_class: int = HAND_CLASS
    device: str = "cpu"
    cpu_threads: int | None = 1        # torch threads while rendering on CPU (None: leave torch's setting).
    # One is the robust default: the ops are small and oversubscribed cores make OpenMP threads crawl.
    max_candidates: int = 6_000_000    # pixel candidates per rasteriser pass (memory bound)
    tracking_stride: int = 9           # tracking video (styles with tracking): grid spacing in pixels at 480 rows
    tracking_point_size: int = 7       # side of each tracked point's square in pixels at 480 rows

    RANGES = {"height": (8, None), "width": (8, None), "fps": (1e-3, None), "table_size": (1e-3, None),
              "ambient": (0, 1), "max_candidates": (1, None), "tracking_stride": (1, None),
              "tracking_point_size": (1, None), "cpu_threads": (1, None)}


@dataclasses.dataclass
class Part:
    """One mesh to draw: world vertices, faces, seg class, colour, optional per-corner normals (F, 3, 3)."""

    vertices: np.ndarray
    faces: np.ndarray
    class_id: int
    color: tuple[int, int, int]
    corner_normals: np.ndarray | None = None


@dataclasses.dataclass
class Frame:
    """Raw render of one frame: depth (H, W) float32 metres (0 = empty), normal map (H, W, 3) uint8 in the
    configured convention (``data_tools.maps.geometry_maps.normals_to_rgb`` encoding), classes (H, W), shaded rgb."""

    depth: np.ndarray
    normal_rgb: np.ndarray
    classes: np.ndarray
    rgb: np.ndarray


def _vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    tri = verts[faces]
    fn = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
    vn = torch.zeros_like(verts).index_add_(0, faces.reshape(-1), fn.repeat_interleave(3, dim=0))
    return torch.nn.functional.normalize(vn, dim=-1)


def _edge_table(tri_uv: torch.Tensor, tri_z: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    """Per face ``(F, 12)``: barycentric ``w_i = a_i x + b_i y + c_i`` coefficients (9) and ``1 / z_i`` (3)."""
    out = []
    for i in range(3):
        p, q = tri_uv[:, (i + 1) % 3], tri_uv[:, (i + 2) % 3]
        # w_i(x, y) = ((p - P) x (q - P)) / area with P = (x, y), expanded into a linear function of x and y
        a = (p[:, 1] - q[:, 1]) / area
        b = (q[:, 0] - p[:, 0]) / area
        c = (p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]) / area
        out += [a, b, c]
    return torch.cat([torch.stack(out, 1), 1.0 / tri_z], 1)


def _weights(table: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Screen-space barycentrics ``(N, 3)`` from gathered edge tables ``(N, 12)``."""
    coef = table[:, :9].reshape(-1, 3, 3)
    return coef[:, :, 0] * px[:, None] + coef[:, :, 1] * py[:, None] + coef[:, :, 2]


def rasterize(verts_cam: torch.Tensor, faces: torch.Tensor, camera: Camera, max_candidates: int = 6_000_000):
    """Z-buffer camera-frame triangles. Returns the covered pixel indices ``(P,)`` (into H*W), their face
    ``(P,)`` and perspective-correct barycentrics ``(P, 3)``."""
    h, w = camera.height, camera.width
    dev, dt = verts_cam.device, verts_cam.dtype
    z = verts_cam[:, 2]
    uv = torch.stack([camera.fx * verts_cam[:, 0] / z + camera.cx, camera.fy * verts_cam[:, 1] / z + camera.cy], -1)
    tri_uv, tri_z = uv[faces], z[faces]                                         # (F, 3, 2), (F, 3)
    e1, e2 = tri_uv[:, 1] - tri_uv[:, 0], tri_uv[:, 2] - tri_uv[:, 0]
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    lo = torch.ceil(tri_uv.amin(1)).clamp_min(0)
    hi = torch.minimum(torch.floor(tri_uv.amax(1)), torch.tensor([w - 1, h - 1], device=dev, dtype=dt))
    keep = (tri_z.amin(1) > camera.near) & (area.abs() > 1e-9) & (hi >= lo).all(1)
    ids = torch.nonzero(keep)[:, 0]
    table = _edge_table(tri_uv[ids], tri_z[ids], area[ids])
    lo, hi = lo[ids].long(), hi[ids].long()
    # one entry per (face, pixel row) with the exact column span where all three edge functions are >= 0
    rows = hi[:, 1] - lo[:, 1] + 1
    row_face = torch.repeat_interleave(torch.arange(len(ids), device=dev), rows)
    y = lo[row_face, 1] + torch.arange(len(row_face), device=dev) - torch.repeat_interleave(torch.cumsum(rows, 0) - rows, rows)
    coef = table[row_face, :9].reshape(-1, 3, 3)
    slope, offset = coef[:, :, 0], coef[:, :, 1] * y[:, None].to(dt) + coef[:, :, 2] + INSIDE_EPS
    bound = -offset / torch.where(slope == 0, torch.ones_like(slope), slope)      # where w_i(x) crosses zero
    inf = torch.full_like(bound, float("inf"))
    x_min = torch.where(slope > 0, bound, -inf).amax(1)
    x_max = torch.where(slope < 0, bound, inf).amin(1)
    x_max = torch.where(((slope == 0) & (offset < 0)).any(1), -inf[:, 0], x_max)  # a parallel edge excludes the row
    x0 = torch.maximum(torch.ceil(x_min.clamp(-1e9, 1e9)).long(), lo[row_face, 0])
    x1 = torch.minimum(torch.floor(x_max.clamp(-1e9, 1e9)).long(), hi[row_face, 0])
    counts = (x1 - x0 + 1).clamp_min(0)
    best = torch.full((h * w,), MAX_KEY, dtype=torch.int64, device=dev)
    ends = torch.cumsum(counts, 0)
    start = 0
    while start < len(counts):   # chunks of rows whose pixel candidates fit in max_candidates
        base = ends[start - 1] if start else ends.new_tensor(0)
        stop = max(int(torch.searchsorted(ends, base + max_candidates, right=True)), start + 1)
        c = counts[start:stop]
        r = torch.repeat_interleave(torch.arange(start, stop, device=dev), c)    # row entry of each candidate
        px = x0[r] + torch.arange(len(r), device=dev) - torch.repeat_interleave(torch.cumsum(c, 0) - c, c)
        py, k = y[r], row_face[r]
        tab = table[k]
        bary = _weights(tab, px.to(dt), py.to(dt))
        inside = (bary >= -INSIDE_EPS).all(1)
        k, px, py, bary, tab = k[inside], px[inside], py[inside], bary[inside], tab[inside]
        inv_z = (bary * tab[:, 9:]).sum(1)
        key = (torch.round(DEPTH_SCALE / inv_z).long() << FACE_BITS) | k
        best.scatter_reduce_(0, py * w + px, key, reduce="amin", include_self=True)
        start = stop
    pix = torch.nonzero(best != MAX_KEY)[:, 0]
    k = best[pix] & ((1 << FACE_BITS) - 1)
    tab = table[k]
    b = _weights(tab, (pix % w).to(dt), torch.div(pix, w, rounding_mode="floor").to(dt)) * tab[:, 9:]
    return pix, ids[k], b / b.sum(1, keepdim=True)


def _pixel_dirs(camera: Camera, dev, dt) -> torch.Tensor:
    """Viewing directions ``(H*W, 3)`` with z = 1 through every pixel centre (camera frame)."""
    h, w = camera.height, camera.width
    ys, xs = torch.meshgrid(torch.arange(h, device=dev, dtype=dt), torch.arange(w, device=dev, dtype=dt), indexing="ij")
    return torch.stack([(xs - camera.cx) / camera.fx, (ys - camera.cy) / camera.fy, torch.ones_like(xs)], -1).reshape(-1, 3)


def _table_hits(camera: Camera, config: RenderConfig, dev, dt):
    """Analytic ray cast of every pixel against the square table at z = 0: (camera depth (H*W,), hit mask)."""
    rays = _pixel_dirs(camera, dev, dt)
    rot = torch.as_tensor(camera.rotation, dtype=dt, device=dev)
    origin = -rot.T @ torch.as_tensor(camera.translation, dtype=dt, device=dev)   # camera centre in the world
    world_dir = rays @ rot                                                         # (R^T d) for each ray
    s = -origin[2] / world_dir[:, 2]
    point = origin + s[:, None] * world_dir
    half = config.table_size / 2
    hit = (s > camera.near) & (point[:, 0].abs() <= half) & (point[:, 1].abs() <= half)
    return s, hit


def _pixel_rays(camera: Camera, dev, dt) -> torch.Tensor:
    """Unit viewing rays ``(H*W, 3)`` through every pixel centre, camera frame."""
    return torch.nn.functional.normalize(_pixel_dirs(camera, dev, dt), dim=-1)


def render_parts(parts: list[Part], camera: Camera, config: RenderConfig, cache: dict | None = None) -> Frame:
    """Render meshes (world coordinates) seen by ``camera`` (plus the table plane when configured).

    ``cache`` (a dict reused across frames of one static camera) keeps the static layer: rays, table, background.
    On CPU it runs with ``config.cpu_threads`` torch threads.
    """
    with _torch_threads(config.cpu_threads if config.device == "cpu" else None):
        return _render_parts(parts, camera, config, cache)


def _surface(normal: torch.Tensor, ray: torch.Tensor, albedo: torch.Tensor, config: RenderConfig):
    """Shaded uint8 colours and encoded uint8 normals of surface samples (normals turned to face the camera)."""
    normal = torch.nn.functional.normalize(normal, dim=-1)
    normal = torch.where((normal * ray).sum(-1, keepdim=True) > 0, -normal, normal)   # two-sided
    shade = config.ambient + (1 - config.ambient) * (-(normal * ray).sum(-1, keepdim=True)).clamp(0, 1)
    rgb = (albedo * shade).round().clamp(0, 255).to(torch.uint8)
    if config.normal_convention == "opengl":
        normal = normal * torch.tensor([1.0, -1.0, -1.0], dtype=normal.dtype, device=normal.device)
    elif config.normal_convention != "opencv":
        raise ValueError(f"normal_convention must be 'opengl' or 'opencv', got {config.normal_convention!r}")
    # same encoding as data_tools.maps.geometry_maps.normals_to_rgb, here in float32 on the samples only (much faster)
    return rgb, ((normal + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def _background(camera: Camera, config: RenderConfig, dev, dt) -> dict:
    """Per-camera static layer: the table (when configured) over the background, as flat (H*W, ...) buffers."""
    n = camera.height * camera.width
    rays = _pixel_rays(camera, dev, dt)
    layer = {"rays": rays, "depth": torch.zeros(n, dtype=dt, device=dev),
             "classes": torch.full((n,), BACKGROUND_CLASS, dtype=torch.long, device=dev),
             "rgb": torch.tensor(config.background_color, device=dev).to(torch.uint8).expand(n, 3).clone(),
             "normal_rgb": torch.zeros(n, 3, dtype=torch.uint8, device=dev),
             "solid": torch.zeros(n, dtype=torch.bool, device=dev)}
    if config.table:
        s, hit = _table_hits(camera, config, dev, dt)
        up = torch.as_tensor(camera.rotation[:, 2], dtype=dt, device=dev).expand(int(hit.sum()), 3)  # world +z
        albedo = torch.tensor(config.table_color, dtype=dt, device=dev).expand(len(up), 3)
        layer["rgb"][hit], layer["normal_rgb"][hit] = _surface(up, rays[hit], albedo, config)
        layer["depth"][hit], layer["solid"] = s[hit], hit
    return layer


def _render_parts(parts: list[Part], camera: Camera, config: RenderConfig, cache: dict | None) -> Frame:
    dev, dt = torch.device(config.device), torch.float32
    cache = {} if cache is None else cache
    if "background" not in cache:
        cache["background"] = _background(camera, config, dev, dt)
    bg = cache["background"]
    rot = torch.as_tensor(camera.rotation, dtype=dt, device=dev)
    trans = torch.as_tensor(camera.translation, dtype=dt, device=dev)
    verts, faces, normals, classes, colors, offset = [], [], [], [], [], 0
    for part in parts:
        v = torch.as_tensor(part.vertices, dtype=dt, device=dev) @ rot.T + trans
        f = torch.as_tensor(np.asarray(part.faces), dtype=torch.long, device=dev)
        if part.corner_normals is not None:
            n = torch.as_tensor(part.corner_normals, dtype=dt, device=dev) @ rot.T
        else:
            n = _vertex_normals(v, f)[f]
        verts.append(v), faces.append(f + offset), normals.append(n)
        classes.append(torch.full((len(f),), part.class_id, dtype=torch.long, device=dev))
        colors.append(torch.tensor(part.color, dtype=dt, device=dev).expand(len(f), 3))
        offset += len(v)
    h, w = camera.height, camera.width
    depth, cls = bg["depth"].clone(), bg["classes"].clone()
    rgb, normal_rgb = bg["rgb"].clone(), bg["normal_rgb"].clone()
    if parts:
        v, f, n = torch.cat(verts), torch.cat(faces), torch.cat(normals)
        pix, face, bary = rasterize(v, f, camera, config.max_candidates)
        z = (bary * v[:, 2][f[face]]).sum(1)                                     # camera depth of the samples
        front = ~bg["solid"][pix] | (z < bg["depth"][pix])                       # meshes in front of the table
        pix, face, bary, z = pix[front], face[front], bary[front], z[front]
        normal = (bary[..., None] * n[face]).sum(1)
        rgb[pix], normal_rgb[pix] = _surface(normal, bg["rays"][pix], torch.cat(colors)[face], config)
        depth[pix], cls[pix] = z, torch.cat(classes)[face]
    return Frame(depth.reshape(h, w).cpu().numpy(), normal_rgb.reshape(h, w, 3).cpu().numpy(),
                 cls.reshape(h, w).to(torch.int16).cpu().numpy(), rgb.reshape(h, w, 3).cpu().numpy())


def _normalized_depth(depth: np.ndarray, foreground: np.ndarray, config: RenderConfig) -> np.ndarray:
    """``normalize_depth`` over the clip (or per frame), run on the foreground's bounding box only (faster, same
    result: everything outside the foreground is black anyway)."""
    out = np.zeros(depth.shape + (3,), np.uint8)
    rows, cols = np.flatnonzero(foreground.any((0, 2))), np.flatnonzero(foreground.any((0, 1)))
    if not len(rows):
        return out
    box = (slice(None), slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    d, m = depth[box], foreground[box]
    colormap = config.depth_colormap or get_style(config.style).depth_colormap
    if config.depth_scope == "clip":
        out[box] = normalize_depth(d, m, config.depth_near_is_bright, colormap)
    elif config.depth_scope == "frame":
        out[box] = np.stack([normalize_depth(a, b, config.depth_near_is_bright, colormap) for a, b in zip(d, m)])
    else:
        raise ValueError(f"depth_scope must be 'clip' or 'frame', got {config.depth_scope!r}")
    return out


def _normal_map(frames: list[Frame], depth_map: np.ndarray, config: RenderConfig) -> np.ndarray:
    """The normal condition in the configured style: the rendered normals (empty pixels black, or the normal
    facing the camera for full-frame styles), or a copy of the depth map."""
    style = get_style(config.style)
    if style.normal_source == "depth":
        return depth_map.copy()
    normals = np.stack([fr.normal_rgb for fr in frames])
    if style.normal_background == "facing":
        facing = (0.0, 0.0, 1.0) if config.normal_convention == "opengl" else (0.0, 0.0, -1.0)
        normals[np.stack([fr.depth for fr in frames]) == 0] = normals_to_rgb(np.array(facing))
    return normals


def condition_maps(frames: list[Frame], joints_2d: np.ndarray, joints_cam: np.ndarray,
                   config: RenderConfig) -> dict[str, np.ndarray]:
    """Raw frames + projected joints ``(T, 21, 2)`` (camera-frame ``(T, 21, 3)``) -> condition videos
    ``{name: (T, H, W, 3) uint8}`` plus ``rgb``, drawn in the configured style."""
    depth = np.stack([fr.depth for fr in frames])
    classes = np.stack([fr.classes for fr in frames])
    h, w = depth.shape[1:]
    depth_map = _normalized_depth(depth, classes != BACKGROUND_CLASS, config)
    return {
        "hand_keypoints": draw_hand_keypoints_video(joints_2d, h, w, joints_cam),
        "depth": depth_map,
        "seg_mask": colorize_classes(classes),
        "normal": _normal_map(frames, depth_map, config),
        "rgb": np.stack([fr.rgb for fr in frames]),
    }


def render_trajectory(traj, config: RenderConfig, hand_model=None, obj: ObjectMesh | None = None,
                      base_dir: str | None = None, progress: bool = True) -> ConditionBundle:
    """Render every frame of a ``Trajectory`` into a bundle (four conditions, plus ``tracking`` when the style
    draws it, and the shaded ``extras['rgb']``).

    ``hand_model`` defaults to the trajectory's (procedural unless a MANO model is passed), ``obj`` to its object.
    """
    style = get_style(config.style)   # an unknown style fails before rendering
    hand_model = hand_model or traj.hand_model()
    obj = obj or traj.resolve_object(base_dir)
    camera = traj.camera.scaled(config.height, config.width)
    with torch.no_grad():
        out = hand_model(traj.hand_global_orient, traj.hand_pose, traj.hand_betas[None], traj.hand_transl)
    hand_verts = out.vertices.double().cpu().numpy()
    joints = out.joints.double().cpu().numpy()
    obj_normals = corner_normals(obj.vertices, obj.faces)
    parts = [_frame_parts(traj, t, config, hand_model, hand_verts, obj, obj_normals) for t in range(traj.num_frames)]
    frames = _render_frames(parts, traj.name, config, camera, progress)
    joints_cam = camera.to_camera(joints)
    maps = condition_maps(frames, camera.project(joints_cam, world=False), joints_cam, config)
    if style.tracking:
        from data_tools.pose.tracking import tracking_video  # tracking builds on this module's rasteriser

        maps["tracking"] = tracking_video(parts, frames, camera, config)
    rgb = maps.pop("rgb")
    return ConditionBundle(maps, prompt=traj.prompt, name=traj.name, extras={"rgb": rgb})


@contextlib.contextmanager
def _torch_threads(count: int | None):
    """Temporarily run torch with ``count`` intra-op threads (no-op for None)."""
    previous = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _frame_parts(traj, t, config, hand_model, hand_verts, obj, obj_normals) -> list[Part]:
    """The hand and the posed object of frame ``t`` (world coordinates)."""
    r = rotation_matrix(traj.object_rot[t])
    return [Part(hand_verts[t], hand_model.faces, config.hand_class, config.hand_color),
            Part(obj.vertices @ r.T + traj.object_transl[t], obj.faces, obj.class_id, obj.color, obj_normals @ r.T)]


def _render_frames(parts_per_frame, name, config, camera, progress) -> list[Frame]:
    cache = {}
    return [render_parts(parts, camera, config, cache)
            for parts in tqdm(parts_per_frame, desc=f"render {name}", disable=not progress, leave=False)]


def write_outputs(bundle: ConditionBundle, out_dir: str, fps: float, sim: bool = True, mp4: bool = True) -> None:
    """Sim folder frames (``rendered_{map}_{i}.png``) and/or condition mp4s (+ ``rgb.mp4``) in ``out_dir``
    (the ground truth, ``SequenceLabels.save``, is written beside them by the callers that hold the trajectory)."""
    if sim:
        bundle.save_sim_folder(out_dir)
    if mp4:
        bundle.save_video_folder(out_dir, fps=fps)
        for key, video in bundle.extras.items():
            write_video(os.path.join(out_dir, f"{key}.mp4"), video, fps=fps)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Render a trajectory (.npz/.json) into condition maps: a sim folder "
                                                 "of rendered_{map}_{i}.png and condition mp4s.")
    parser.add_argument("trajectory", help="trajectory file (see docs/pose.md)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--config", default=None, help="render YAML (default: built-in defaults)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides, e.g. height=240")
    parser.add_argument("--mano", default=None, help="MANO_RIGHT/LEFT.pkl (default: built-in procedural hand)")
    parser.add_argument("--no-sim", action="store_true", help="skip the per-frame PNG sim folder")
    parser.add_argument("--no-mp4", action="store_true", help="skip the condition mp4s")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    from data_tools.io.cli import setup_logging
    from data_tools.errors import require_output_dir
    from data_tools.io.config import load_config
    from data_tools.pose.trajectory import load_trajectory

    args = parse_args(argv)
    setup_logging(args.verbose)
    config = load_config(RenderConfig, args.config, args.set)
    traj = load_trajectory(args.trajectory)
    require_output_dir(args.out)
    start = time.perf_counter()
    hand_model = traj.hand_model(args.mano)
    bundle = render_trajectory(traj, config, hand_model, base_dir=os.path.dirname(os.path.abspath(args.trajectory)))
    logger.info("rendered %d frames at %dx%d in %.1fs", bundle.num_frames, *bundle.size, time.perf_counter() - start)
    write_outputs(bundle, args.out, config.fps, sim=not args.no_sim, mp4=not args.no_mp4)
    SequenceLabels.from_trajectory(traj, hand_model, traj.camera.scaled(config.height, config.width)).save(args.out)
    logger.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
