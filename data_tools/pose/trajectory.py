"""Hand-object trajectories: a documented file format, a GraspXL reader and a grasp generator.

File format (``.npz`` or ``.json``, same keys; see docs/pose.md). Per frame (T frames):
``hand_global_orient`` (T, 3) axis-angle, ``hand_pose`` (T, 45) axis-angle per joint (or (T, n) PCA coefficients
with ``hand_pose_space: "pca"``), ``hand_transl`` (T, 3) metres, ``object_rot`` (T, 3) axis-angle,
``object_transl`` (T, 3); per sequence: ``hand_betas`` (10,), and a ``meta`` mapping with ``hand_side``,
``hand_pose_space``, ``flat_hand_mean``, ``object`` (built-in name or mesh path), ``object_scale``,
``object_class_id``, ``camera`` (Camera dict, OpenCV convention, world->camera), ``fps``, ``prompt``, ``name``.
World frame: metres, z up, the table at z = 0.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import pickle
import zipfile

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from data_tools.io.cli import positive_int
from data_tools.io.atomic import atomic_path, write_json
from data_tools.pose.camera import Camera, look_at
from data_tools.errors import DataError, read_json_file, require_file
from data_tools.pose.mano import FINGER_CHAINS, HandModel
from data_tools.pose.objects import ObjectMesh, resolve_object, winding_number

logger = logging.getLogger(__name__)

PER_FRAME = ("hand_global_orient", "hand_pose", "hand_transl", "object_rot", "object_transl")
# Largest plausible magnitude of any trajectory value: rotations in radians (axis-angle, or MANO PCA coefficients),
# translations in metres, shape betas. A value beyond it is a unit or export error, not a pose.
PLAUSIBLE_MAGNITUDE = 100.0


@dataclasses.dataclass
class Trajectory:
    """One hand and one object over T frames, plus the camera that films them."""

    hand_global_orient: np.ndarray
    hand_pose: np.ndarray
    hand_transl: np.ndarray
    object_rot: np.ndarray
    object_transl: np.ndarray
    camera: Camera
    hand_betas: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(10))
    hand_side: str = "right"
    hand_pose_space: str = "axis_angle"
    flat_hand_mean: bool = True
    object: str = "cracker_box"
    object_scale: float = 1.0
    object_class_id: int | None = None
    fps: float = 15.0
    prompt: str = "A hand is grasping an object on a table."
    name: str = "trajectory"
    # position of each frame in the file's own frames (fractional after ``retimed``); None: 0, 1, 2, ... Not saved.
    source_frames: np.ndarray | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self):
        for key in PER_FRAME:
            setattr(self, key, np.asarray(getattr(self, key), dtype=np.float64))
        self.hand_betas = np.asarray(self.hand_betas, dtype=np.float64).reshape(-1)
        self.validate()

    @property
    def num_frames(self) -> int:
        return len(self.hand_transl)

    def validate(self, source: str | None = None) -> None:
        for key in PER_FRAME:
            arr = getattr(self, key)
            if arr.ndim != 2 or (key != "hand_pose" and arr.shape[1] != 3):
                raise DataError(source, f"'{key}' must be (T, {'n' if key == 'hand_pose' else 3}), got {arr.shape}")
        lengths = {key: len(getattr(self, key)) for key in PER_FRAME}
        if len(set(lengths.values())) > 1:
            raise DataError(source, f"per-frame arrays differ in frame count: {lengths}")
        t = lengths["hand_transl"]
        for key in (*PER_FRAME, "hand_betas"):
            values = np.asarray(getattr(self, key), dtype=np.float64)
            bad = ~np.isfinite(values) if values.ndim != 2 else ~np.isfinite(values).all(1)
            what = "is not finite"
            if not bad.any():
                too_big = np.abs(values) > PLAUSIBLE_MAGNITUDE
                bad = too_big if values.ndim != 2 else too_big.any(1)
                what = f"has a magnitude above {PLAUSIBLE_MAGNITUDE:g} (implausible)"
            if bad.any():
                where = f" at frame {int(np.argmax(bad))}" if key in PER_FRAME else ""
                raise DataError(source, f"'{key}' {what}{where}")
        if self.hand_pose_space not in ("axis_angle", "pca"):
            raise DataError(source, f"hand_pose_space must be 'axis_angle' or 'pca', got {self.hand_pose_space!r}")
        if self.hand_pose_space == "axis_angle" and self.hand_pose.shape[1] != 45:
            raise DataError(source, f"axis-angle hand_pose must have 45 values per frame, got {self.hand_pose.shape[1]}")
        if t == 0:
            raise DataError(source, "trajectory has no frames")

    def subset(self, indices) -> "Trajectory":
        """The trajectory at the given frame indices (e.g. ``data_tools.io.video_io.resample_indices``)."""
        indices = np.asarray(indices, dtype=np.int64)
        return dataclasses.replace(self, **{key: getattr(self, key)[indices] for key in PER_FRAME},
                                   source_frames=self.frame_positions()[indices])

    def frame_positions(self) -> np.ndarray:
        """Each frame's position in the trajectory file's frames (``source_frames``: float after ``retimed``; else
        the integers 0, 1, 2, ...)."""
        return np.arange(self.num_frames) if self.source_frames is None else np.asarray(self.source_frames)

    def retimed(self, fps: float) -> "Trajectory":
        """The same motion sampled at ``fps`` over the trajectory's own duration ((T - 1) / self.fps seconds):
        slerp for the hand and object orientations, linear for translations and per-joint hand pose."""
        if fps <= 0:
            raise DataError(None, f"fps must be positive, got {fps}")
        if fps == self.fps or self.num_frames == 1:
            return dataclasses.replace(self, fps=fps)
        source = np.arange(self.num_frames, dtype=np.float64)
        position = np.arange(int(np.floor((self.num_frames - 1) / self.fps * fps + 1e-9)) + 1) * (self.fps / fps)
        position = np.minimum(position, self.num_frames - 1)
        arrays = {}
        for key in PER_FRAME:
            values = getattr(self, key)
            if key in ("hand_global_orient", "object_rot"):
                arrays[key] = Slerp(source, Rotation.from_rotvec(values))(position).as_rotvec()
            else:
                arrays[key] = np.stack([np.interp(position, source, column) for column in values.T], axis=1)
        return dataclasses.replace(self, fps=fps, **arrays, source_frames=np.interp(
            position, source, self.frame_positions()))

    def meta(self) -> dict:
        return {"hand_side": self.hand_side, "hand_pose_space": self.hand_pose_space,
                "flat_hand_mean": self.flat_hand_mean, "object": self.object, "object_scale": self.object_scale,
                "object_class_id": self.object_class_id, "camera": self.camera.to_dict(), "fps": self.fps,
                "prompt": self.prompt, "name": self.name}

    def resolve_object(self, base_dir: str | None = None) -> ObjectMesh:
        """The object mesh (built-in name, or a path relative to ``base_dir``)."""
        spec = self.object
        if base_dir and not os.path.isabs(spec) and os.path.exists(os.path.join(base_dir, spec)):
            spec = os.path.join(base_dir, spec)
        return resolve_object(spec, self.object_scale, self.object_class_id)

    def hand_model(self, mano_path: str | None = None) -> HandModel:
        """The MANO model from ``mano_path`` (same side), else the built-in procedural hand."""
        from data_tools.pose.procedural_hand import load_hand_model

        return load_hand_model(mano_path, side=self.hand_side, use_pca=self.hand_pose_space == "pca",
                               num_pca_comps=self.hand_pose.shape[1] if self.hand_pose_space == "pca" else 45,
                               flat_hand_mean=self.flat_hand_mean)


def save_trajectory(traj: Trajectory, path: str | os.PathLike) -> str:
    """Write ``.npz`` (arrays + a JSON ``meta`` string) or ``.json`` (lists), atomically."""
    path = os.fspath(path)
    arrays = {key: getattr(traj, key) for key in PER_FRAME + ("hand_betas",)}
    if path.endswith(".json"):
        write_json(path, {**{k: v.tolist() for k, v in arrays.items()}, "meta": traj.meta()})
    elif path.endswith(".npz"):
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, meta=np.array(json.dumps(traj.meta())), **arrays)
    else:
        raise DataError(path, "trajectory files end in .npz or .json")
    return path


def load_trajectory(path: str | os.PathLike) -> Trajectory:
    """Read a trajectory written by ``save_trajectory`` (or by hand in the same format)."""
    path = require_file(path, "trajectory file")
    if not path.endswith((".npz", ".json")):
        raise DataError(path, "trajectory files end in .npz or .json")
    if path.endswith(".json"):
        data = read_json_file(path, "trajectory JSON file")
        if not isinstance(data, dict):
            raise DataError(path, "a trajectory JSON file holds one object with the per-frame arrays")
        meta = data.pop("meta", {})
    else:
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError):
            # numpy's own message advises allow_pickle=True, which would run code from the file: never pass it on
            raise DataError(path, "not a readable trajectory .npz (empty, truncated, not a zip of arrays, or "
                                  "holds pickled objects)") from None
        try:
            meta = json.loads(str(data.pop("meta"))) if "meta" in data else {}
        except json.JSONDecodeError as exc:
            raise DataError(path, f"the 'meta' entry is not JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise DataError(path, "the trajectory's 'meta' must be a mapping")
    missing = [k for k in PER_FRAME if k not in data]
    if missing:
        raise DataError(path, f"trajectory lacks {missing}")
    if "camera" not in meta:
        raise DataError(path, "trajectory meta lacks 'camera'")
    meta = dict(meta)
    camera = Camera.from_dict(meta.pop("camera"), path)
    unknown = set(meta) - ({f.name for f in dataclasses.fields(Trajectory)} - {"source_frames"})
    if unknown:
        raise DataError(path, f"unknown trajectory meta keys {sorted(unknown)}")
    try:
        return Trajectory(**{k: np.asarray(data[k]) for k in PER_FRAME}, hand_betas=np.asarray(data.get("hand_betas", np.zeros(10))),
                          camera=camera, **meta)
    except DataError as exc:
        raise DataError(path, exc.problem) from None
    except (TypeError, ValueError) as exc:
        raise DataError(path, f"trajectory arrays or meta have the wrong type ({exc})") from None


# ------------------------------------------------------------------------------------------------ GraspXL
def default_camera(target: np.ndarray, height: int = 480, width: int = 720, distance: float = 0.6,
                   azimuth_deg: float = -60.0, elevation_deg: float = 35.0, fov_y_deg: float = 45.0) -> Camera:
    """A camera on a sphere around ``target`` (azimuth from +x about z, elevation above the table)."""
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    eye = np.asarray(target, float) + distance * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    rot, trans = look_at(eye, target)
    return Camera.from_fov(height, width, fov_y_deg, rotation=rot, translation=trans)


def read_graspxl_entries(path: str | os.PathLike) -> tuple[dict, str]:
    """A GraspXL ``mano_k.npy``'s dict and the key of its one object entry (checked)."""
    path = require_file(path, "GraspXL sequence")
    try:
        data = np.load(path, allow_pickle=True).item()
    except (ValueError, OSError, EOFError, pickle.UnpicklingError) as exc:
        raise DataError(path, f"cannot read GraspXL sequence: {exc}") from None
    if not isinstance(data, dict) or "right_hand" not in data:
        raise DataError(path, "expected a dict with 'right_hand' and an object entry (GraspXL format)")
    objects = [k for k in data if k != "right_hand"]
    if len(objects) != 1:
        raise DataError(path, f"expected exactly one object entry, found {objects}")
    return data, objects[0]


def read_graspxl(path: str | os.PathLike, object_mesh: str | None = None, camera: Camera | None = None,
                 trans_is_wrist: bool = True, flat_hand_mean: bool = True, fps: float = 15.0,
                 prompt: str = "A hand is grasping an object.", hand_model: HandModel | None = None) -> Trajectory:
    """Read a GraspXL MANO sequence (``mano_k.npy``: a pickled dict with ``right_hand`` {trans, rot, pose (T,45)}
    and ``<object_id>`` {trans, rot}).

    ``trans`` is the wrist position (GraspXL's convention); with ``trans_is_wrist`` it is converted to MANO's
    translation by subtracting the template wrist of ``hand_model`` (pass the MANO model you will render with;
    default: the procedural hand). ``object_mesh`` defaults to ``<object_id>.obj`` next to the file.
    """
    data, object_key = read_graspxl_entries(path)
    hand, obj = data["right_hand"], data[object_key]
    for key, entry, need in (("right_hand", hand, ("trans", "rot", "pose")), (object_key, obj, ("trans", "rot"))):
        missing = [k for k in need if k not in entry]
        if missing:
            raise DataError(path, f"'{key}' lacks {missing}")
    pose = np.asarray(hand["pose"], np.float64)
    if pose.shape[-1] == 48:  # some exports keep the global rotation in front
        pose = pose[:, 3:]
    trans = np.asarray(hand["trans"], np.float64)
    if trans_is_wrist:
        from data_tools.pose.procedural_hand import procedural_hand

        trans = trans - (hand_model or procedural_hand()).rest_joints()[0]
    mesh = object_mesh or os.path.join(os.path.dirname(path), f"{object_key}.obj")
    obj_trans = np.asarray(obj["trans"], np.float64)
    cam = camera or default_camera(obj_trans[0])
    name = os.path.splitext(os.path.basename(path))[0]
    try:
        return Trajectory(hand_global_orient=np.asarray(hand["rot"], np.float64), hand_pose=pose, hand_transl=trans,
                          object_rot=np.asarray(obj["rot"], np.float64), object_transl=obj_trans, camera=cam,
                          flat_hand_mean=flat_hand_mean, object=mesh, fps=fps, prompt=prompt, name=name)
    except DataError as exc:
        raise DataError(path, exc.problem) from None


# --------------------------------------------------------------------------------------- grasp generator
@dataclasses.dataclass
class Grasp:
    """A hand configuration in the world: wrist rotation (axis-angle), per-joint rotations (45,), translation."""

    global_orient: np.ndarray
    full_pose: np.ndarray
    transl: np.ndarray


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return x * x * (3 - 2 * x)


def interpolate_grasp(initial: Grasp, target: Grasp, num_frames: int, approach: float = 0.4, close: float = 0.3,
                      lift_height: float = 0.12) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Approach (open hand moves from ``initial`` to ``target``'s wrist pose), close (fingers go from the initial
    to the target pose), lift (everything rises by ``lift_height``). Returns per-frame
    ``(global_orient (T,3), full_pose (T,45), transl (T,3), lift (T,))``; ``lift`` also moves the object.
    """
    t = np.linspace(0, 1, num_frames)
    a_end, c_end = approach, approach + close
    move = _smoothstep(t / max(a_end, 1e-6))
    closing = _smoothstep((t - a_end) / max(close, 1e-6))
    lifting = _smoothstep((t - c_end) / max(1 - c_end, 1e-6))
    rots = Rotation.from_rotvec(np.stack([initial.global_orient, target.global_orient]))
    orient = Slerp([0, 1], rots)(move).as_rotvec()
    transl = initial.transl + move[:, None] * (target.transl - initial.transl)
    joints_a = Rotation.from_rotvec(initial.full_pose.reshape(15, 3))
    joints_b = Rotation.from_rotvec(target.full_pose.reshape(15, 3))
    pose = np.stack([np.stack([Slerp([0, 1], Rotation.concatenate([joints_a[j], joints_b[j]]))(c).as_rotvec()
                               for j in range(15)]).reshape(45) for c in closing])
    lift = lift_height * lifting
    transl = transl + lift[:, None] * np.array([0, 0, 1.0])
    return orient, pose, transl, lift


def hand_frame(model: HandModel, betas=None) -> np.ndarray:
    """Columns: the template's finger direction (wrist -> middle base), thumb side, back-of-hand normal."""
    joints = model.rest_joints(betas)
    x = joints[4] - joints[0]
    x /= np.linalg.norm(x)
    z = -model.palm_normal(betas)
    z = z - (z @ x) * x
    z /= np.linalg.norm(z)
    return np.stack([x, np.cross(z, x), z], axis=1)


def _finger_vertices(model: HandModel, per_finger: int = 40) -> list[np.ndarray]:
    """A few vertex ids skinned mostly to each finger (thumb, index, middle, ring, little)."""
    owner = model.data.weights.argmax(1)
    rng = np.random.default_rng(0)
    ids = []
    for chain, tip in zip(FINGER_CHAINS, model.tip_ids):
        v = np.flatnonzero(np.isin(owner, chain))
        v = rng.choice(v, min(per_finger, len(v)), replace=False) if len(v) else v
        ids.append(np.unique(np.append(v, tip)))
    return ids


def contact_closure(model: HandModel, orient: np.ndarray, transl: np.ndarray, obj_vertices: np.ndarray,
                    obj_faces: np.ndarray, steps: int = 16, max_closure: float = 1.0, betas=None) -> np.ndarray:
    """Per finger, the largest closure (in ``steps`` increments) before the finger enters the object."""
    levels = np.linspace(0, max_closure, steps)
    poses = np.stack([model.pose_param(model.curl_pose(c, betas=betas)) for c in levels])
    shape = None if betas is None else np.repeat(np.asarray(betas, np.float64)[None], steps, 0)
    out = model(np.repeat(orient[None], steps, 0), poses, shape, np.repeat(transl[None], steps, 0))
    verts = out.vertices.detach().cpu().double().numpy()
    closure = np.full(5, max_closure)
    for finger, ids in enumerate(_finger_vertices(model)):
        inside = winding_number(obj_vertices, obj_faces, verts[:, ids].reshape(-1, 3)).reshape(steps, -1) > 0.5
        hit = np.flatnonzero(inside.any(1))
        if len(hit):
            closure[finger] = levels[max(hit[0] - 1, 0)]
    return closure


def auto_grasp(model: HandModel, obj_world: np.ndarray, faces: np.ndarray, approach_deg: float,
               margin: float = 0.004, betas=None, grip: float = 1.0) -> Grasp:
    """A side grasp of an object (world vertices): palm facing it from azimuth ``approach_deg``, fingers wrapping
    horizontally with the thumb up, each finger closed until it touches the object, then to ``grip`` of that
    closure (below 1: a looser hold). ``betas``: the hand's shape."""
    centre = (obj_world.min(0) + obj_world.max(0)) / 2
    az = np.radians(approach_deg)
    towards = -np.array([np.cos(az), np.sin(az), 0.0])              # from the hand to the object
    up = np.array([0.0, 0.0, 1.0])
    fingers, back = np.cross(up, towards), -towards
    if np.cross(back, fingers) @ up < 0:                            # keep the thumb up
        fingers = -fingers
    rot = np.stack([fingers, np.cross(back, fingers), back], axis=1) @ hand_frame(model, betas).T
    orient = Rotation.from_matrix(rot).as_rotvec()
    joints = model.rest_joints(betas)
    palm_point = joints[[0, 1, 4, 7, 10]].mean(0) + 0.014 * model.palm_normal(betas)
    palm_world = centre - towards * (((obj_world - centre) @ -towards).max() + margin)
    transl = palm_world - joints[0] - rot @ (palm_point - joints[0])
    closure = contact_closure(model, orient, transl, obj_world, faces, betas=betas) * grip
    logger.debug("grasp closure per finger (thumb..little): %s", np.round(closure, 2))
    return Grasp(orient, model.curl_pose(closure, betas=betas), transl)


def grasp_from_dict(data: dict, source: str | None = None) -> Grasp:
    """``{"global_orient": [3], "full_pose": [45] per-joint axis-angles, "transl": [3]}`` (world frame) -> Grasp."""
    try:
        grasp = Grasp(*(np.asarray(data[k], np.float64).reshape(n) for k, n in
                        (("global_orient", 3), ("full_pose", 45), ("transl", 3))))
    except (KeyError, ValueError) as exc:
        raise DataError(source, f"a grasp needs global_orient (3), full_pose (45) and transl (3): {exc}") from None
    return grasp


def generate_grasp_trajectory(model: HandModel, obj: ObjectMesh, object_spec: str, num_frames: int = 49,
                              height: int = 480, width: int = 720, approach_deg: float = -90.0,
                              approach_distance: float = 0.15, lift_height: float = 0.12, margin: float = 0.004,
                              camera_azimuth_deg: float = -50.0, camera_elevation_deg: float = 30.0,
                              camera_distance: float = 0.45, seed: int | None = None, fps: float = 15.0,
                              prompt: str | None = None, name: str = "grasp", target: Grasp | None = None,
                              initial: Grasp | None = None, betas=None, grip: float = 1.0, approach: float = 0.4,
                              close: float = 0.3) -> Trajectory:
    """Approach -> close -> lift for ``obj`` standing on the table at the origin (world frame, z up).

    ``target`` (the closed grasp) defaults to ``auto_grasp`` from azimuth ``approach_deg`` (with ``grip`` and
    the hand shape ``betas``); ``initial`` (the open hand where the approach starts) defaults to the target's
    wrist backed off ``approach_distance`` behind the palm and 4 cm up, fingers nearly straight. ``approach`` and
    ``close`` are the fractions of the clip spent approaching and closing (the rest lifts). ``seed`` jitters the
    automatic approach and the camera.
    """
    rng = np.random.default_rng(seed)
    jitter = rng.normal(scale=[10.0, 10.0, 4.0]) if seed is not None else np.zeros(3)
    obj_transl = np.array([0.0, 0.0, -obj.bottom])
    obj_world = obj.vertices + obj_transl
    centre = (obj_world.min(0) + obj_world.max(0)) / 2
    up = np.array([0.0, 0.0, 1.0])
    target = target or auto_grasp(model, obj_world, obj.faces, approach_deg + jitter[0], margin, betas, grip)
    if initial is None:
        back = Rotation.from_rotvec(target.global_orient).as_matrix() @ hand_frame(model, betas)[:, 2]
        initial = Grasp(target.global_orient, model.curl_pose(0.1, betas=betas),
                        target.transl + back * approach_distance + up * 0.04)
    g_orient, full_pose, g_transl, lift = interpolate_grasp(initial, target, num_frames, approach, close, lift_height)
    hand_pose = np.stack([model.pose_param(p) for p in full_pose])
    camera = default_camera(centre + up * lift_height / 2, height, width, camera_distance + jitter[2] / 100,
                            approach_deg + camera_azimuth_deg + jitter[1], camera_elevation_deg)
    return Trajectory(hand_global_orient=g_orient, hand_pose=hand_pose, hand_transl=g_transl,
                      object_rot=np.zeros((num_frames, 3)), object_transl=obj_transl + lift[:, None] * up,
                      camera=camera, hand_side=model.data.side, flat_hand_mean=model.flat_hand_mean,
                      hand_betas=np.zeros(model.num_betas) if betas is None else np.asarray(betas, np.float64),
                      object=object_spec, object_class_id=obj.class_id, fps=fps,
                      prompt=prompt or f"A hand grasps the {obj.name.replace('_', ' ')} on the table and lifts it.",
                      name=name)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Make trajectory files: synthesise a grasp or convert GraspXL.")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="approach -> close -> lift for a built-in object or a mesh")
    gen.add_argument("--object", default="cracker_box", help="built-in name or mesh path (default: cracker_box)")
    gen.add_argument("--object-scale", type=float, default=1.0)
    gen.add_argument("--mano", default=None, help="MANO_RIGHT.pkl/MANO_LEFT.pkl (default: procedural hand)")
    gen.add_argument("--side", default="right", choices=("right", "left"))
    gen.add_argument("--frames", type=positive_int, default=49)
    gen.add_argument("--height", type=int, default=480)
    gen.add_argument("--width", type=int, default=720)
    gen.add_argument("--approach-deg", type=float, default=-90.0)
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--object-class-id", type=int, default=None, help="seg class of the object (default: its own)")
    gen.add_argument("--grasps", default=None, help='JSON {"target": grasp, "initial": grasp (optional)}, each '
                     '{"global_orient", "full_pose" (45), "transl"} in the world (object on the table at the origin)')
    gen.add_argument("--out", required=True, help="output .npz or .json")
    conv = sub.add_parser("graspxl", help="convert a GraspXL mano_k.npy sequence")
    conv.add_argument("path")
    conv.add_argument("--object-mesh", default=None, help="default: <object_id>.obj next to the sequence")
    conv.add_argument("--mano", default=None, help="MANO_RIGHT.pkl used to place the wrist (default: procedural)")
    conv.add_argument("--out", required=True)
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    from data_tools.io.cli import setup_logging
    from data_tools.pose.procedural_hand import load_hand_model

    args = parse_args(argv)
    setup_logging(args.verbose)
    if args.command == "generate":
        model = load_hand_model(args.mano, side=args.side)
        obj = resolve_object(args.object, args.object_scale, args.object_class_id)
        grasps = {}
        if args.grasps:
            with open(require_file(args.grasps, "grasp file"), encoding="utf-8") as f:
                grasps = {k: grasp_from_dict(v, args.grasps) for k, v in json.load(f).items()}
        traj = generate_grasp_trajectory(model, obj, args.object, args.frames, args.height, args.width,
                                         approach_deg=args.approach_deg, seed=args.seed,
                                         name=os.path.splitext(os.path.basename(args.out))[0],
                                         target=grasps.get("target"), initial=grasps.get("initial"))
        traj.object_scale = args.object_scale
    else:
        traj = read_graspxl(args.path, args.object_mesh, hand_model=load_hand_model(args.mano) if args.mano else None)
    logger.info("wrote %s (%d frames)", save_trajectory(traj, args.out), traj.num_frames)
    return 0


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
