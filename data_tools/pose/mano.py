"""MANO hand layer (our own code): loads the official ``MANO_RIGHT.pkl``/``MANO_LEFT.pkl`` without chumpy.

The official pickles hold chumpy arrays and scipy sparse matrices written by Python 2. ``load_mano_data`` unpickles
them with a restricted unpickler that turns chumpy objects into plain numpy arrays, so neither chumpy nor manopth
is needed. ``HandModel`` is a torch module (CPU or GPU, batched, differentiable) doing shape blend shapes, pose
blend shapes and linear blend skinning; it returns the 778 vertices and the 21 joints in the order of the
reference (wrist, then thumb, index, middle, ring, little; 4 joints each: MANO's 16 joints plus 5 fingertip
vertices). The built-in procedural hand (``data_tools.pose.procedural_hand``) produces the same ``HandModelData``, so
everything downstream runs without the licensed file.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import os
import pickle
from typing import Sequence

import numpy as np
import torch

from data_tools.errors import DataError, require_file

logger = logging.getLogger(__name__)

NUM_MANO_JOINTS = 16
# MANO's joint order: 0 wrist, 1-3 index, 4-6 middle, 7-9 little, 10-12 ring, 13-15 thumb.
MANO_PARENTS = np.array([-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14])
# Fingertip vertices of the MANO mesh, in the reference order thumb, index, middle, ring, little.
MANO_TIP_VERTICES = (745, 317, 444, 556, 673)
# 21 output joints (MANO 0-15 then tips 16-20 = thumb..little tips) reordered to wrist, thumb, index, middle,
# ring, little (4 each, base to tip), the order of data_tools.maps.keypoints.
JOINT21_FROM_MANO = np.array([0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20])
# MANO joint index of each finger's chain (base to last joint), in the order thumb, index, middle, ring, little.
FINGER_CHAINS = ((13, 14, 15), (1, 2, 3), (4, 5, 6), (10, 11, 12), (7, 8, 9))
REQUIRED_KEYS = ("v_template", "f", "weights", "J_regressor", "shapedirs", "posedirs")


@dataclasses.dataclass
class HandModelData:
    """Arrays that define a MANO-style hand (V vertices, 16 joints, S shape coefficients)."""

    v_template: np.ndarray        # (V, 3)
    faces: np.ndarray             # (F, 3) int
    weights: np.ndarray           # (V, 16) skinning weights
    J_regressor: np.ndarray       # (16, V) dense
    shapedirs: np.ndarray         # (V, 3, S)
    posedirs: np.ndarray          # (V, 3, 135)
    parents: np.ndarray = dataclasses.field(default_factory=lambda: MANO_PARENTS.copy())
    hands_components: np.ndarray | None = None  # (45, 45) PCA basis, rows are components
    hands_mean: np.ndarray | None = None        # (45,)
    tip_vertex_ids: Sequence[int] = MANO_TIP_VERTICES
    side: str = "right"
    name: str = "mano"

    def validate(self, source: str | None = None) -> "HandModelData":
        v = self.v_template.shape[0]
        checks = [(self.v_template.shape == (v, 3), f"v_template {self.v_template.shape}"),
                  (self.weights.shape == (v, NUM_MANO_JOINTS), f"weights {self.weights.shape}"),
                  (self.J_regressor.shape == (NUM_MANO_JOINTS, v), f"J_regressor {self.J_regressor.shape}"),
                  (self.shapedirs.ndim == 3 and self.shapedirs.shape[:2] == (v, 3), f"shapedirs {self.shapedirs.shape}"),
                  (self.posedirs.shape == (v, 3, 9 * (NUM_MANO_JOINTS - 1)), f"posedirs {self.posedirs.shape}"),
                  (self.faces.ndim == 2 and self.faces.shape[1] == 3 and self.faces.max() < v, f"faces {self.faces.shape}"),
                  (len(self.tip_vertex_ids) == 5 and max(self.tip_vertex_ids) < v, f"tip ids {self.tip_vertex_ids}")]
        bad = [what for ok, what in checks if not ok]
        if bad:
            raise DataError(source, f"hand model arrays have unexpected shapes: {', '.join(bad)} (V={v})")
        return self


# ------------------------------------------------------------------------------------------ chumpy-free pickle
class _ChumpyStandIn:
    """Receives the pickled state of any chumpy object; ``to_array`` recovers its value."""

    def __init__(self, *args, **kwargs):
        self.state = {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {"x": state}

    def to_array(self, key: str, source: str) -> np.ndarray:
        value = self.state.get("x")
        if value is None:
            raise DataError(source, f"'{key}' is a chumpy expression ({sorted(self.state)[:6]}...) rather than a "
                                    "plain chumpy array; convert it once with chumpy (x.r) and save plain arrays")
        return _plain(value, key, source)


_ALLOWED_GLOBALS = {("copyreg", "_reconstructor"), ("builtins", "object"), ("_codecs", "encode"), ("builtins", "set"),
                    ("builtins", "frozenset"), ("builtins", "slice")}
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class _MANOUnpickler(pickle.Unpickler):
    """Unpickler that maps chumpy classes to a stand-in and only admits numpy/scipy/builtin containers."""

    def find_class(self, module: str, name: str):
        module = _PY2_MODULES.get(module, module)
        if module == "chumpy" or module.startswith("chumpy."):
            return _ChumpyStandIn
        if module.startswith("scipy.sparse"):
            import scipy.sparse

            if hasattr(scipy.sparse, name):
                return getattr(scipy.sparse, name)
        if module.startswith("numpy"):
            if module.startswith("numpy.core") and int(np.__version__.split(".")[0]) >= 2:
                module = "numpy._core" + module[len("numpy.core"):]
            return super().find_class(module, name)
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from a MANO file")


def _plain(value, key: str, source: str):
    """Chumpy stand-ins -> arrays, sparse -> dense arrays, everything else unchanged."""
    if isinstance(value, _ChumpyStandIn):
        return value.to_array(key, source)
    if hasattr(value, "toarray") and hasattr(value, "tocsr"):
        return np.asarray(value.toarray())
    return value


def read_mano_pickle(path: str | os.PathLike) -> dict:
    """Unpickle an official MANO pkl (Python 2, chumpy inside) into a dict of plain numpy arrays."""
    path = require_file(path, "MANO model file")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        data = _MANOUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError, TypeError) as exc:
        raise DataError(path, f"cannot read MANO pickle: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(path, f"MANO pickle must hold a dict, got {type(data).__name__}")
    out = {}
    for key, value in data.items():
        try:
            out[key] = _plain(value, key, path)
        except DataError:
            if key in REQUIRED_KEYS:
                raise
            logger.debug("%s: skipping '%s' (a chumpy expression the layer does not need)", path, key)
    return out


def load_mano_data(path: str | os.PathLike, side: str | None = None, fix_left_shapedirs: bool = False) -> HandModelData:
    """Load ``MANO_RIGHT.pkl``/``MANO_LEFT.pkl`` into ``HandModelData`` (no chumpy needed).

    ``side`` defaults to "left" when the file name contains LEFT. ``fix_left_shapedirs`` flips the sign of the
    x component of the left model's shape directions (a known defect of the released MANO_LEFT.pkl).
    """
    path = os.fspath(path)
    data = read_mano_pickle(path)
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise DataError(path, f"MANO pickle lacks keys {missing}; has {sorted(data)}")
    side = side or ("left" if "LEFT" in os.path.basename(path).upper() else "right")
    shapedirs = np.asarray(data["shapedirs"], dtype=np.float64)
    if side == "left" and fix_left_shapedirs:
        shapedirs = shapedirs.copy()
        shapedirs[:, 0, :] *= -1
    parents = MANO_PARENTS.copy()
    if "kintree_table" in data:
        table = np.asarray(data["kintree_table"]).astype(np.int64)
        parents = table[0].copy()
        parents[0] = -1
    comps = data.get("hands_components")
    mean = data.get("hands_mean")
    return HandModelData(
        v_template=np.asarray(data["v_template"], dtype=np.float64),
        faces=np.asarray(data["f"], dtype=np.int64),
        weights=np.asarray(data["weights"], dtype=np.float64),
        J_regressor=np.asarray(data["J_regressor"], dtype=np.float64),
        shapedirs=shapedirs,
        posedirs=np.asarray(data["posedirs"], dtype=np.float64),
        parents=parents,
        hands_components=None if comps is None else np.asarray(comps, dtype=np.float64),
        hands_mean=None if mean is None else np.asarray(mean, dtype=np.float64).reshape(-1),
        side=side, name=os.path.basename(path)).validate(path)


# --------------------------------------------------------------------------------------------------- geometry
def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``(..., 3)`` -> rotation matrices ``(..., 3, 3)`` (Rodrigues; exact at zero)."""
    angle = aa.norm(dim=-1, keepdim=True)
    axis = aa / angle.clamp_min(1e-12)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(aa.shape[:-1] + (3, 3))
    s, c = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device)
    return eye + s * k + (1 - c) * (k @ k)


@dataclasses.dataclass
class HandOutput:
    vertices: torch.Tensor    # (B, V, 3)
    joints: torch.Tensor      # (B, 21, 3) reference order
    mano_joints: torch.Tensor  # (B, 16, 3) MANO order, posed
    transforms: torch.Tensor  # (B, 16, 4, 4) per-joint skinning transforms (before translation)


class HandModel(torch.nn.Module):
    """MANO-style layer: ``forward(global_orient, hand_pose, betas, transl) -> HandOutput``.

    ``hand_pose`` is 45 axis-angle values (15 joints x 3) or, with ``use_pca``, ``num_pca_comps`` PCA coefficients.
    With ``flat_hand_mean=True`` (default, as manopth) zero pose is the flat template hand; with False the pkl's
    ``hands_mean`` is added (as smplx and DexYCB's ``pose_m``).
    """

    def __init__(self, data: HandModelData, use_pca: bool = False, num_pca_comps: int = 45,
                 flat_hand_mean: bool = True, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.data = data
        self.use_pca, self.num_pca_comps, self.flat_hand_mean = use_pca, num_pca_comps, flat_hand_mean
        if use_pca and data.hands_components is None:
            raise DataError(None, f"hand model '{data.name}' has no PCA components; use axis-angle poses")
        t = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype)  # noqa: E731
        self.register_buffer("v_template", t(data.v_template))
        self.register_buffer("shapedirs", t(data.shapedirs))
        self.register_buffer("posedirs", t(data.posedirs).reshape(-1, data.posedirs.shape[-1]).T.contiguous())
        self.register_buffer("J_regressor", t(data.J_regressor))
        self.register_buffer("weights", t(data.weights))
        self.register_buffer("faces_t", torch.as_tensor(data.faces, dtype=torch.long))
        mean = data.hands_mean if data.hands_mean is not None else np.zeros(45)
        self.register_buffer("hands_mean", t(np.zeros(45) if flat_hand_mean else mean))
        comps = data.hands_components if data.hands_components is not None else np.eye(45)
        self.register_buffer("hands_components", t(comps[:num_pca_comps]))
        self.parents = [int(p) for p in data.parents]
        self.tip_ids = list(data.tip_vertex_ids)

    @property
    def faces(self) -> np.ndarray:
        return self.data.faces

    @property
    def num_betas(self) -> int:
        return self.data.shapedirs.shape[-1]

    @property
    def pose_dim(self) -> int:
        return self.num_pca_comps if self.use_pca else 45

    def full_hand_pose(self, hand_pose: torch.Tensor) -> torch.Tensor:
        """Per-joint axis-angles ``(B, 45)`` from the input pose (PCA expanded, mean added when not flat)."""
        if self.use_pca:
            hand_pose = hand_pose @ self.hands_components
        return hand_pose + self.hands_mean

    def pose_param(self, full_pose: np.ndarray) -> np.ndarray:
        """Inverse of ``full_hand_pose`` for axis-angle input: per-joint rotations (45,) -> the ``hand_pose`` to pass."""
        if self.use_pca:
            raise DataError(None, "pose_param needs an axis-angle model (use_pca=False)")
        return np.asarray(full_pose, dtype=np.float64) - self.hands_mean.cpu().numpy()

    def _tensor(self, value, batch: int | None, dim: int) -> torch.Tensor:
        ref = self.v_template
        if value is None:
            return torch.zeros(batch or 1, dim, dtype=ref.dtype, device=ref.device)
        value = torch.as_tensor(np.asarray(value) if not torch.is_tensor(value) else value, dtype=ref.dtype,
                                device=ref.device)
        return value.reshape(-1, dim) if value.numel() else torch.zeros(batch or 1, dim, dtype=ref.dtype,
                                                                        device=ref.device)

    def forward(self, global_orient=None, hand_pose=None, betas=None, transl=None) -> HandOutput:
        """Pose the hand. Inputs are ``(B, n)`` tensors/arrays (or ``(n,)`` for one hand); missing ones are zero."""
        batch = None
        for value in (global_orient, hand_pose, betas, transl):
            if value is not None:
                batch = int(np.prod(np.shape(value)[:-1])) if len(np.shape(value)) > 1 else 1
                break
        orient = self._tensor(global_orient, batch, 3)
        pose = self._tensor(hand_pose, batch, self.pose_dim)
        shape = self._tensor(betas, batch, self.num_betas)
        trans = self._tensor(transl, batch, 3)
        b = orient.shape[0]
        full = torch.cat([orient, self.full_hand_pose(pose)], dim=-1).reshape(b, NUM_MANO_JOINTS, 3)
        rot = axis_angle_to_matrix(full)                                                # (B, 16, 3, 3)

        v_shaped = self.v_template + torch.einsum("vcs,bs->bvc", self.shapedirs, shape.expand(b, -1))
        rest_joints = torch.einsum("jv,bvc->bjc", self.J_regressor, v_shaped)            # (B, 16, 3)
        eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
        pose_feature = (rot[:, 1:] - eye).reshape(b, -1)
        v_posed = v_shaped + (pose_feature @ self.posedirs).reshape(b, -1, 3)

        rel = rest_joints.clone()
        rel[:, 1:] = rest_joints[:, 1:] - rest_joints[:, self.parents[1:]]
        local = torch.zeros(b, NUM_MANO_JOINTS, 4, 4, dtype=rot.dtype, device=rot.device)
        local[..., :3, :3], local[..., :3, 3], local[..., 3, 3] = rot, rel, 1.0
        chain = [local[:, 0]]
        for j in range(1, NUM_MANO_JOINTS):
            chain.append(chain[self.parents[j]] @ local[:, j])
        world = torch.stack(chain, dim=1)                                                # (B, 16, 4, 4)
        posed_joints = world[..., :3, 3]
        skin = world.clone()
        skin[..., :3, 3] = posed_joints - (world[..., :3, :3] @ rest_joints[..., None])[..., 0]
        per_vertex = torch.einsum("vj,bjxy->bvxy", self.weights, skin)
        verts = (per_vertex[..., :3, :3] @ v_posed[..., None])[..., 0] + per_vertex[..., :3, 3]
        verts = verts + trans[:, None]
        mano_joints = posed_joints + trans[:, None]
        joints = torch.cat([mano_joints, verts[:, self.tip_ids]], dim=1)[:, JOINT21_FROM_MANO]
        return HandOutput(vertices=verts, joints=joints, mano_joints=mano_joints, transforms=skin)

    # ----------------------------------------------------------------------------------- grasp helpers
    def rest_joints(self, betas=None) -> np.ndarray:
        """The 16 MANO-order joints of the (shaped) template, numpy ``(16, 3)``."""
        shape = self._tensor(betas, 1, self.num_betas)
        v_shaped = self.v_template + torch.einsum("vcs,bs->bvc", self.shapedirs, shape)[0]
        return (self.J_regressor @ v_shaped).detach().cpu().double().numpy()

    def palm_normal(self, betas=None) -> np.ndarray:
        """Unit vector from the back of the hand towards the palm side, in the template frame."""
        joints = self.rest_joints(betas)
        index, little = joints[1] - joints[0], joints[7] - joints[0]
        normal = np.cross(index, little) if self.data.side == "right" else np.cross(little, index)
        return normal / np.linalg.norm(normal)

    def curl_pose(self, closure, max_angles=((0.6, 0.5, 0.7), (1.2, 1.4, 1.0)), betas=None) -> np.ndarray:
        """Per-joint axis-angles (45,) that flex each finger towards the palm.

        ``closure``: scalar or 5 values (thumb, index, middle, ring, little) in [0, 1]; ``max_angles``: radians
        at closure 1 for the thumb's three joints and for the other fingers'. Returns full rotations: pass
        ``pose_param(curl_pose(...))`` as ``hand_pose``.
        """
        closure = np.broadcast_to(np.asarray(closure, dtype=np.float64), (5,))
        joints = self.rest_joints(betas)
        tips = (self.v_template[self.tip_ids].detach().cpu().double().numpy()
                if betas is None else self.forward(betas=betas).vertices[0, self.tip_ids].detach().double().numpy())
        palm = self.palm_normal(betas)
        # the thumb closes towards the palm's centre (opposition), the fingers straight towards the palm
        across = joints[4] - joints[13]
        thumb_dir = palm + 0.8 * across / np.linalg.norm(across)
        pose = np.zeros((NUM_MANO_JOINTS, 3))
        for finger, chain in enumerate(FINGER_CHAINS):
            angles = max_angles[0] if finger == 0 else max_angles[1]
            towards = thumb_dir if finger == 0 else palm
            for k, joint in enumerate(chain):
                child = joints[chain[k + 1]] if k + 1 < len(chain) else tips[finger]
                bone = child - joints[joint]
                axis = np.cross(bone, towards)
                axis /= max(np.linalg.norm(axis), 1e-12)
                pose[joint] = closure[finger] * angles[k] * axis
        return pose[1:].reshape(-1)
