"""Object meshes for the pose stage: user meshes via trimesh (.obj/.ply/...) and built-in YCB-like primitives.

Every object carries the class id its pixels get in the seg mask (YCB ids as in DexYCB, coloured with the
ADE20K palette) and a colour for the shaded render. Object frame: metres, centred on the bounding box, z up.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from data_tools.pose.camera import rotation_matrix
from data_tools.errors import DataError, require_file


@dataclasses.dataclass
class ObjectMesh:
    """A triangle mesh with its seg class id and display colour."""

    vertices: np.ndarray  # (V, 3) float64, object frame
    faces: np.ndarray     # (F, 3) int64
    name: str = "object"
    class_id: int = 1
    color: tuple[int, int, int] = (200, 60, 50)

    def transformed(self, rot_aa: np.ndarray, transl: np.ndarray) -> np.ndarray:
        """Vertices in the world for object pose (axis-angle rotation, translation)."""
        return self.vertices @ rotation_matrix(rot_aa).T + np.asarray(transl, dtype=np.float64)

    @property
    def bottom(self) -> float:
        return float(self.vertices[:, 2].min())


# name -> (shape, size in metres, YCB class id, colour). Sizes approximate the YCB objects of DexYCB.
BUILTIN_OBJECTS = {
    "master_chef_can": ("cylinder", (0.051, 0.140), 1, (40, 80, 170)),
    "cracker_box": ("box", (0.060, 0.158, 0.210), 2, (200, 40, 35)),
    "sugar_box": ("box", (0.038, 0.089, 0.175), 3, (230, 210, 90)),
    "tomato_soup_can": ("cylinder", (0.033, 0.101), 4, (190, 30, 30)),
    "mustard_bottle": ("box", (0.050, 0.095, 0.175), 5, (235, 200, 20)),
    "tuna_fish_can": ("cylinder", (0.043, 0.033), 6, (90, 110, 170)),
    "pudding_box": ("box", (0.035, 0.110, 0.089), 7, (150, 90, 50)),
    "gelatin_box": ("box", (0.028, 0.085, 0.073), 8, (210, 50, 90)),
    "potted_meat_can": ("box", (0.050, 0.097, 0.082), 9, (40, 70, 150)),
    "bowl": ("cylinder", (0.080, 0.055), 13, (220, 60, 50)),
    "mug": ("cylinder", (0.040, 0.080), 14, (180, 40, 40)),
    "wood_block": ("box", (0.085, 0.085, 0.200), 16, (200, 160, 100)),
    "foam_brick": ("box", (0.050, 0.075, 0.050), 21, (200, 40, 40)),
    "ball": ("sphere", (0.045,), 10, (230, 200, 60)),
}


def primitive(shape: str, size, name: str | None = None, class_id: int = 1,
              color: tuple[int, int, int] = (200, 60, 50)) -> ObjectMesh:
    """A box ``(dx, dy, dz)``, cylinder ``(radius, height)`` (axis z) or sphere ``(radius,)`` centred at 0."""
    import trimesh

    if shape == "box":
        mesh = trimesh.creation.box(extents=size)
    elif shape == "cylinder":
        mesh = trimesh.creation.cylinder(radius=size[0], height=size[1], sections=32)
    elif shape == "sphere":
        mesh = trimesh.creation.icosphere(subdivisions=2, radius=size[0])
    else:
        raise DataError(None, f"unknown primitive shape {shape!r}; expected box, cylinder or sphere")
    return ObjectMesh(np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64),
                      name or shape, class_id, tuple(color))


def builtin_object(name: str) -> ObjectMesh:
    """One of ``BUILTIN_OBJECTS`` by name."""
    if name not in BUILTIN_OBJECTS:
        raise DataError(None, f"unknown built-in object {name!r}; choose from {sorted(BUILTIN_OBJECTS)}")
    shape, size, class_id, color = BUILTIN_OBJECTS[name]
    return primitive(shape, size, name, class_id, color)


def load_mesh(path: str | os.PathLike, scale: float = 1.0, class_id: int = 1, name: str | None = None,
              color: tuple[int, int, int] = (200, 60, 50), center: bool = False) -> ObjectMesh:
    """Load a mesh file with trimesh (scenes are merged); ``center`` moves the bounding-box centre to 0."""
    import trimesh

    path = require_file(path, "object mesh")
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types for bad files
        raise DataError(path, f"cannot read mesh: {exc}") from None
    if not hasattr(mesh, "faces") or len(mesh.faces) == 0:
        raise DataError(path, "mesh has no triangles")
    vertices = np.asarray(mesh.vertices, np.float64) * scale
    if center:
        vertices = vertices - (vertices.min(0) + vertices.max(0)) / 2
    return ObjectMesh(vertices, np.asarray(mesh.faces, np.int64),
                      name or os.path.splitext(os.path.basename(path))[0], class_id, tuple(color))


def resolve_object(spec: str, scale: float = 1.0, class_id: int | None = None) -> ObjectMesh:
    """A built-in name or a mesh path (``class_id`` overrides the seg class)."""
    if spec in BUILTIN_OBJECTS:
        obj = builtin_object(spec)
        if scale != 1.0:
            obj = dataclasses.replace(obj, vertices=obj.vertices * scale)
    else:
        obj = load_mesh(spec, scale=scale)
    return obj if class_id is None else dataclasses.replace(obj, class_id=int(class_id))


def winding_number(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Generalised winding number of ``points`` (N, 3) w.r.t. a closed mesh: ~1 inside, ~0 outside."""
    tri = np.asarray(vertices, np.float64)[np.asarray(faces)]        # (F, 3, 3)
    points = np.asarray(points, np.float64).reshape(-1, 3)
    out = np.zeros(len(points))
    for start in range(0, len(points), chunk):
        rel = tri[None] - points[start:start + chunk, None, None]     # (n, F, 3, 3)
        a, b, c = rel[:, :, 0], rel[:, :, 1], rel[:, :, 2]
        la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
        det = np.einsum("nfi,nfi->nf", a, np.cross(b, c))
        dot = lambda x, y: np.einsum("nfi,nfi->nf", x, y)  # noqa: E731
        den = la * lb * lc + dot(a, b) * lc + dot(b, c) * la + dot(c, a) * lb
        out[start:start + chunk] = np.arctan2(det, den).sum(-1) / (2 * np.pi)
    return out


def corner_normals(vertices: np.ndarray, faces: np.ndarray, crease_deg: float = 40.0) -> np.ndarray:
    """Per-corner normals ``(F, 3, 3)``: smooth across edges flatter than ``crease_deg``, sharp across creases.

    Each corner averages (area-weighted) the normals of the faces around its vertex that lie within
    ``crease_deg`` of its own face, so boxes keep flat sides and cylinders get smooth walls and flat caps.
    """
    vertices, faces = np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
    tri = vertices[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])           # length = 2 x area
    unit = normal / np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-20)
    corner_vertex = faces.reshape(-1)
    corner_face = np.repeat(np.arange(len(faces)), 3)
    order = np.argsort(corner_vertex, kind="stable")
    counts = np.bincount(corner_vertex, minlength=len(vertices))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sorted_vertex = corner_vertex[order]
    k = counts[sorted_vertex]                                                  # group size of each sorted corner
    i = np.repeat(np.arange(len(order)), k)                                    # pairs (i, j) within each group
    j = starts[sorted_vertex][i] + (np.arange(len(i)) - np.repeat(np.cumsum(k) - k, k))
    fi, fj = corner_face[order[i]], corner_face[order[j]]
    keep = (unit[fi] * unit[fj]).sum(-1) >= np.cos(np.radians(crease_deg))
    acc = np.zeros((len(order), 3))
    np.add.at(acc, i[keep], normal[fj[keep]])
    out = np.zeros((len(corner_vertex), 3))
    out[order] = acc
    out /= np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-20)
    return out.reshape(len(faces), 3, 3)
