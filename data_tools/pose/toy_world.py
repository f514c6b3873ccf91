"""A procedural hand-object world that tiny models can learn on CPU.

Each sequence is a random grasp (``data_tools.pose.trajectory.generate_grasp_trajectory``: the procedural hand
approaches, closes on and lifts a built-in object) filmed by a randomly placed camera. The *conditions* come from
the plain pose-stage renderer (depth, seg mask, keypoints); the *"real" video* is a deterministic, richer
rendering of the same scene built on the same rasteriser outputs (``data_tools.pose.render.render_parts``: depth,
normals, class ids): a shaded skin-coloured hand, textured objects (stripes / checks / a label band in object
coordinates), a wooden table, a wallpaper backdrop, one directional light with Blinn-Phong highlights and a
shadow map (a second ``render_parts`` pass from the light). Materials and light are drawn from the sequence seed.

Sequences are written in the official DexYCB layout (``<subject>/<sequence>/<serial>/color_%06d.jpg``,
``aligned_depth_to_color_%06d.png``, ``labels_%06d.npz``, ``meta.yml``), so ``data_tools.datasets.dexycb``
converts them unchanged (s0 split: the 5th sequence of a subject is held out; held-out sequences are placed
in subjects 2, 3, ... so they land in ``test``).

    python -m data_tools.pose.toy_world generate --out data/toy_world/raw --train 160 --heldout 16
    python -m data_tools.datasets.dexycb --root data/toy_world/raw --out data/toy_world/processed --size 64x96

Training the tiny models on it and the toy-scale ablation live in ``sim2real.toy_world``; the region segmenter
used for the mask IoU in ``data_tools.metrics.regions``.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
from typing import Sequence

import cv2
import numpy as np
import torch
import yaml
from tqdm import tqdm

from data_tools.io.atomic import atomic_path, write_json
from data_tools.pose.camera import Camera, look_at, rotation_matrix
from data_tools.errors import DataError
from data_tools.maps.geometry_maps import rgb_to_normals
from data_tools.pose.objects import BUILTIN_OBJECTS, ObjectMesh, builtin_object, corner_normals
from data_tools.pose.procedural_hand import procedural_hand
from data_tools.pose.render import Part, RenderConfig, render_parts
from data_tools.maps.segmentation import BACKGROUND_CLASS, DEXYCB_HAND_LABEL, HAND_CLASS
from data_tools.pose.trajectory import Trajectory, generate_grasp_trajectory, save_trajectory
from data_tools.io.video_io import write_image

logger = logging.getLogger(__name__)

SERIAL = "toycam"
SEQUENCES_PER_SUBJECT = 5  # s0 holds out sequence index 4 of every subject
SKIN_TONES = ((232, 190, 160), (214, 160, 124), (180, 126, 90), (141, 94, 64), (236, 200, 176))


@dataclasses.dataclass
class ToyWorldConfig:
    """Sizes and sampling ranges of the world (YAML: ``configs/toy_world/default.yaml``)."""

    height: int = 96
    width: int = 144
    num_frames: int = 17
    fps: float = 15.0
    objects: list[str] = dataclasses.field(default_factory=lambda: sorted(BUILTIN_OBJECTS))
    approach_deg: list[float] = dataclasses.field(default_factory=lambda: [-180.0, 180.0])
    camera_azimuth_deg: list[float] = dataclasses.field(default_factory=lambda: [-70.0, -30.0])
    camera_elevation_deg: list[float] = dataclasses.field(default_factory=lambda: [22.0, 40.0])
    camera_distance: list[float] = dataclasses.field(default_factory=lambda: [0.32, 0.42])
    lift_height: list[float] = dataclasses.field(default_factory=lambda: [0.06, 0.14])
    shadows: bool = True
    shadow_size: int = 192


@dataclasses.dataclass
class Materials:
    """Appearance of one sequence (all colours RGB 0-255)."""

    skin: tuple
    object_base: tuple
    object_second: tuple
    object_pattern: str          # stripes | checks | band
    pattern_frequency: float     # cycles per metre
    wood: tuple                  # two wood tones
    grain_frequency: float
    wall: tuple                  # two backdrop tones (bottom, top)
    wall_stripe: float           # wallpaper stripes: sin(wall_stripe * azimuth) (radians)
    light_azimuth_deg: float
    light_elevation_deg: float
    light_intensity: float
    ambient: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class ToyScene:
    """One sequence: trajectory, object mesh and materials, all determined by ``seed``."""

    seed: int
    trajectory: Trajectory
    obj: ObjectMesh
    materials: Materials


def _uniform(rng, bounds) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _jitter(rng, color, amount: float) -> tuple:
    return tuple(int(v) for v in np.clip(np.asarray(color) + rng.normal(0, amount, 3), 0, 255))


def _vivid(rng) -> tuple:
    """A saturated colour (objects stay separable from wood, wall and skin)."""
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(170, 256), rng.integers(120, 240)]]])
    return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def sample_materials(rng: np.random.Generator, obj: ObjectMesh) -> Materials:
    """Random but plausible materials and light."""
    base = _jitter(rng, obj.color, 25)
    return Materials(
        skin=_jitter(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 8),
        object_base=base, object_second=_vivid(rng) if rng.random() < 0.7 else (240, 240, 235),
        object_pattern=str(rng.choice(["stripes", "checks", "band"])),
        pattern_frequency=float(rng.uniform(15, 45)),
        wood=(_jitter(rng, (150, 110, 75), 15), _jitter(rng, (110, 75, 45), 12)),
        grain_frequency=float(rng.uniform(8, 20)),
        wall=(_jitter(rng, (170, 175, 180), 20), _jitter(rng, (215, 215, 220), 15)),
        wall_stripe=float(rng.uniform(40, 90)),
        light_azimuth_deg=float(rng.uniform(-180, 180)), light_elevation_deg=float(rng.uniform(40, 75)),
        light_intensity=float(rng.uniform(0.75, 1.0)), ambient=float(rng.uniform(0.3, 0.45)))


def sample_scene(seed: int, config: ToyWorldConfig, hand_model=None) -> ToyScene:
    """The scene of ``seed``: object, grasp, camera and materials."""
    rng = np.random.default_rng(seed)
    hand_model = hand_model or procedural_hand()
    name = str(rng.choice(config.objects))
    obj = builtin_object(name)
    traj = generate_grasp_trajectory(
        hand_model, obj, name, config.num_frames, config.height, config.width,
        approach_deg=_uniform(rng, config.approach_deg), lift_height=_uniform(rng, config.lift_height),
        camera_azimuth_deg=_uniform(rng, config.camera_azimuth_deg),
        camera_elevation_deg=_uniform(rng, config.camera_elevation_deg),
        camera_distance=_uniform(rng, config.camera_distance), seed=seed, fps=config.fps, name=f"toy_{seed:05d}")
    return ToyScene(seed, traj, obj, sample_materials(rng, obj))


# ------------------------------------------------------------------------------------------------ textures
def _mix(a, b, t: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return a + (b - a) * t[..., None]


def object_albedo(points: np.ndarray, m: Materials, obj: ObjectMesh) -> np.ndarray:
    """Object colour ``(N, 3)`` at object-frame points ``(N, 3)``."""
    f = m.pattern_frequency
    if m.object_pattern == "stripes":
        t = (np.sin(2 * np.pi * f * points[:, 2]) > 0.3).astype(np.float32)
    elif m.object_pattern == "checks":
        t = (np.floor(points * f * 0.5).astype(np.int64).sum(1) % 2).astype(np.float32)
    else:  # a printed label band around the middle with thin lines
        height = obj.vertices[:, 2].max() - obj.vertices[:, 2].min()
        band = np.abs(points[:, 2]) < 0.22 * height
        lines = np.sin(2 * np.pi * 2 * f * points[:, 2]) > 0.85
        t = (band & ~lines).astype(np.float32)
    return _mix(m.object_base, m.object_second, t)


def table_albedo(xy: np.ndarray, m: Materials) -> np.ndarray:
    """Wood ``(N, 3)`` at world table points ``(N, 2)``: grain along x, planks every 12 cm."""
    x, y = xy[:, 0], xy[:, 1]
    grain = 0.5 + 0.5 * np.sin(2 * np.pi * m.grain_frequency * (y + 0.015 * np.sin(12 * x)))
    wood = _mix(m.wood[0], m.wood[1], grain ** 2 * 0.8)
    seam = np.abs(((y + 0.06) % 0.12) - 0.06) < 0.002
    wood[seam] *= 0.55
    return wood


def wall_albedo(world_dirs: np.ndarray, m: Materials) -> np.ndarray:
    """Backdrop ``(N, 3)`` for world ray directions ``(N, 3)``: vertical gradient + soft wallpaper stripes."""
    up = np.clip(world_dirs[:, 2] * 2 + 0.5, 0, 1)
    az = np.arctan2(world_dirs[:, 1], world_dirs[:, 0])
    stripes = 0.93 + 0.07 * (np.sin(m.wall_stripe * az) > 0)
    return _mix(m.wall[0], m.wall[1], up) * stripes[:, None]


# ------------------------------------------------------------------------------------------------ render
@dataclasses.dataclass
class ToyFrame:
    """One rendered frame: the "real" image, metric depth (0 = nothing), class ids (render convention)."""

    rgb: np.ndarray
    depth: np.ndarray
    classes: np.ndarray


def light_direction(m: Materials) -> np.ndarray:
    """Unit vector from the scene towards the light (world)."""
    az, el = math.radians(m.light_azimuth_deg), math.radians(m.light_elevation_deg)
    return np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])


def light_camera(m: Materials, target: np.ndarray, size: int) -> Camera:
    """A camera at the light looking at ``target``, for the shadow map."""
    rot, trans = look_at(np.asarray(target) + 1.2 * light_direction(m), target)
    return Camera.from_fov(size, size, 30.0, rotation=rot, translation=trans)


def _shadow_factor(world: np.ndarray, parts: list[Part], cam: Camera, cfg: RenderConfig) -> np.ndarray:
    """1 lit, 0 in shadow (3x3 percentage-closer filtering) for world points ``(N, 3)``."""
    occluder = render_parts(parts, cam, cfg)
    depth = np.where(occluder.depth > 0, occluder.depth, np.inf)
    local = cam.to_camera(world)
    uv = cam.project(local, world=False)
    lit = np.zeros(len(world), np.float32)
    for du in (-1, 0, 1):
        for dv in (-1, 0, 1):
            u = np.clip(np.round(uv[:, 0]).astype(int) + du, 0, cam.width - 1)
            v = np.clip(np.round(uv[:, 1]).astype(int) + dv, 0, cam.height - 1)
            lit += local[:, 2] <= depth[v, u] + 0.004
    return lit / 9


def render_real(scene: ToyScene, config: ToyWorldConfig, hand_model=None, progress: bool = False) -> list[ToyFrame]:
    """The "real" frames of a scene (see the module docstring)."""
    traj, m, obj = scene.trajectory, scene.materials, scene.obj
    hand_model = hand_model or procedural_hand()
    camera = traj.camera.scaled(config.height, config.width)
    cfg = RenderConfig(height=config.height, width=config.width, normal_convention="opencv", table=True)
    shadow_cfg = RenderConfig(table=False)
    with torch.no_grad():
        out = hand_model(traj.hand_global_orient, traj.hand_pose, traj.hand_betas[None], traj.hand_transl)
    hand_verts = out.vertices.double().numpy()
    obj_normals = corner_normals(obj.vertices, obj.faces)
    h, w = config.height, config.width
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    dirs = np.stack([(xs - camera.cx) / camera.fx, (ys - camera.cy) / camera.fy, np.ones_like(xs)], -1).reshape(-1, 3)
    rot, trans = camera.rotation, camera.translation
    world_dirs = dirs @ rot                       # R^T d
    world_dirs /= np.linalg.norm(world_dirs, axis=1, keepdims=True)
    light = light_direction(m)
    light_cam = rot @ light
    view = -dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    half = light_cam[None] + view
    half /= np.linalg.norm(half, axis=1, keepdims=True)
    frames, cache = [], {}
    target = (obj.vertices.min(0) + obj.vertices.max(0)) / 2 + traj.object_transl[0]
    shadow_cam = light_camera(m, target, config.shadow_size)
    for t in tqdm(range(traj.num_frames), desc=f"render {traj.name}", disable=not progress, leave=False):
        r_obj = rotation_matrix(traj.object_rot[t])
        parts = [Part(hand_verts[t], hand_model.faces, HAND_CLASS, m.skin),
                 Part(obj.vertices @ r_obj.T + traj.object_transl[t], obj.faces, obj.class_id, m.object_base,
                      obj_normals @ r_obj.T)]
        raw = render_parts(parts, camera, cfg, cache)
        depth, classes = raw.depth.reshape(-1).astype(np.float64), raw.classes.reshape(-1)
        normal = rgb_to_normals(raw.normal_rgb).reshape(-1, 3)
        hit = depth > 0
        world = (dirs * depth[:, None] - trans) @ rot  # back-projected surface points (world)
        albedo = wall_albedo(world_dirs, m)
        hand, objm = classes == HAND_CLASS, classes == obj.class_id
        table = hit & (classes == BACKGROUND_CLASS)
        albedo[hand] = np.asarray(m.skin, np.float32)
        albedo[objm] = object_albedo((world[objm] - traj.object_transl[t]) @ r_obj, m, obj)
        albedo[table] = table_albedo(world[table, :2], m)
        diffuse = np.clip(normal @ light_cam, 0, 1)
        spec_n = np.clip((normal * half).sum(1), 0, 1)
        shininess = np.where(objm, 40.0, np.where(hand, 12.0, 8.0))
        strength = np.where(objm, 0.45, np.where(hand, 0.12, 0.06))
        specular = strength * spec_n ** shininess * (diffuse > 0)
        shadow = np.ones(len(depth), np.float32)
        if config.shadows and hit.any():
            shadow[hit] = _shadow_factor(world[hit], parts, shadow_cam, shadow_cfg)
        shade = m.ambient + m.light_intensity * diffuse * shadow
        rgb = albedo * shade[:, None] + 255.0 * (specular * shadow)[:, None]
        rgb = np.where(hit[:, None], rgb, albedo)
        frames.append(ToyFrame(np.clip(np.round(rgb), 0, 255).astype(np.uint8).reshape(h, w, 3),
                               raw.depth, raw.classes))
    return frames


def hand_joints(scene: ToyScene, config: ToyWorldConfig, hand_model=None) -> tuple[np.ndarray, np.ndarray]:
    """Per frame 2D joints ``(T, 21, 2)`` (pixels) and camera-frame 3D joints ``(T, 21, 3)`` (metres)."""
    traj = scene.trajectory
    hand_model = hand_model or procedural_hand()
    camera = traj.camera.scaled(config.height, config.width)
    with torch.no_grad():
        out = hand_model(traj.hand_global_orient, traj.hand_pose, traj.hand_betas[None], traj.hand_transl)
    joints_cam = camera.to_camera(out.joints.double().numpy())
    return camera.project(joints_cam, world=False), joints_cam


# ------------------------------------------------------------------------------------------------ DexYCB layout
def dexycb_labels(classes: np.ndarray) -> np.ndarray:
    """Render class ids -> DexYCB ``seg`` labels (255 hand, YCB id objects, 0 background)."""
    seg = np.where(classes == HAND_CLASS, DEXYCB_HAND_LABEL, classes)
    return np.where(classes == BACKGROUND_CLASS, 0, seg).astype(np.uint8)


def write_sequence(scene: ToyScene, seq_dir: str, config: ToyWorldConfig, hand_model=None) -> None:
    """One sequence in the official DexYCB layout (``meta.yml`` last: it marks the sequence complete)."""
    hand_model = hand_model or procedural_hand()
    view_dir = os.path.join(seq_dir, SERIAL)
    os.makedirs(view_dir, exist_ok=True)
    frames = render_real(scene, config, hand_model)
    j2d, j3d = hand_joints(scene, config, hand_model)
    traj = scene.trajectory
    cam = traj.camera
    for t, frame in enumerate(frames):
        write_image(os.path.join(view_dir, f"color_{t:06d}.jpg"), frame.rgb)  # OpenCV's JPEG quality 95
        write_image(os.path.join(view_dir, f"aligned_depth_to_color_{t:06d}.png"),
                    np.round(frame.depth * 1000).astype(np.uint16))
        r_obj = cam.rotation @ rotation_matrix(traj.object_rot[t])
        pose_y = np.concatenate([r_obj, cam.to_camera(traj.object_transl[t])[:, None]], 1)[None].astype(np.float32)
        with atomic_path(os.path.join(view_dir, f"labels_{t:06d}.npz")) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, seg=dexycb_labels(frame.classes), joint_2d=j2d[t][None].astype(np.float32),
                                    joint_3d=j3d[t][None].astype(np.float32), pose_y=pose_y,
                                    pose_m=np.zeros((1, 51), np.float32))
    save_trajectory(traj, os.path.join(seq_dir, "trajectory.npz"))
    write_json(os.path.join(seq_dir, "toy_world.json"), {"seed": scene.seed, "materials": scene.materials.to_dict(),
                                                         "config": dataclasses.asdict(config)})
    meta = {"serials": [SERIAL], "num_frames": traj.num_frames, "ycb_ids": [int(scene.obj.class_id)],
            "object_names": [scene.obj.name], "ycb_grasp_ind": 0, "mano_sides": ["right"], "toy_seed": scene.seed}
    with atomic_path(os.path.join(seq_dir, "meta.yml")) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            yaml.safe_dump(meta, f)


def layout(num_train: int, num_heldout: int) -> list[tuple[str, str, bool]]:
    """``(subject, sequence, held_out)`` folders so that the s0 split gives exactly ``num_train`` train and
    ``num_heldout`` held-out sequences. A held-out sequence is index 4 of its subject (after 4 train ones);
    subjects 0 and 1 (whose held-out sequences s0 puts in ``val``) take train sequences only, so the held-out
    ones land in ``test`` (in ``val`` only when there are too few train sequences to fill subjects 0 and 1)."""
    per = SEQUENCES_PER_SUBJECT - 1
    rest = num_train - per * num_heldout
    if num_train <= 0 or num_heldout < 0 or rest < 0:
        raise DataError(None, f"cannot place {num_heldout} held-out sequences with {num_train} train ones: s0 holds "
                              f"out one in five, so use --train >= {per * num_heldout}")
    first = [min(per, rest - rest // 2)]
    first.append(min(per, rest - first[0]))
    rest -= sum(first)
    chunks = [(n, False) for n in first if n] + [(per, True)] * num_heldout
    while rest > 0:
        chunks.append((min(per, rest), False))
        rest -= per
    out = []
    for s, (n, held) in enumerate(chunks):
        out += [(f"toy-subject-{s:02d}", f"seq{q:02d}", False) for q in range(n)]
        if held:
            out.append((f"toy-subject-{s:02d}", f"seq{per:02d}", True))
    return out


def generate(out: str, num_train: int, num_heldout: int, config: ToyWorldConfig, seed: int = 0) -> list[str]:
    """Write the whole raw dataset (resumable: finished sequences are kept). Returns the sequence folders."""
    hand_model = procedural_hand()
    folders = []
    entries = layout(num_train, num_heldout)
    for i, (subject, sequence, _) in enumerate(tqdm(entries, desc="toy world sequences")):
        seq_dir = os.path.join(out, subject, sequence)
        folders.append(seq_dir)
        if os.path.isfile(os.path.join(seq_dir, "meta.yml")):
            continue
        write_sequence(sample_scene(seed * 100_003 + i, config, hand_model), seq_dir, config, hand_model)
    write_json(os.path.join(out, "toy_world_summary.json"), {
        "num_train": num_train, "num_heldout": num_heldout, "seed": seed, "config": dataclasses.asdict(config),
        "sequences": [{"folder": f"{s}/{q}", "held_out": h} for s, q, h in entries]})
    return folders


# ------------------------------------------------------------------------------------------------ CLI
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m data_tools.pose.toy_world", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write N train + M held-out sequences in the DexYCB layout")
    gen.add_argument("--out", required=True, help="raw dataset folder (DexYCB layout)")
    gen.add_argument("--train", type=int, default=160, help="train sequences (default 160)")
    gen.add_argument("--heldout", type=int, default=16, help="held-out sequences, at most train/4 (default 16)")
    gen.add_argument("--seed", type=int, default=0, help="dataset seed (sequence i uses seed*100003+i)")
    gen.add_argument("--config", default=None, help="world YAML (configs/toy_world/default.yaml)")
    gen.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    gen.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from data_tools.io.cli import setup_logging
    from data_tools.io.config import load_config

    args = parse_args(argv)
    setup_logging(args.verbose)
    if args.command == "generate":
        config = load_config(ToyWorldConfig, args.config, args.set)
        folders = generate(args.out, args.train, args.heldout, config, args.seed)
        logger.info("%d sequences in %s", len(folders), args.out)
    return 0


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
