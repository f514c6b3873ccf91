"""Built-in procedural hand: a 21-joint articulated right (or mirrored left) hand with a capsule mesh.

It produces the same ``HandModelData`` as a MANO pkl (16 joints in MANO order, 15 x 3 axis-angle pose, 10 shape
coefficients of which the first scales the hand, 5 fingertip vertices), so ``HandModel`` runs it unchanged and
everything works on a fresh machine without the licensed MANO file. Rigid skinning: every capsule follows the
joint at its base; spheres at the joints keep the chain closed when it bends.

Template frame (metres, right hand): wrist at the origin, fingers along +x, thumb towards +y, palm facing -z.
"""
from __future__ import annotations

import numpy as np

from data_tools.pose.mano import NUM_MANO_JOINTS, HandModel, HandModelData, MANO_PARENTS

# MANO joint order: 0 wrist, 1-3 index, 4-6 middle, 7-9 little, 10-12 ring, 13-15 thumb.
# Per finger: base joint position, direction, three bone lengths (base->mid, mid->last, last->tip), base radius.
_FINGERS = {
    "index": (1, (0.088, 0.026, 0.0), (1.0, 0.08, 0.0), (0.040, 0.025, 0.020), 0.0095),
    "middle": (4, (0.092, 0.006, 0.0), (1.0, 0.0, 0.0), (0.045, 0.028, 0.022), 0.0100),
    "little": (7, (0.076, -0.032, 0.0), (1.0, -0.15, 0.0), (0.032, 0.020, 0.017), 0.0085),
    "ring": (10, (0.086, -0.013, 0.0), (1.0, -0.07, 0.0), (0.042, 0.027, 0.020), 0.0095),
    "thumb": (13, (0.022, 0.028, -0.012), (0.75, 0.62, -0.25), (0.036, 0.032, 0.026), 0.0115),
}
TIP_ORDER = ("thumb", "index", "middle", "ring", "little")
NUM_BETAS = 10
SCALE_PER_BETA = 0.1  # beta_0 = 1 makes the hand 10% larger


def _frame(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to ``direction`` (and to each other)."""
    helper = np.array([0.0, 0.0, 1.0]) if abs(direction[2]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(direction, helper)
    u /= np.linalg.norm(u)
    return u, np.cross(direction, u)


def orient_outwards(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Flip faces of a convex part so that their normals point away from the part's centroid."""
    tri = verts[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    inward = (normal * (tri.mean(1) - verts.mean(0))).sum(-1) < 0
    faces = faces.copy()
    faces[inward] = faces[inward][:, ::-1]
    return faces


def capsule(a, b, radius: float, radius_b: float | None = None, around: int = 12, cap_rings: int = 3):
    """Capsule mesh from ``a`` to ``b``: rings of ``around`` vertices, hemispherical caps with poles.

    Returns ``(vertices, faces, ring_a, ring_b, pole_b)``: ring_a/ring_b index the rings centred exactly on
    ``a``/``b`` and pole_b is the vertex at ``b + radius_b * direction``. Faces wind outwards.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    radius_b = radius if radius_b is None else radius_b
    axis = b - a
    d = axis / np.linalg.norm(axis)
    u, v = _frame(d)
    theta = np.linspace(0, 2 * np.pi, around, endpoint=False)
    circle = np.cos(theta)[:, None] * u + np.sin(theta)[:, None] * v            # (around, 3)
    rings = []  # (centre, ring radius) from the pole at a to the pole at b
    phis = np.linspace(0, np.pi / 2, cap_rings + 1)[1:]                          # excluding the pole
    for phi in phis:                                                             # cap at a
        rings.append((a - radius * np.cos(phi) * d, radius * np.sin(phi)))
    ring_a = len(rings) - 1
    for phi in phis[::-1]:                                                       # cap at b (equator first)
        rings.append((b + radius_b * np.cos(phi) * d, radius_b * np.sin(phi)))
    ring_b = ring_a + 1
    verts = [a - radius * d]
    for centre, r in rings:
        verts.extend(centre + r * circle)
    verts.append(b + radius_b * d)
    verts = np.asarray(verts)
    faces = []
    n = around
    first = lambda k: 1 + k * n  # noqa: E731  first vertex of ring k
    for i in range(n):                                                           # pole a fan
        faces.append((0, first(0) + (i + 1) % n, first(0) + i))
    for k in range(len(rings) - 1):
        for i in range(n):
            p, q = first(k) + i, first(k) + (i + 1) % n
            faces += [(p, q, q + n), (p, q + n, p + n)]
    last = len(verts) - 1
    for i in range(n):                                                           # pole b fan
        faces.append((last, first(len(rings) - 1) + i, first(len(rings) - 1) + (i + 1) % n))
    ids = lambda k: np.arange(first(k), first(k) + n)  # noqa: E731
    return verts, orient_outwards(verts, np.asarray(faces, dtype=np.int64)), ids(ring_a), ids(ring_b), last


def ellipsoid(centre, radii, around: int = 16, rings: int = 8):
    """UV ellipsoid mesh (outward winding)."""
    phi = np.linspace(0, np.pi, rings + 1)[1:-1]
    theta = np.linspace(0, 2 * np.pi, around, endpoint=False)
    ring_pts = np.stack([-np.cos(phi)[:, None].repeat(around, 1),
                         np.sin(phi)[:, None] * np.cos(theta), np.sin(phi)[:, None] * np.sin(theta)], -1)
    verts = np.concatenate([[[-1.0, 0, 0]], ring_pts.reshape(-1, 3), [[1.0, 0, 0]]])
    verts = verts * np.asarray(radii) + np.asarray(centre)
    faces, n = [], around
    first = lambda k: 1 + k * n  # noqa: E731
    for i in range(n):
        faces.append((0, first(0) + i, first(0) + (i + 1) % n))
    for k in range(len(phi) - 1):
        for i in range(n):
            p, q = first(k) + i, first(k) + (i + 1) % n
            faces += [(p, q + n, q), (p, p + n, q + n)]
    last = len(verts) - 1
    for i in range(n):
        faces.append((last, first(len(phi) - 1) + (i + 1) % n, first(len(phi) - 1) + i))
    return verts, orient_outwards(verts, np.asarray(faces, dtype=np.int64))


def procedural_hand_data(side: str = "right", around: int = 12) -> HandModelData:
    """Build the procedural hand's arrays (same layout as a MANO pkl)."""
    verts, faces, owner = [], [], []
    regressor_rings: dict[int, np.ndarray] = {}
    tips: dict[str, int] = {}

    def add(v, f, joint):
        offset = sum(len(x) for x in verts)
        verts.append(v), faces.append(f + offset), owner.append(np.full(len(v), joint))
        return offset

    # forearm stub ending at the wrist (its ring at b regresses joint 0) and the palm
    v, f, _, ring_b, _ = capsule((-0.045, 0, 0), (0, 0, 0), 0.026, 0.028, around=around)
    regressor_rings[0] = add(v, f, 0) + ring_b
    v, f = ellipsoid((0.047, 0.0, -0.002), (0.052, 0.046, 0.016))
    add(v, f, 0)
    for name, (base_joint, base, direction, lengths, radius) in _FINGERS.items():
        d = np.asarray(direction, float)
        d /= np.linalg.norm(d)
        points = [np.asarray(base, float)]
        for length in lengths:
            points.append(points[-1] + length * d)
        if name == "thumb":   # the thumb's base sits inside the palm; a short link joins it to the wrist
            v, f, _, _, _ = capsule((0.012, 0.008, -0.006), points[0], radius * 1.15, around=around)
            add(v, f, 0)
        for k in range(3):
            joint = base_joint + k
            r_a, r_b = radius * (1 - 0.08 * k), radius * (1 - 0.08 * (k + 1))
            end = points[k + 1] if k < 2 else points[3] - r_b * d  # the last pole lands exactly on the tip
            v, f, ring_a, _, pole = capsule(points[k], end, r_a, r_b, around=around)
            offset = add(v, f, joint)
            regressor_rings[joint] = offset + ring_a
            if k == 2:
                tips[name] = offset + pole
    v_template = np.concatenate(verts)
    faces = np.concatenate(faces)
    owner = np.concatenate(owner)
    if side == "left":  # mirror across the x-z plane and flip the winding
        v_template = v_template * [1, -1, 1]
        faces = faces[:, ::-1].copy()
    n_verts = len(v_template)
    weights = np.zeros((n_verts, NUM_MANO_JOINTS))
    weights[np.arange(n_verts), owner] = 1.0
    regressor = np.zeros((NUM_MANO_JOINTS, n_verts))
    for joint, ring in regressor_rings.items():
        regressor[joint, ring] = 1.0 / len(ring)
    shapedirs = np.zeros((n_verts, 3, NUM_BETAS))
    shapedirs[:, :, 0] = SCALE_PER_BETA * v_template   # beta_0 scales about the wrist
    return HandModelData(
        v_template=v_template, faces=faces, weights=weights, J_regressor=regressor, shapedirs=shapedirs,
        posedirs=np.zeros((n_verts, 3, 9 * (NUM_MANO_JOINTS - 1))), parents=MANO_PARENTS.copy(),
        hands_components=np.eye(45), hands_mean=np.zeros(45),
        tip_vertex_ids=tuple(tips[name] for name in TIP_ORDER), side=side, name=f"procedural_{side}").validate()


def procedural_hand(side: str = "right", **kwargs) -> HandModel:
    """A ``HandModel`` over the procedural hand (same API as a MANO model)."""
    return HandModel(procedural_hand_data(side), **kwargs)


def load_hand_model(mano_path: str | None = None, side: str = "right", **kwargs) -> HandModel:
    """MANO from ``mano_path`` when given, else the built-in procedural hand."""
    if mano_path:
        from data_tools.pose.mano import load_mano_data

        return HandModel(load_mano_data(mano_path, side=side), **kwargs)
    return procedural_hand(side, **kwargs)
