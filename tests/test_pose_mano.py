"""MANO layer (chumpy-free loading of a synthetic pkl in the official format) and the procedural hand."""
from __future__ import annotations

import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch
from scipy.spatial.transform import Rotation

from data_tools.errors import DataError
from data_tools.maps.keypoints import JOINT_NAMES, NUM_JOINTS
from data_tools.pose.mano import JOINT21_FROM_MANO, MANO_PARENTS, MANO_TIP_VERTICES, HandModel, load_mano_data
from data_tools.pose.procedural_hand import procedural_hand

V = 778


def _fake_chumpy_class():
    """A class that pickles as ``chumpy.ch.Ch`` with chumpy's state layout (array under 'x')."""
    module = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = x
            self._dirty_vars = set()
            self._itr = None

        def __getstate__(self):
            return dict(self.__dict__)

    class MatVecMult(Ch):  # a chumpy expression: no 'x' in its state
        def __init__(self, mtx, vec):
            self.mtx, self.vec = mtx, vec

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    MatVecMult.__module__, MatVecMult.__qualname__ = "chumpy.ch", "MatVecMult"
    module.Ch, module.MatVecMult = Ch, MatVecMult
    return module, Ch


@pytest.fixture(scope="module")
def synthetic_pkl(tmp_path_factory):
    rng = np.random.default_rng(0)
    v_template = rng.normal(scale=0.05, size=(V, 3))
    owner = rng.integers(0, 16, size=V)
    weights = np.full((V, 16), 0.02)
    weights[np.arange(V), owner] += 1.0
    weights /= weights.sum(1, keepdims=True)
    regressor = np.zeros((16, V))
    for j in range(16):
        regressor[j, rng.choice(V, 8, replace=False)] = 1 / 8
    comps = np.linalg.qr(rng.normal(size=(45, 45)))[0]
    module, Ch = _fake_chumpy_class()
    parent = types.ModuleType("chumpy")
    parent.ch = module
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = parent, module
    try:
        data = {
            "v_template": v_template, "f": rng.integers(0, V, size=(1538, 3)).astype(np.uint32),
            "weights": weights, "J_regressor": scipy.sparse.csc_matrix(regressor),
            "shapedirs": Ch(rng.normal(scale=0.01, size=(V, 3, 10))),
            "posedirs": rng.normal(scale=0.01, size=(V, 3, 135)),
            "kintree_table": np.stack([np.where(MANO_PARENTS < 0, 4294967295, MANO_PARENTS), np.arange(16)]),
            "hands_components": comps, "hands_mean": rng.normal(scale=0.1, size=45),
            "hands_coeffs": Ch(rng.normal(size=(10, 45))), "bs_style": "lbs", "bs_type": "lrotmin",
            "J": module.MatVecMult(scipy.sparse.csc_matrix(regressor), Ch(v_template)),
        }
        path = tmp_path_factory.mktemp("mano") / "MANO_RIGHT.pkl"
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=2)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    return path, data, regressor


def _reference_lbs(data, regressor, full_pose, betas, transl):
    """Straightforward per-joint loop implementation of MANO's forward pass (numpy, float64)."""
    shapedirs = data["shapedirs"].x
    v_shaped = data["v_template"] + shapedirs @ betas
    joints = regressor @ v_shaped
    rots = Rotation.from_rotvec(full_pose.reshape(16, 3)).as_matrix()
    feat = np.concatenate([(r - np.eye(3)).ravel() for r in rots[1:]])
    v_posed = v_shaped + data["posedirs"] @ feat
    world = []
    for j in range(16):
        local = np.eye(4)
        local[:3, :3] = rots[j]
        local[:3, 3] = joints[j] - (joints[MANO_PARENTS[j]] if j else 0)
        world.append(local if j == 0 else world[MANO_PARENTS[j]] @ local)
    out = np.zeros_like(v_posed)
    for j in range(16):
        g = world[j]
        moved = v_posed @ g[:3, :3].T + (g[:3, 3] - g[:3, :3] @ joints[j])
        out += data["weights"][:, j:j + 1] * moved
    return out + transl, np.stack([g[:3, 3] for g in world]) + transl


def test_loads_without_chumpy_and_zero_pose_is_template(synthetic_pkl):
    path, data, regressor = synthetic_pkl
    assert "chumpy" not in sys.modules
    model_data = load_mano_data(path)
    assert model_data.side == "right" and model_data.J_regressor.shape == (16, V)
    np.testing.assert_array_equal(model_data.shapedirs, data["shapedirs"].x)
    np.testing.assert_array_equal(model_data.parents, MANO_PARENTS)
    model = HandModel(model_data, dtype=torch.float64)
    out = model()
    assert out.vertices.shape == (1, V, 3) and out.joints.shape == (1, NUM_JOINTS, 3)
    np.testing.assert_allclose(out.vertices[0].numpy(), data["v_template"], atol=1e-12)
    mano16 = regressor @ data["v_template"]
    np.testing.assert_allclose(out.mano_joints[0].numpy(), mano16, atol=1e-12)


def test_joint_order_matches_reference(synthetic_pkl):
    path, data, regressor = synthetic_pkl
    model = HandModel(load_mano_data(path), dtype=torch.float64)
    out = model(hand_pose=np.random.default_rng(1).normal(scale=0.3, size=45))
    joints, verts, mano = out.joints[0].numpy(), out.vertices[0].numpy(), out.mano_joints[0].numpy()
    assert len(JOINT_NAMES) == NUM_JOINTS == 21
    # wrist, then per finger (thumb, index, middle, ring, little) three MANO joints and the tip vertex
    chains = {"thumb": (13, 14, 15), "index": (1, 2, 3), "middle": (4, 5, 6), "ring": (10, 11, 12), "little": (7, 8, 9)}
    np.testing.assert_allclose(joints[0], mano[0])
    for f, (finger, chain) in enumerate(chains.items()):
        for k in range(3):
            assert JOINT_NAMES[1 + 4 * f + k] == f"{finger}_{k + 1}"
            np.testing.assert_allclose(joints[1 + 4 * f + k], mano[chain[k]])
        np.testing.assert_allclose(joints[4 + 4 * f], verts[MANO_TIP_VERTICES[f]])
    assert sorted(JOINT21_FROM_MANO.tolist()) == list(range(21))


def test_matches_loop_reference_with_shape_pose_and_translation(synthetic_pkl):
    path, data, regressor = synthetic_pkl
    rng = np.random.default_rng(2)
    orient, pose, betas, transl = (rng.normal(scale=s, size=n) for s, n in ((0.5, 3), (0.4, 45), (1.0, 10), (0.1, 3)))
    model = HandModel(load_mano_data(path), flat_hand_mean=False, dtype=torch.float64)
    out = model(orient[None], pose[None], betas[None], transl[None])
    full = np.concatenate([orient, pose + data["hands_mean"]])
    ref_v, ref_j = _reference_lbs(data, regressor, full, betas, transl)
    np.testing.assert_allclose(out.vertices[0].numpy(), ref_v, atol=1e-10)
    np.testing.assert_allclose(out.mano_joints[0].numpy(), ref_j, atol=1e-10)


def test_root_rotation_rotates_everything_about_the_wrist(synthetic_pkl):
    path, _, _ = synthetic_pkl
    model = HandModel(load_mano_data(path), dtype=torch.float64)
    pose = np.random.default_rng(3).normal(scale=0.3, size=(1, 45))
    base = model(hand_pose=pose)
    aa = np.array([0.3, -1.1, 0.7])
    rotated = model(global_orient=aa[None], hand_pose=pose)
    rot, wrist = Rotation.from_rotvec(aa).as_matrix(), base.joints[0, 0].numpy()
    for a, b in ((base.vertices, rotated.vertices), (base.joints, rotated.joints)):
        np.testing.assert_allclose(b[0].numpy(), (a[0].numpy() - wrist) @ rot.T + wrist, atol=1e-10)


def test_pca_pose_equals_axis_angle_of_its_expansion(synthetic_pkl):
    path, data, _ = synthetic_pkl
    model_data = load_mano_data(path)
    coeffs = np.random.default_rng(4).normal(size=(2, 6))
    pca = HandModel(model_data, use_pca=True, num_pca_comps=6, flat_hand_mean=False, dtype=torch.float64)
    aa = HandModel(model_data, flat_hand_mean=True, dtype=torch.float64)
    expanded = coeffs @ data["hands_components"][:6] + data["hands_mean"]
    np.testing.assert_allclose(pca(hand_pose=coeffs).vertices.numpy(), aa(hand_pose=expanded).vertices.numpy(),
                               atol=1e-10)


def test_required_chumpy_expression_is_reported(synthetic_pkl, tmp_path):
    _, data, _ = synthetic_pkl
    # the unneeded 'J' expression was skipped above; make a required key an expression and expect a clear error
    module, Ch = _fake_chumpy_class()
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = types.ModuleType("chumpy"), module
    try:
        bad = {key: data[key] for key in ("v_template", "f", "weights", "posedirs")}
        bad["shapedirs"] = module.MatVecMult(np.eye(2), Ch(np.ones(2)))
        bad_path = tmp_path / "MANO_RIGHT.pkl"
        bad_path.write_bytes(pickle.dumps(bad, protocol=2))
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    assert "chumpy" not in sys.modules
    with pytest.raises(DataError, match="'shapedirs' is a chumpy expression"):
        load_mano_data(bad_path)


def test_refuses_foreign_globals(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps({"v_template": Evil()}, protocol=2))
    with pytest.raises(DataError, match="MANO_RIGHT.pkl"):
        load_mano_data(path)


def test_procedural_hand_same_api_and_curl():
    hand = procedural_hand()
    out = hand(global_orient=np.zeros((3, 3)), hand_pose=np.zeros((3, 45)))
    assert out.joints.shape == (3, 21, 3) and out.vertices.shape[1] == hand.data.v_template.shape[0]
    joints = out.joints[0].numpy()
    np.testing.assert_allclose(joints[0], 0, atol=1e-9)                   # wrist at the origin
    assert joints[4, 1] > joints[8, 1] > joints[12, 1] > joints[16, 1] > joints[20, 1]  # thumb -> little along y
    assert np.all(joints[[8, 12, 16, 20], 0] > 0.14)                      # fingers point along +x
    closed = hand(hand_pose=hand.pose_param(hand.curl_pose(1.0))).joints[0].numpy()
    palm = hand.palm_normal()
    np.testing.assert_allclose(palm, [0, 0, -1], atol=0.05)
    for tip in (8, 12, 16, 20):                                           # curled tips move to the palm side
        assert closed[tip] @ palm > joints[tip] @ palm + 0.03
        assert closed[tip, 0] < joints[tip, 0] - 0.05
    scaled = hand(betas=np.eye(10)[0]).joints[0].numpy()                  # beta_0 scales about the wrist
    np.testing.assert_allclose(scaled, joints * 1.1, atol=1e-6)
    left = procedural_hand("left")().joints[0].numpy()
    np.testing.assert_allclose(left, joints * [1, -1, 1], atol=1e-6)
