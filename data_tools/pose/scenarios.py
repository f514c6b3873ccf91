"""Scenarios of a generated dataset: sequence k's hand-object trajectory as a pure function of (seed, k).

A scenario draws the object (a built-in or a mesh from a glob, e.g. YCB's ``*/google_16k/textured.obj``), the hand
side, the hand shape (betas), the grasp (approach azimuth, palm gap, grip), the camera (azimuth around the
approach, elevation, distance), the timing (approach / close fractions, lift height) and a prompt from a prompt
bank (scene, lighting, table); or, with ``graspxl`` files listed, one of those grasps under a drawn camera.
Every trajectory is checked before it is rendered (``check_trajectory``): hand-object penetration depth,
fingertip contact at the grasp, hand and object inside the image in every frame. A draw that fails is redrawn
from the next sub-seed, ``numpy.random.default_rng([seed, k, attempt])``, and the reasons are kept. Nothing
depends on the shard or on other sequences, so any worker makes the same sequence k.
"""
from __future__ import annotations

import dataclasses
import glob
import os
import math
import re
import string

import numpy as np

from data_tools.errors import DataError
from data_tools.pose.objects import BUILTIN_OBJECTS, ObjectMesh, resolve_object, winding_number

SIDES = ("right", "left")


@dataclasses.dataclass
class PromptBank:
    """``template`` filled with one drawn entry of each list (``{object}`` and ``{side}`` come from the scenario)."""

    template: str = "A {side} hand grasps the {object} {scene}, {lighting}, on {table}."
    scene: list[str] = dataclasses.field(default_factory=lambda: ["in a kitchen", "in a lab", "in an office"])
    lighting: list[str] = dataclasses.field(default_factory=lambda: ["soft daylight", "warm indoor light"])
    table: list[str] = dataclasses.field(default_factory=lambda: ["a wooden table", "a white desk"])

    def __post_init__(self):
        for name in ("scene", "lighting", "table"):
            if not getattr(self, name):
                raise DataError(None, f"prompts.{name} must list at least one entry")
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(self.template) if name is not None}
        except ValueError as exc:   # a stray brace
            raise DataError(None, f"prompts.template is not a valid template ({exc}): {self.template!r}") from None
        unknown = fields - {"side", "object", "scene", "lighting", "table"}
        if unknown:
            raise DataError(None, f"prompts.template names unknown fields {sorted(unknown)} (known: side, object, "
                                  "scene, lighting, table; write {{ and }} for literal braces)")
        try:   # conversions and format specs ({side!z}, {side:d}) fail only when filled: fill it once now
            self.template.format(**dict.fromkeys(("side", "object", "scene", "lighting", "table"), "x"))
        except (ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
            raise DataError(None, f"prompts.template cannot be filled ({exc}): {self.template!r}") from None

    def draw(self, rng: np.random.Generator, side: str, obj: str) -> str:
        pick = lambda items: items[int(rng.integers(len(items)))]  # noqa: E731
        return self.template.format(side=side, object=obj.replace("_", " "), scene=pick(self.scene),
                                    lighting=pick(self.lighting), table=pick(self.table))


@dataclasses.dataclass
class ScenarioConfig:
    """Ranges scenarios are drawn from (``[low, high]``: uniform; lists of names: one uniformly)."""

    objects: list[str] = dataclasses.field(default_factory=lambda: sorted(BUILTIN_OBJECTS))
    object_meshes: str | None = None     # glob of mesh files drawn from as well (e.g. ycb/*/google_16k/textured.obj)
    hand_sides: list[str] = dataclasses.field(default_factory=lambda: ["right"])
    hand_scale_beta: list[float] = dataclasses.field(default_factory=lambda: [-1.0, 1.0])   # betas[0]
    hand_shape_std: float = 0.5          # betas[1:] ~ N(0, std) (a MANO hand; the procedural hand uses betas[0])
    approach_deg: list[float] = dataclasses.field(default_factory=lambda: [-180.0, 180.0])
    palm_gap_mm: list[float] = dataclasses.field(default_factory=lambda: [2.0, 6.0])
    grip: list[float] = dataclasses.field(default_factory=lambda: [0.9, 1.0])  # fraction of the contact closure
    camera_azimuth_deg: list[float] = dataclasses.field(default_factory=lambda: [-70.0, -30.0])  # from the approach
    camera_elevation_deg: list[float] = dataclasses.field(default_factory=lambda: [22.0, 40.0])
    camera_distance: list[float] = dataclasses.field(default_factory=lambda: [0.32, 0.42])
    approach_fraction: list[float] = dataclasses.field(default_factory=lambda: [0.3, 0.45])
    close_fraction: list[float] = dataclasses.field(default_factory=lambda: [0.25, 0.35])
    lift_height: list[float] = dataclasses.field(default_factory=lambda: [0.06, 0.14])
    num_frames: int = 49
    fps: float = 15.0
    height: int = 480                    # the trajectory camera's image size
    width: int = 720
    graspxl: list[str] = dataclasses.field(default_factory=list)   # GraspXL mano_k.npy files used instead
    prompts: PromptBank = dataclasses.field(default_factory=PromptBank)

    RANGES = {"hand_shape_std": (0, 10), "num_frames": (2, None), "fps": (1e-3, None), "height": (8, None),
              "width": (8, None)}

    # [low, high] ranges and the interval their values must stay in
    BOUNDS = {"hand_scale_beta": (-5.0, 5.0), "approach_deg": (-360.0, 360.0), "palm_gap_mm": (0.0, 50.0),
              "grip": (0.0, 1.0), "camera_azimuth_deg": (-360.0, 360.0), "camera_elevation_deg": (-89.0, 89.0),
              "camera_distance": (0.05, 10.0), "approach_fraction": (0.0, 1.0), "close_fraction": (0.0, 1.0),
              "lift_height": (0.0, 1.0)}

    def __post_init__(self):
        for name, (least, most) in self.BOUNDS.items():
            bounds = getattr(self, name)
            if (not isinstance(bounds, (list, tuple)) or len(bounds) != 2
                    or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b)
                               for b in bounds)
                    or not least <= bounds[0] <= bounds[1] <= most):
                raise DataError(None, f"scenarios.{name} must be [low, high] with {least:g} <= low <= high <= "
                                      f"{most:g}, got {bounds}")
        if self.approach_fraction[1] + self.close_fraction[1] >= 1:
            raise DataError(None, "scenarios: approach_fraction + close_fraction must stay below 1 (time to lift)")
        bad = [s for s in self.hand_sides if s not in SIDES]
        if bad or not self.hand_sides:
            raise DataError(None, f"scenarios.hand_sides must list right and/or left, got {self.hand_sides}")
        unknown = [o for o in self.objects if o not in BUILTIN_OBJECTS]
        if unknown:
            raise DataError(None, f"scenarios.objects: unknown built-in objects {unknown}; choose from "
                                  f"{sorted(BUILTIN_OBJECTS)} or give object_meshes")

    def object_choices(self) -> list[str]:
        """Built-in names, then the meshes of ``object_meshes`` (sorted, so every worker sees the same list)."""
        meshes = sorted(glob.glob(os.path.expanduser(self.object_meshes))) if self.object_meshes else []
        if self.object_meshes and not meshes:
            raise DataError(self.object_meshes, "scenarios.object_meshes matches no mesh file")
        choices = list(self.objects) + meshes
        if not choices and not self.graspxl:
            raise DataError(None, "scenarios: no objects (objects, object_meshes) and no graspxl files")
        return choices


@dataclasses.dataclass
class CheckConfig:
    """What a trajectory must satisfy before it is rendered."""

    max_penetration_mm: float = 8.0      # deepest hand vertex inside the object, over all frames
    contact_mm: float = 6.0              # a fingertip this close to the surface (or inside) touches
    min_contact_fingers: int = 2         # fingertips touching at the grasp (the end of the closing phase)
    frame_margin: float = 0.0            # fraction of the image size kept free at the borders
    max_draws: int = 20                  # draws per sequence before the config is declared impossible

    RANGES = {"max_penetration_mm": (0, None), "contact_mm": (0, None), "min_contact_fingers": (0, 5),
              "frame_margin": (0, 0.45), "max_draws": (1, None)}


class NoValidDraw(DataError):
    """Every draw of a sequence failed the trajectory checks (``rejected``: each draw's reasons)."""

    def __init__(self, problem: str, rejected: list[dict]):
        super().__init__(None, problem)
        self.rejected = rejected


def _uniform(rng: np.random.Generator, bounds) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _object_label(spec: str) -> str:
    """A readable object name: the built-in name, or a mesh's folder (YCB: ``003_cracker_box`` -> cracker_box)."""
    if spec in BUILTIN_OBJECTS:
        return spec
    folder = os.path.basename(os.path.dirname(os.path.dirname(spec))) if "google_16k" in spec else None
    return re.sub(r"^\d+_", "", folder or os.path.splitext(os.path.basename(spec))[0])


def mesh_class_id(spec: str) -> int | None:
    """The seg class of a mesh object: the YCB number its path starts a folder with (``003_cracker_box`` -> 3)."""
    match = re.search(r"(?:^|/)(\d{3})_[^/]*/", spec)
    return int(match[1]) if match else None


def graspxl_object_name(path: str) -> str:
    """The object of a GraspXL sequence: its entry beside ``right_hand`` (a readable name, as for meshes)."""
    from data_tools.pose.trajectory import read_graspxl_entries

    return _object_label(read_graspxl_entries(path)[1])


def draw_scenario(config: ScenarioConfig, seed: int, k: int, attempt: int = 0) -> dict:
    """The parameters of draw ``attempt`` of sequence ``k`` (JSON-ready)."""
    rng = np.random.default_rng([seed, k, attempt])
    side = SIDES[SIDES.index(config.hand_sides[int(rng.integers(len(config.hand_sides)))])]
    betas = np.concatenate([[_uniform(rng, config.hand_scale_beta)], rng.normal(0, config.hand_shape_std, 9)])
    graspxl = config.graspxl[int(rng.integers(len(config.graspxl)))] if config.graspxl else None
    if graspxl:
        side = "right"   # GraspXL's grasps are right hands
    choices = config.object_choices() if not graspxl else []
    obj = choices[int(rng.integers(len(choices)))] if choices else None
    scenario = {
        "k": k, "attempt": attempt, "hand_side": side, "hand_betas": betas.round(6).tolist(),
        "object": obj, "graspxl": graspxl, "approach_deg": _uniform(rng, config.approach_deg),
        "palm_gap_mm": _uniform(rng, config.palm_gap_mm), "grip": _uniform(rng, config.grip),
        "camera_azimuth_deg": _uniform(rng, config.camera_azimuth_deg),
        "camera_elevation_deg": _uniform(rng, config.camera_elevation_deg),
        "camera_distance": _uniform(rng, config.camera_distance),
        "approach_fraction": _uniform(rng, config.approach_fraction),
        "close_fraction": _uniform(rng, config.close_fraction), "lift_height": _uniform(rng, config.lift_height),
        "num_frames": config.num_frames, "fps": config.fps,
    }
    label = _object_label(obj) if obj else graspxl_object_name(graspxl)
    scenario["object_name"] = label
    scenario["prompt"] = config.prompts.draw(rng, side, label)
    return scenario


def build_trajectory(scenario: dict, config: ScenarioConfig, hand_model, name: str):
    """The trajectory of a drawn scenario (and its object mesh, posed by the trajectory)."""
    from data_tools.pose.camera import rotation_matrix
    from data_tools.pose.trajectory import default_camera, generate_grasp_trajectory, read_graspxl

    if scenario["graspxl"]:
        traj = read_graspxl(scenario["graspxl"], hand_model=hand_model, fps=scenario["fps"],
                            prompt=scenario["prompt"])
        target = traj.object_transl[0] + np.array([0.0, 0.0, scenario["lift_height"] / 2])
        traj.camera = default_camera(target, config.height, config.width, scenario["camera_distance"],
                                     scenario["approach_deg"] + scenario["camera_azimuth_deg"],
                                     scenario["camera_elevation_deg"])
        traj.name = name
        return traj, traj.resolve_object()
    spec = scenario["object"]
    obj = resolve_object(spec, class_id=None if spec in BUILTIN_OBJECTS else mesh_class_id(spec))
    centre = np.zeros(3)
    if spec not in BUILTIN_OBJECTS:   # meshes are grasped centred like the built-ins ...
        centre = (obj.vertices.min(0) + obj.vertices.max(0)) / 2
    traj = generate_grasp_trajectory(
        hand_model, dataclasses.replace(obj, vertices=obj.vertices - centre), spec, scenario["num_frames"], config.height, config.width,
        approach_deg=scenario["approach_deg"], lift_height=scenario["lift_height"],
        margin=scenario["palm_gap_mm"] / 1000, camera_azimuth_deg=scenario["camera_azimuth_deg"],
        camera_elevation_deg=scenario["camera_elevation_deg"], camera_distance=scenario["camera_distance"],
        fps=scenario["fps"], prompt=scenario["prompt"], name=name, betas=np.asarray(scenario["hand_betas"]),
        grip=scenario["grip"], approach=scenario["approach_fraction"], close=scenario["close_fraction"])
    if spec not in BUILTIN_OBJECTS:
        traj.object_class_id = obj.class_id
        # ... and the trajectory poses the file's own vertices: R (v - c) + t = R v + (t - R c)
        rots = np.stack([rotation_matrix(r) for r in traj.object_rot])
        traj.object_transl = traj.object_transl - rots @ centre
    return traj, obj


def surface_distance(obj: ObjectMesh, points: np.ndarray, chunk: int = 2_000_000) -> np.ndarray:
    """Distance (m) of each point ``(N, 3)`` to the nearest triangle of ``obj`` (object frame), exact."""
    import trimesh

    tri = obj.vertices[obj.faces]
    out = np.empty(len(points))
    per = max(1, chunk // max(len(tri), 1))
    for start in range(0, len(points), per):
        p = points[start:start + per]
        pairs = np.repeat(p, len(tri), 0)
        closest = trimesh.triangles.closest_point(np.tile(tri, (len(p), 1, 1)), pairs)
        out[start:start + per] = np.linalg.norm(closest - pairs, axis=1).reshape(len(p), len(tri)).min(1)
    return out


def fingertip_vertices(hand_model) -> list[np.ndarray]:
    """Per finger (thumb, index, middle, ring, little), the vertices of its last segment (the pad and the tip)."""
    from data_tools.pose.mano import FINGER_CHAINS

    owner = hand_model.data.weights.argmax(1)
    return [np.union1d(np.flatnonzero(owner == chain[-1]), [tip]) for chain, tip in zip(FINGER_CHAINS,
                                                                                        hand_model.tip_ids)]


def _part_gap(obj: ObjectMesh, points: np.ndarray) -> float:
    """0 when any point is inside the object, else the smallest distance of the points to its surface (m)."""
    if (winding_number(obj.vertices, obj.faces, points) > 0.5).any():
        return 0.0
    return float(surface_distance(obj, points).min())


def check_trajectory(traj, obj: ObjectMesh, hand_model, checks: CheckConfig, grasp_fraction: float) -> dict:
    """Measure a trajectory: ``penetration_mm`` (deepest hand vertex inside the object, any frame),
    ``contact_fingers`` (fingers whose last segment comes within ``contact_mm`` of the surface, or touches it, at
    the grasp frame, ``grasp_fraction`` of the clip), ``outside_frames`` (frames where a hand joint or an object corner leaves the image or goes
    behind the camera); ``reasons`` lists every check that failed (empty: accepted)."""
    import torch

    from data_tools.pose.camera import rotation_matrix

    with torch.no_grad():
        out = hand_model(traj.hand_global_orient, traj.hand_pose, traj.hand_betas[None], traj.hand_transl)
    verts, joints = out.vertices.double().numpy(), out.joints.double().numpy()
    rots = np.stack([rotation_matrix(r) for r in traj.object_rot])
    local = np.einsum("tij,tvj->tvi", rots.transpose(0, 2, 1), verts - traj.object_transl[:, None])  # object frame
    lo, hi = obj.vertices.min(0), obj.vertices.max(0)
    near = np.all((local > lo - 0.001) & (local < hi + 0.001), axis=-1)
    depth = 0.0
    if near.any():
        candidates = local[near]
        inside = winding_number(obj.vertices, obj.faces, candidates) > 0.5
        if inside.any():
            depth = float(surface_distance(obj, candidates[inside]).max())
    grasp = min(int(math.ceil(grasp_fraction * (traj.num_frames - 1) - 1e-9)), traj.num_frames - 1)
    tip_gap = np.array([_part_gap(obj, local[grasp, ids]) for ids in fingertip_vertices(hand_model)])
    touching = int((tip_gap <= checks.contact_mm / 1000).sum())
    corners = np.array(np.meshgrid(*zip(lo, hi), indexing="ij")).reshape(3, -1).T
    corners_world = np.einsum("tij,cj->tci", rots, corners) + traj.object_transl[:, None]
    cam = traj.camera
    points = np.concatenate([joints, corners_world], axis=1)                      # (T, 21 + 8, 3)
    in_cam = cam.to_camera(points.reshape(-1, 3)).reshape(points.shape)
    uv = cam.project(in_cam.reshape(-1, 3), world=False).reshape(*points.shape[:2], 2)
    mx, my = checks.frame_margin * cam.width, checks.frame_margin * cam.height
    visible = ((in_cam[..., 2] > 0) & (uv[..., 0] >= mx - 0.5) & (uv[..., 0] <= cam.width - 0.5 - mx)
               & (uv[..., 1] >= my - 0.5) & (uv[..., 1] <= cam.height - 0.5 - my))
    outside = int((~visible.all(1)).sum())
    reasons = []
    if depth * 1000 > checks.max_penetration_mm:
        reasons.append("penetration")
    if touching < checks.min_contact_fingers:
        reasons.append("no contact")
    if outside:
        reasons.append("out of frame")
    return {"penetration_mm": round(depth * 1000, 3), "contact_fingers": touching,
            "fingertip_gap_mm": (tip_gap * 1000).round(2).tolist(), "grasp_frame": grasp,
            "outside_frames": outside, "reasons": reasons}


def make_scenario(config: ScenarioConfig, checks: CheckConfig, seed: int, k: int, name: str,
                  mano_path: str | None = None):
    """Draw sequence ``k`` until its trajectory passes the checks; returns ``(trajectory, record)`` where the record
    holds the accepted draw, its measurements and the rejected draws' reasons."""
    from data_tools.pose.procedural_hand import load_hand_model

    rejected = []
    for attempt in range(checks.max_draws):
        scenario = draw_scenario(config, seed, k, attempt)
        hand = load_hand_model(mano_path, side=scenario["hand_side"])
        try:
            traj, obj = build_trajectory(scenario, config, hand, name)
        except DataError as exc:   # a mesh or GraspXL file that cannot be used: a configuration error
            raise DataError(exc.path or None, f"sequence {k}: {exc.problem}") from None
        # the hand is closed at the end of the closing phase; a GraspXL sequence ends holding its object
        grasp = (scenario["approach_fraction"] + scenario["close_fraction"]) if not scenario["graspxl"] else 1.0
        measured = check_trajectory(traj, obj, hand, checks, grasp)
        if not measured["reasons"]:
            return traj, {"scenario": scenario, "checks": measured, "rejected_draws": rejected}
        rejected.append({"attempt": attempt, "reasons": measured["reasons"],
                         **{key: measured[key] for key in ("penetration_mm", "contact_fingers", "outside_frames")}})
    raise NoValidDraw(f"no draw out of {checks.max_draws} passed the trajectory checks (last reasons: "
                      f"{rejected[-1]['reasons']}); widen the scenario ranges or the checks", rejected)
