"""A procedural hand-object world that tiny models can learn on CPU.

Each sequence is a random grasp (``data_tools.trajectory.generate_grasp_trajectory``: the procedural hand
approaches, closes on and lifts a built-in object) filmed by a randomly placed camera. The *conditions* come from
the plain pose-stage renderer (depth, seg mask, keypoints); the *"real" video* is a deterministic, richer
rendering of the same scene built on the same rasteriser outputs (``data_tools.render.render_parts``: depth,
normals, class ids): a shaded skin-coloured hand, textured objects (stripes / checks / a label band in object
coordinates), a wooden table, a wallpaper backdrop, one directional light with Blinn-Phong highlights and a
shadow map (a second ``render_parts`` pass from the light). Materials and light are drawn from the sequence seed.

Sequences are written in the official DexYCB layout (``<subject>/<sequence>/<serial>/color_%06d.jpg``,
``aligned_depth_to_color_%06d.png``, ``labels_%06d.npz``, ``meta.yml``), so ``data_tools.datasets.dexycb``
converts them unchanged (s0 split: the 5th sequence of a subject is held out; held-out sequences are placed
in subjects 2, 3, ... so they land in ``test``).

    python -m data_tools.toy_world generate --out data/toy_world/raw --train 160 --heldout 16
    python -m data_tools.datasets.dexycb --root data/toy_world/raw --out data/toy_world/processed --size 64x96
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
from typing import Sequence

import cv2
import numpy as np
import torch
import yaml
from tqdm import tqdm

from data_tools.atomic import atomic_path, write_json, write_text
from data_tools.camera import Camera, look_at, rotation_matrix
from data_tools.errors import DataError, require_file
from data_tools.geometry_maps import rgb_to_normals
from data_tools.metrics.segmentation import iou
from data_tools.objects import BUILTIN_OBJECTS, ObjectMesh, builtin_object, corner_normals
from data_tools.procedural_hand import procedural_hand
from data_tools.render import Part, RenderConfig, render_parts
from data_tools.segmentation import BACKGROUND_CLASS, DEXYCB_HAND_LABEL, HAND_CLASS, classes_from_colors
from data_tools.training import LoopConfig, OptimizerConfig, Trainer, TrainingSpec
from data_tools.trajectory import Trajectory, generate_grasp_trajectory, save_trajectory
from data_tools.video_io import write_image

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


# ------------------------------------------------------------------------------------------------ model bases
# The stages load real weights from local diffusers folders; for this world those folders are made here: tiny
# random text encoders and transformers (seeded) plus a VAE trained briefly on the world's frames (a random VAE
# cannot reconstruct anything, see docs/toy_world.md). The stages then train with their normal entry points.
@dataclasses.dataclass
class VAETrainConfig:
    """Brief VAE training on the world's clips (videos and condition maps mixed)."""

    num_frames: int = 9          # frames per sample (CogVideoX VAE); the image VAE draws one of them
    size: list[int] = dataclasses.field(default_factory=lambda: [96, 144])
    crop: list[int] | None = None  # train on random crops of this size (the VAEs are convolutional; much cheaper)
    kl_weight: float = 1e-6
    video_fraction: float = 0.5  # share of samples that are "real" video (the rest: a random condition map)
    loop: LoopConfig = dataclasses.field(default_factory=LoopConfig)
    optim: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)


@dataclasses.dataclass
class BasesConfig:
    """Sizes of the toy "pretrained" components of both stages (YAML: ``configs/toy_world/bases.yaml``)."""

    dataset: str = "outputs/toy_world/processed"
    out: str = "assets/toy_world"
    seed: int = 0
    motion_transformer: dict = dataclasses.field(default_factory=dict)   # CogVideoXTransformer3DModel kwargs
    motion_vae: dict = dataclasses.field(default_factory=dict)           # AutoencoderKLCogVideoX kwargs
    appearance_transformer: dict = dataclasses.field(default_factory=dict)  # FluxTransformer2DModel kwargs
    appearance_vae: dict = dataclasses.field(default_factory=dict)          # AutoencoderKL kwargs
    t5: dict = dataclasses.field(default_factory=dict)                  # T5Config kwargs (ByT5 tokenizer)
    clip: dict = dataclasses.field(default_factory=dict)                # CLIPTextConfig kwargs (byte tokenizer)
    clip_max_length: int = 32
    motion_vae_train: VAETrainConfig = dataclasses.field(default_factory=VAETrainConfig)
    appearance_vae_train: VAETrainConfig = dataclasses.field(default_factory=VAETrainConfig)
    decoder_finetune: VAETrainConfig = dataclasses.field(default_factory=VAETrainConfig)  # finetune-decoder


class ClipFrames(torch.utils.data.Dataset):
    """Clips of a split as model-range tensors: ``(3, T, H, W)`` (video VAE) or ``(3, H, W)`` (image VAE); each
    item is the real video or, with probability ``1 - video_fraction``, one of its condition maps."""

    def __init__(self, root: str, split: str, num_frames: int, size, video_fraction: float, image: bool,
                 seed: int = 0, crop=None):
        from data_tools.hoi_dataset import HOISplit

        self.split = HOISplit(root, split, ["hand_keypoints", "depth", "seg_mask"], num_frames, tuple(size))
        self.video_fraction, self.image, self.crop = video_fraction, image, crop
        self.rng = np.random.default_rng(seed)
        self.cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.split)

    def streams(self, index: int) -> np.ndarray:
        """``(4, T, H, W, 3)`` uint8: video, keypoints, depth, seg mask (cached)."""
        if index not in self.cache:
            b = self.split[index]
            self.cache[index] = np.stack([b.video] + [b.conditions[n] for n in ("hand_keypoints", "depth", "seg_mask")])
        return self.cache[index]

    def __getitem__(self, index: int) -> torch.Tensor:
        from data_tools.bundle import to_model_range

        streams = self.streams(index)
        which = 0 if self.rng.random() < self.video_fraction else int(self.rng.integers(1, len(streams)))
        frames = streams[which]
        if self.crop:
            h, w = self.crop
            top = int(self.rng.integers(0, frames.shape[1] - h + 1))
            left = int(self.rng.integers(0, frames.shape[2] - w + 1))
            frames = frames[:, top:top + h, left:left + w]
        if self.image:
            return to_model_range(frames[int(self.rng.integers(len(frames)))])
        return to_model_range(frames).permute(1, 0, 2, 3)  # (3, T, H, W)


class VAESpec(TrainingSpec):
    """Reconstruction (MSE) + ``kl_weight`` KL of a diffusers VAE (single process); ``decoder_only`` freezes the
    encoder (latents already computed with it stay valid)."""

    def __init__(self, vae, kl_weight: float, decoder_only: bool = False):
        self.vae, self.kl_weight, self.decoder_only = vae, kl_weight, decoder_only

    def trainable_module(self) -> torch.nn.Module:
        self.vae.train().requires_grad_(True)
        if self.decoder_only:
            self.vae.encoder.requires_grad_(False)
            if getattr(self.vae, "quant_conv", None) is not None:
                self.vae.quant_conv.requires_grad_(False)
        return self.vae

    def compute_loss(self, model, batch, accelerator) -> torch.Tensor:
        x = batch.to(accelerator.device)
        vae = accelerator.unwrap_model(model)
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        return torch.nn.functional.mse_loss(recon, x) + self.kl_weight * posterior.kl().mean()


def train_vae(vae, dataset: ClipFrames, cfg: VAETrainConfig, decoder_only: bool = False) -> dict:
    """Train ``vae`` in place with the shared ``Trainer``; returns its summary."""
    return Trainer(VAESpec(vae, cfg.kl_weight, decoder_only), dataset, cfg.loop, cfg.optim,
                   {"vae_train": dataclasses.asdict(cfg), "decoder_only": decoder_only}).train()


def finetune_decoder(vae_dir: str, kind: str, dataset: str, cfg: VAETrainConfig) -> dict:
    """Train the decoder of a saved toy VAE further (encoder, latents and scaling factors unchanged) and save it
    back; returns the held-out reconstruction PSNR before and after."""
    from diffusers import AutoencoderKL, AutoencoderKLCogVideoX

    image = kind == "appearance"
    vae = (AutoencoderKL if image else AutoencoderKLCogVideoX).from_pretrained(vae_dir)
    before = vae_psnr(vae.eval(), dataset, "test", cfg.num_frames, cfg.size, image)
    data = ClipFrames(dataset, "train", cfg.num_frames, cfg.size, cfg.video_fraction, image, 0, cfg.crop)
    summary = train_vae(vae, data, cfg, decoder_only=True)
    after = vae_psnr(vae.eval(), dataset, "test", cfg.num_frames, cfg.size, image)
    vae.save_pretrained(vae_dir)
    report = {f"{kind}_decoder_psnr_before": before, f"{kind}_decoder_psnr_after": after,
              f"{kind}_decoder_steps": summary["step"]}
    logger.info("%s", report)
    return report


@torch.no_grad()
def reconstruct(vae, x: torch.Tensor) -> torch.Tensor:
    """Posterior-mean reconstruction of model-range frames (video ``(B,3,T,H,W)`` or images ``(B,3,H,W)``)."""
    return vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)


@torch.no_grad()
def vae_psnr(vae, root: str, split: str, num_frames: int, size, image: bool, limit: int = 8) -> float:
    """Mean PSNR (dB) of reconstructed real videos of ``split`` (``image``: frame by frame)."""
    from data_tools.bundle import from_model_range, to_model_range
    from data_tools.hoi_dataset import HOISplit
    from data_tools.metrics.image_metrics import psnr

    split_ds = HOISplit(root, split, [], num_frames, tuple(size))
    values = []
    for i in range(min(limit, len(split_ds))):
        video = split_ds[i].video
        x = to_model_range(video)  # (T, 3, H, W)
        rec = reconstruct(vae, x) if image else reconstruct(vae, x.permute(1, 0, 2, 3)[None])[0].permute(1, 0, 2, 3)
        values.append(float(np.mean(psnr(from_model_range(rec[: len(video)]), video))))
    return float(np.mean(values))


@torch.no_grad()
def latent_statistics(vae, dataset: ClipFrames, limit: int = 16) -> tuple[float, float]:
    """Mean and standard deviation of posterior-mean latents over real videos (for the scaling factors)."""
    from data_tools.bundle import to_model_range

    zs = []
    for i in range(min(limit, len(dataset))):
        frames = to_model_range(dataset.streams(i)[0])
        x = frames if dataset.image else frames.permute(1, 0, 2, 3)[None]
        zs.append(vae.encode(x).latent_dist.mode().flatten())  # full frames (ClipFrames.streams is uncropped)
    z = torch.cat(zs)
    return float(z.mean()), float(z.std())


def _text_components(cfg: BasesConfig):
    from transformers import ByT5Tokenizer, CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from appearance_gen.components import byte_clip_tokenizer

    torch.manual_seed(cfg.seed)
    t5_tok = ByT5Tokenizer()
    t5 = T5EncoderModel(T5Config(vocab_size=len(t5_tok), decoder_start_token_id=0, **cfg.t5)).eval()
    clip_tok = byte_clip_tokenizer(cfg.clip_max_length)
    clip = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(clip_tok), bos_token_id=clip_tok.bos_token_id, eos_token_id=clip_tok.eos_token_id,
        pad_token_id=clip_tok.pad_token_id, max_position_embeddings=cfg.clip_max_length, **cfg.clip)).eval()
    return t5_tok, t5, clip_tok, clip


def build_bases(cfg: BasesConfig, train: bool = True) -> dict:
    """Write ``<out>/motion_base`` (CogVideoX-I2V layout) and ``<out>/appearance_base`` (FLUX layout), their VAEs
    trained on the world's ``train`` split (``train=False``: random VAEs). Returns the measured reconstruction
    PSNRs on the ``test`` split, random vs trained (also ``<out>/vae_report.json``)."""
    from diffusers import AutoencoderKL, AutoencoderKLCogVideoX, FlowMatchEulerDiscreteScheduler
    from diffusers import CogVideoXDPMScheduler, CogVideoXTransformer3DModel, FluxTransformer2DModel

    from motion_gen.components import COGVIDEOX_SCHEDULER

    t5_tok, t5, clip_tok, clip = _text_components(cfg)
    report = {}
    vaes = {}
    for kind, cls, kwargs, tcfg in (("motion", AutoencoderKLCogVideoX, cfg.motion_vae, cfg.motion_vae_train),
                                    ("appearance", AutoencoderKL, cfg.appearance_vae, cfg.appearance_vae_train)):
        image = kind == "appearance"
        torch.manual_seed(cfg.seed + 1)
        vae = cls(**kwargs)
        frames = tcfg.num_frames
        report[f"{kind}_random_psnr"] = vae_psnr(vae.eval(), cfg.dataset, "test", frames, tcfg.size, image)
        if train:
            data = ClipFrames(cfg.dataset, "train", frames, tcfg.size, tcfg.video_fraction, image, cfg.seed, tcfg.crop)
            summary = train_vae(vae, data, tcfg)
            report[f"{kind}_train_steps"] = summary["step"]
            vae.eval()
            mean, std = latent_statistics(vae, data)
            factors = {"scaling_factor": 1.0 / std}
            if image:
                factors["shift_factor"] = mean
            vae.register_to_config(**factors)
            report[f"{kind}_trained_psnr"] = vae_psnr(vae, cfg.dataset, "test", frames, tcfg.size, image)
            report[f"{kind}_latent_factors"] = factors
        vaes[kind] = vae.eval()
        logger.info("%s VAE: %s", kind, {k: v for k, v in report.items() if k.startswith(kind)})
    torch.manual_seed(cfg.seed + 2)
    motion_transformer = CogVideoXTransformer3DModel(**cfg.motion_transformer)
    torch.manual_seed(cfg.seed + 3)
    flux_transformer = FluxTransformer2DModel(**cfg.appearance_transformer)
    flux_scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
                                                     max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096)
    folders = {
        "motion_base": {"transformer": motion_transformer, "vae": vaes["motion"], "text_encoder": t5,
                        "tokenizer": t5_tok, "scheduler": CogVideoXDPMScheduler(**COGVIDEOX_SCHEDULER)},
        "appearance_base": {"transformer": flux_transformer, "vae": vaes["appearance"], "text_encoder": clip,
                            "tokenizer": clip_tok, "text_encoder_2": t5, "tokenizer_2": t5_tok,
                            "scheduler": flux_scheduler}}
    for folder, parts in folders.items():
        for sub, part in parts.items():
            part.save_pretrained(os.path.join(cfg.out, folder, sub))
    write_json(os.path.join(cfg.out, "vae_report.json"), report)
    return report


def subset_latents(source: str, dest: str, condition_names: Sequence[str]) -> str:
    """A latent store for a subset of the conditions of ``source`` (a ``motion_gen.prepare`` store made with
    more conditions): the sample files are hard-linked (the extra condition tensors are simply not read) and
    ``store.json`` names the subset. Saves re-encoding the same clips once per condition set."""
    from data_tools.latent_store import FORMAT, INDEX_FILE, SAMPLES_DIR, STORE_FILE, read_meta

    meta = read_meta(source)
    missing = [n for n in condition_names if n not in meta["condition_names"]]
    if missing:
        raise DataError(source, f"store has no latents for {missing} (it holds {meta['condition_names']})")
    os.makedirs(os.path.join(dest, SAMPLES_DIR), exist_ok=True)
    for name in os.listdir(os.path.join(source, SAMPLES_DIR)):
        target = os.path.join(dest, SAMPLES_DIR, name)
        if not os.path.exists(target):
            os.link(os.path.join(source, SAMPLES_DIR, name), target)
    with open(os.path.join(source, INDEX_FILE), encoding="utf-8") as f:
        write_text(os.path.join(dest, INDEX_FILE), f.read())
    meta = {**meta, "condition_names": list(condition_names), "subset_of": os.path.abspath(source)}
    write_json(os.path.join(dest, STORE_FILE), {"format": FORMAT, "meta": meta})
    return dest


def joint_base(init_base: str, base_out: str) -> str:
    """A FLUX base folder ``base_out`` whose components are relative symlinks to ``init_base``'s, except a copy of
    its transformer (which the joint training replaces)."""
    import shutil

    os.makedirs(base_out, exist_ok=True)
    for name in sorted(os.listdir(init_base)):
        target = os.path.join(base_out, name)
        if name == "transformer":
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(os.path.join(init_base, name), target)
        elif not os.path.lexists(target):
            os.symlink(os.path.relpath(os.path.join(init_base, name), base_out), target)
    return base_out


def pretrain_appearance(config_path: str, overrides: Sequence[str] = (), base_out: str | None = None,
                        init_base: str | None = None) -> dict:
    """Train the toy FLUX base transformer jointly with the two ControlNet branches (the normal appearance
    training spec and loss, with the base unfrozen): a frozen *random* base cannot be steered by the branches
    (measured, docs/benchmarks.md), a real FLUX is pretrained. With ``init_base``, ``base_out`` is first made
    from it (``joint_base``) and used as ``model.base_path``. Writes the branches to ``<output_dir>/final``, the
    transformer to ``<output_dir>/final/transformer`` and into ``base_out``/transformer when given."""
    from appearance_gen.config import load_appearance_config
    from appearance_gen.train import AppearanceTrainingSpec, frame_dataset, validation_bundles
    from data_tools.config import to_dict

    class JointSpec(AppearanceTrainingSpec):
        def __init__(self, cfg, val_bundles):
            super().__init__(cfg, val_bundles)
            self.components.transformer.float().requires_grad_(True).train()
            self.joint = torch.nn.ModuleDict({"controlnets": self.controlnets,
                                              "transformer": self.components.transformer})

        def trainable_module(self):
            return self.joint

        def compute_loss(self, model, batch, accelerator):
            return super().compute_loss(model["controlnets"], batch, accelerator)

        def validate(self, model, accelerator, step, output_dir):
            super().validate(model["controlnets"], accelerator, step, output_dir)

        def save_weights(self, model, output_dir):
            model["controlnets"].save_pretrained(output_dir, safe_serialization=True)
            model["transformer"].save_pretrained(os.path.join(output_dir, "transformer"), safe_serialization=True)

    overrides = list(overrides)
    if init_base and base_out:
        overrides.append(f"model.base_path={joint_base(init_base, base_out)}")
    cfg = load_appearance_config(config_path, overrides)
    summary = Trainer(JointSpec(cfg, validation_bundles(cfg)), frame_dataset(cfg, cfg.data.split), cfg.train.loop,
                      cfg.train.optim, {"appearance": to_dict(cfg), "joint_base_training": True}).train()
    if base_out:
        import shutil

        target = os.path.join(base_out, "transformer")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(os.path.join(summary["final_dir"], "transformer"), target)
    return summary


# ------------------------------------------------------------------------------------------------ segmenter
# Generated frames have no labels: a small pixel classifier (dilated 3x3 convolutions, 33x33 context) fitted
# on the world's ground-truth frames and seg masks labels them background / hand / object, so the generated hand
# and object regions can be compared with the conditioning seg mask (mask IoU).
REGION_NAMES = ("background", "hand", "object")
OBJECT_CLASSES = sorted({spec[2] for spec in BUILTIN_OBJECTS.values()})
SEG_CANDIDATES = [HAND_CLASS, BACKGROUND_CLASS] + OBJECT_CLASSES


def region_labels(seg_rgb: np.ndarray) -> np.ndarray:
    """Coloured seg mask ``(..., H, W, 3)`` -> region ids (0 background, 1 hand, 2 object)."""
    classes = classes_from_colors(seg_rgb, candidates=SEG_CANDIDATES)
    return np.where(classes == HAND_CLASS, 1, np.where(classes == BACKGROUND_CLASS, 0, 2)).astype(np.int64)


class PixelSegmenter(torch.nn.Module):
    """Per-pixel background / hand / object classifier: 3x3 convolutions with growing dilation (1, 2, 4, 8, 1:
    a 33x33 pixel context, enough to tell a skin-coloured hand from the wooden table by its shape)."""

    def __init__(self, channels: int = 32, dilations: Sequence[int] = (1, 2, 4, 8, 1)):
        super().__init__()
        convs, c_in = [], 3
        for d in dilations:
            convs += [torch.nn.Conv2d(c_in, channels, 3, padding=d, dilation=d), torch.nn.GELU()]
            c_in = channels
        self.body = torch.nn.Sequential(*convs, torch.nn.Conv2d(channels, len(REGION_NAMES), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 3, H, W)`` of images ``(B, 3, H, W)`` in [0, 1]."""
        return self.body(x)

    @torch.no_grad()
    def predict(self, frames: np.ndarray, batch: int = 16) -> np.ndarray:
        """Region ids ``(T, H, W)`` of uint8 frames ``(T, H, W, 3)``."""
        out = []
        for i in range(0, len(frames), batch):
            x = torch.from_numpy(np.ascontiguousarray(frames[i:i + batch])).permute(0, 3, 1, 2).float() / 255
            out.append(self.eval()(x).argmax(1).numpy())
        return np.concatenate(out)


def fit_segmenter(frames: np.ndarray, labels: np.ndarray, steps: int = 600, batch: int = 16, lr: float = 3e-3,
                  seed: int = 0, progress: bool = True) -> PixelSegmenter:
    """Fit a ``PixelSegmenter`` on frames ``(N, H, W, 3)`` and region ids ``(N, H, W)`` (class-balanced loss)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = PixelSegmenter()
    counts = np.bincount(labels.reshape(-1), minlength=len(REGION_NAMES)).astype(np.float64)
    weight = torch.tensor((counts.sum() / np.maximum(counts, 1)) ** 0.5, dtype=torch.float32)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    x_all = torch.from_numpy(frames).permute(0, 3, 1, 2)
    y_all = torch.from_numpy(labels)
    for _ in tqdm(range(steps), desc="fit segmenter", disable=not progress):
        idx = torch.from_numpy(rng.integers(0, len(frames), batch))
        x = x_all[idx].float() / 255
        if rng.random() < 0.5:  # generated frames are blurrier than renders
            x = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
        loss = torch.nn.functional.cross_entropy(net(x), y_all[idx], weight=weight / weight.mean())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def region_iou(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """IoU of the hand, object and foreground regions between two region-id maps (frames pooled)."""
    return {"iou_hand": iou(pred == 1, target == 1), "iou_object": iou(pred == 2, target == 2),
            "iou_foreground": iou(pred > 0, target > 0)}


def split_frames(root: str, split: str, size, num_frames: int | None = None, limit: int | None = None):
    """Real frames ``(N, H, W, 3)`` and their region ids ``(N, H, W)`` of a processed split."""
    from data_tools.hoi_dataset import HOISplit

    ds = HOISplit(root, split, ["seg_mask"], num_frames, tuple(size))
    n = len(ds) if limit is None else min(limit, len(ds))
    items = [ds[i] for i in range(n)]
    return (np.concatenate([b.video for b in items]),
            np.concatenate([region_labels(b.conditions["seg_mask"]) for b in items]))


def save_segmenter(net: PixelSegmenter, path: str) -> str:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, tmp)
    return path


def load_segmenter(path: str) -> PixelSegmenter:
    from safetensors.torch import load_file

    net = PixelSegmenter()
    try:
        net.load_state_dict(load_file(require_file(path, "segmenter weights")))
    except (RuntimeError, OSError) as exc:
        raise DataError(path, f"not PixelSegmenter weights: {exc}") from None
    return net.eval()


def segmentation_report(run_dirs: Sequence[str], net: PixelSegmenter, output: str | None = None) -> list[dict]:
    """Mask IoU of generated vs conditioning regions per run folder of ``motion_gen.evaluate`` (per-sample IoU,
    averaged); also the segmenter on the reference videos (its own accuracy). Writes ``<output>`` (json)."""
    from data_tools.evaluation import load_run
    from data_tools.video_io import read_video

    rows, reference_done = [], {}
    for run_dir in run_dirs:
        run = load_run(run_dir)
        per = []
        for record in tqdm(run.records, desc=f"seg IoU [{run.label}]"):
            generated = read_video(run.path(record, "generated"))
            t, h, w = generated.shape[:3]
            seg = read_video(os.path.join(run.path(record, "clip_dir"), "seg_mask.mp4"), t, (h, w),
                             record.get("resize_mode", "crop"), "nearest")
            target = region_labels(seg)
            per.append(region_iou(net.predict(generated), target))
            key = record.get("reference")
            if key and key not in reference_done:
                real = read_video(key, t, (h, w), record.get("resize_mode", "crop"), "area")
                reference_done[key] = region_iou(net.predict(real), target)
        row = {"label": run.label, "conditions": run.conditions, "num_samples": len(per)}
        row.update({k: float(np.nanmean([p[k] for p in per])) for k in per[0]})
        rows.append(row)
    if reference_done:
        values = list(reference_done.values())
        rows.append({"label": "ground truth (segmenter check)", "conditions": [], "num_samples": len(values),
                     **{k: float(np.nanmean([v[k] for v in values])) for k in values[0]}})
    if output:
        write_json(output, rows)
    return rows


# ------------------------------------------------------------------------------------------------ ablation table
def copy_baseline(eval_dir: str, root: str, split: str, num_frames: int, size, fps: float = 15) -> str:
    """A run folder ``copy_first_frame`` in ``motion_gen.evaluate``'s format whose "generated" videos hold the
    ground-truth first frame still: the floor any motion model must beat."""
    from data_tools.hoi_dataset import HOISplit
    from data_tools.video_io import write_video

    ds = HOISplit(root, split, [], num_frames, tuple(size))
    run_dir = os.path.join(eval_dir, "copy_first_frame")
    write_json(os.path.join(run_dir, "run.json"), {"label": "copy_first_frame", "conditions": [],
                                                   "num_samples": len(ds), "size": list(size), "num_frames": num_frames})
    for i in range(len(ds)):
        bundle = ds[i]
        stem = os.path.join(run_dir, "videos", f"{i:05d}")
        write_video(stem + ".mp4", np.repeat(bundle.first_frame[None], num_frames, 0), fps=fps)
        write_json(stem + ".json", {"index": i, "generated": f"videos/{i:05d}.mp4", "conditions": [],
                                    "name": ds.clip_name(i), "reference": os.path.abspath(ds.path("video", i)),
                                    "clip_dir": os.path.abspath(os.path.join(ds.root, ds.clip_name(i))),
                                    "resize_mode": "crop"})
    return run_dir


def ablation_markdown(eval_dir: str) -> str:
    """One table from ``results.json`` (PSNR / SSIM) and ``seg_iou.json`` (mask IoU) of an evaluation folder."""
    from data_tools.bundle import CONDITION_NAMES

    with open(os.path.join(eval_dir, "results.json"), encoding="utf-8") as f:
        rows = json.load(f)["runs"]
    seg_path = os.path.join(eval_dir, "seg_iou.json")
    seg = {}
    if os.path.isfile(seg_path):
        with open(seg_path, encoding="utf-8") as f:
            seg = {r["label"]: r for r in json.load(f)}
    for r in rows:  # what the model read (a run may load a condition only to give the clip its shape)
        run_json = os.path.join(eval_dir, r["label"], "run.json")
        if os.path.isfile(run_json):
            with open(run_json, encoding="utf-8") as f:
                r["conditions"] = json.load(f).get("generator_conditions", r.get("conditions", []))
    names = [c for c in CONDITION_NAMES if any(c in r.get("conditions", []) for r in rows)]
    fmt = lambda v, d: "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{d}f}"  # noqa: E731
    header = ["Run", *names, "PSNR ↑", "SSIM ↑", "IoU hand ↑", "IoU object ↑", "IoU fg ↑", "N"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    extra = [r for label, r in seg.items() if label not in {row["label"] for row in rows}]
    for r in rows + extra:
        iou_row = seg.get(r["label"], {})
        cells = [r["label"], *["✓" if c in r.get("conditions", []) else "" for c in names],
                 fmt(r.get("psnr"), 2), fmt(r.get("ssim"), 3), fmt(iou_row.get("iou_hand"), 3),
                 fmt(iou_row.get("iou_object"), 3), fmt(iou_row.get("iou_foreground"), 3), str(r.get("num_samples", ""))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def appearance_report(runs: dict[str, tuple[str, Sequence[str]]], root: str, split: str, size,
                      segmenter: PixelSegmenter, seed: int = 0, limit: int | None = None) -> list[dict]:
    """First frames of the appearance stage on a split: PSNR / SSIM against the real first frame and region IoU
    of the generated frame against its seg mask, for each ``{label: (config path, overrides)}`` run."""
    from appearance_gen.generator import AppearanceGenerator
    from data_tools.hoi_dataset import HOISplit
    from data_tools.metrics.image_metrics import psnr, ssim

    rows = []
    for label, (config, overrides) in runs.items():
        gen = AppearanceGenerator.load(config, list(overrides), device="cpu")
        ds = HOISplit(root, split, gen.condition_names, 1, tuple(size))
        per = []
        for i in tqdm(range(len(ds) if limit is None else min(limit, len(ds))), desc=f"appearance [{label}]"):
            bundle = ds[i]
            image = gen.generate(bundle, [seed])[0]
            real = bundle.video[0]
            score = region_iou(segmenter.predict(image[None]), region_labels(bundle.conditions["seg_mask"][:1]))
            per.append({"psnr": float(psnr(image, real)), "ssim": float(ssim(image, real)), **score})
        rows.append({"label": label, "conditions": gen.condition_names, "num_samples": len(per),
                     **{k: float(np.nanmean([p[k] for p in per])) for k in per[0]}})
    return rows


# ------------------------------------------------------------------------------------------------ CLI
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from data_tools.datasets.runner import parse_size

    parser = argparse.ArgumentParser(prog="python -m data_tools.toy_world", description=__doc__,
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
    bases = sub.add_parser("bases", help="write the toy 'pretrained' folders of both stages (VAEs trained here)")
    bases.add_argument("--config", default="configs/toy_world/bases.yaml")
    bases.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    bases.add_argument("--random-vae", action="store_true", help="keep the VAEs random (no training)")
    bases.add_argument("-v", "--verbose", action="store_true")
    fd = sub.add_parser("finetune-decoder", help="train a saved toy VAE's decoder further (latents stay valid)")
    fd.add_argument("--config", default="configs/toy_world/bases.yaml")
    fd.add_argument("--kind", choices=("motion", "appearance"), default="motion")
    fd.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    fd.add_argument("--again", action="store_true", help="fine-tune even if the report says it was done")
    fd.add_argument("-v", "--verbose", action="store_true")
    fit = sub.add_parser("fit-segmenter", help="fit the background/hand/object pixel classifier on real frames")
    fit.add_argument("--root", required=True, help="processed toy-world dataset")
    fit.add_argument("--out", default="assets/toy_world/segmenter.safetensors")
    fit.add_argument("--size", type=parse_size, default=(96, 144), metavar="HxW", help="default 96x144")
    fit.add_argument("--steps", type=int, default=600)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("-v", "--verbose", action="store_true")
    sg = sub.add_parser("seg-iou", help="mask IoU of generated hand/object regions vs the conditioning seg mask")
    sg.add_argument("runs", nargs="+", help="run folders of motion_gen.evaluate (holding run.json)")
    sg.add_argument("--segmenter", default="assets/toy_world/segmenter.safetensors")
    sg.add_argument("--out", default=None, help="json output (default: <first run>/../seg_iou.json)")
    sg.add_argument("-v", "--verbose", action="store_true")
    cb = sub.add_parser("copy-baseline", help="the 'hold the first frame' run folder of an evaluation")
    cb.add_argument("--eval-dir", default="outputs/toy_world/eval")
    cb.add_argument("--root", default="outputs/toy_world/processed")
    cb.add_argument("--split", default="test")
    cb.add_argument("--num-frames", type=int, default=9)
    cb.add_argument("--size", type=parse_size, default=(64, 96), metavar="HxW")
    cb.add_argument("-v", "--verbose", action="store_true")
    tb = sub.add_parser("table", help="the ablation table (markdown) of an evaluation folder")
    tb.add_argument("--eval-dir", default="outputs/toy_world/eval")
    tb.add_argument("-v", "--verbose", action="store_true")
    pa = sub.add_parser("pretrain-appearance", help="train the toy FLUX base jointly with the ControlNet branches")
    pa.add_argument("--config", default="configs/appearance/toy_world.yaml")
    pa.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    pa.add_argument("--base-out", default=None, help="FLUX base folder whose transformer/ gets the trained one")
    pa.add_argument("--init-base", default=None, help="make --base-out from this base (random toy FLUX) first")
    pa.add_argument("-v", "--verbose", action="store_true")
    ap = sub.add_parser("appearance-eval", help="first frames of the appearance stage on the held-out split: "
                                                 "PSNR/SSIM vs the real frame, region IoU vs the seg mask")
    ap.add_argument("--config", nargs="+", default=["configs/appearance/toy_world.yaml",
                                                    "configs/appearance/toy_world_joint.yaml"],
                    help="appearance configs, one row each (plus the first one with untrained branches)")
    ap.add_argument("--root", default="outputs/toy_world/processed")
    ap.add_argument("--split", default="test")
    ap.add_argument("--size", type=parse_size, default=(64, 96), metavar="HxW")
    ap.add_argument("--segmenter", default="assets/toy_world/segmenter.safetensors")
    ap.add_argument("--out", default="outputs/toy_world/eval_appearance.json")
    ap.add_argument("-v", "--verbose", action="store_true")
    ss = sub.add_parser("subset-latents", help="a motion latent store for a subset of a store's conditions")
    ss.add_argument("source", help="store written by motion_gen.prepare")
    ss.add_argument("dest")
    ss.add_argument("--conditions", nargs="*", default=[], help="condition names to keep (none: no conditions)")
    ss.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from data_tools.cli import setup_logging
    from data_tools.config import load_config

    args = parse_args(argv)
    setup_logging(args.verbose)
    if args.command == "generate":
        config = load_config(ToyWorldConfig, args.config, args.set)
        folders = generate(args.out, args.train, args.heldout, config, args.seed)
        logger.info("%d sequences in %s", len(folders), args.out)
    elif args.command == "bases":
        report = build_bases(load_config(BasesConfig, args.config, args.set), train=not args.random_vae)
        logger.info("VAE reconstruction PSNR (test split): %s", report)
    elif args.command == "finetune-decoder":
        cfg = load_config(BasesConfig, args.config, args.set)
        path = os.path.join(cfg.out, "vae_report.json")
        with open(require_file(path, "VAE report of the bases"), encoding="utf-8") as f:
            previous = json.load(f)
        if f"{args.kind}_decoder_steps" in previous and not args.again:
            logger.info("%s decoder already fine-tuned (%s); --again to train it further", args.kind, path)
        else:
            vae_dir = os.path.join(cfg.out, f"{args.kind}_base", "vae")
            write_json(path, {**previous, **finetune_decoder(vae_dir, args.kind, cfg.dataset, cfg.decoder_finetune)})
    elif args.command == "fit-segmenter":
        size = args.size
        frames, labels = split_frames(args.root, "train", size)
        net = fit_segmenter(frames, labels, args.steps, seed=args.seed)
        test_frames, test_labels = split_frames(args.root, "test", size)
        score = region_iou(net.predict(test_frames), test_labels)
        logger.info("segmenter on the test split's real frames: %s", score)
        save_segmenter(net, args.out)
        write_json(os.path.splitext(args.out)[0] + ".json", {"test_split_iou": score, "steps": args.steps})
    elif args.command == "copy-baseline":
        logger.info("wrote %s", copy_baseline(args.eval_dir, args.root, args.split, args.num_frames, args.size))
    elif args.command == "table":
        table = ablation_markdown(args.eval_dir)
        write_text(os.path.join(args.eval_dir, "ablation.md"), table)
        print(table)
    elif args.command == "pretrain-appearance":
        summary = pretrain_appearance(args.config, args.set, args.base_out, args.init_base)
        logger.info("trained to step %d; weights in %s", summary["step"], summary["final_dir"])
    elif args.command == "appearance-eval":
        runs = {"untrained branches": (args.config[0], ["model.controlnet_path=null"])}
        runs.update({os.path.splitext(os.path.basename(c))[0]: (c, []) for c in args.config})
        rows = appearance_report(runs, args.root, args.split, args.size, load_segmenter(args.segmenter))
        write_json(args.out, rows)
        for row in rows:
            logger.info("%s", row)
    elif args.command == "subset-latents":
        logger.info("wrote %s", subset_latents(args.source, args.dest, args.conditions))
    elif args.command == "seg-iou":
        out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.runs[0])), "seg_iou.json")
        for row in segmentation_report(args.runs, load_segmenter(args.segmenter), out):
            logger.info("%s", row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
