"""Camera projection, the z-buffer renderer, trajectories (format, GraspXL reader, grasp generator), sim folders."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from data_tools.maps.bundle import ConditionBundle
from data_tools.pose.camera import Camera, look_at, rotation_matrix
from data_tools.errors import DataError
from data_tools.pose.objects import builtin_object, corner_normals, winding_number
from data_tools.pose.procedural_hand import procedural_hand
from data_tools.pose.render import Part, RenderConfig, render_parts, render_trajectory, write_outputs
from data_tools.maps.segmentation import ADE20K_PALETTE, BACKGROUND_CLASS, HAND_CLASS
from data_tools.pose.trajectory import (Grasp, generate_grasp_trajectory, interpolate_grasp, load_trajectory, read_graspxl,
                                   save_trajectory)

torch.manual_seed(0)
NO_TABLE = RenderConfig(table=False)


def _square(z: float, half: float, class_id: int = 1, centre=(0.0, 0.0)) -> Part:
    cx, cy = centre
    verts = np.array([[cx - half, cy - half, z], [cx + half, cy - half, z], [cx + half, cy + half, z],
                      [cx - half, cy + half, z]])
    return Part(verts, np.array([[0, 1, 2], [0, 2, 3]]), class_id, (255, 255, 255))


def test_projection_lands_on_expected_pixels():
    cam = Camera(fx=100, fy=200, cx=31.5, cy=23.5, height=48, width=64)
    pts = np.array([[0, 0, 2.0], [0.2, -0.1, 1.0], [-1.0, 0.5, 4.0], [0, 0, -1.0]])
    expected = np.array([[31.5, 23.5], [51.5, 3.5], [6.5, 48.5], [-1, -1]])
    np.testing.assert_allclose(cam.project(pts), expected)
    # extrinsics: a camera at (0, 0, -2) looking at the origin along +z sees the origin at the centre
    rot, trans = look_at([0, 0, -2.0], [0, 0, 0], up=[0, -1.0, 0])
    moved = dataclasses.replace(cam, rotation=rot, translation=trans)
    np.testing.assert_allclose(moved.project(np.zeros(3)), [31.5, 23.5])
    np.testing.assert_allclose(moved.project([0.2, -0.1, -1.0]), [51.5, 3.5], atol=1e-9)
    # scaling the image scales intrinsics about pixel centres: the same ray lands on the corresponding pixel
    half = cam.scaled(24, 32)
    np.testing.assert_allclose(half.project(pts[1]), (expected[1] + 0.5) / 2 - 0.5)


def test_rotation_matrix_matches_scipy():
    from scipy.spatial.transform import Rotation

    aa = np.array([[0.3, -0.2, 1.1], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(rotation_matrix(aa), Rotation.from_rotvec(aa).as_matrix(), atol=1e-12)


def test_depth_of_planes_and_occlusion():
    cam = Camera(fx=50, fy=50, cx=31.5, cy=23.5, height=48, width=64)
    frame = render_parts([_square(2.0, 0.3, class_id=5)], cam, NO_TABLE)
    # the square spans x in [-0.3, 0.3] m at 2 m: u in 31.5 +- 7.5 -> pixel columns 24..39, rows 16..31
    covered = frame.depth > 0
    rows, cols = np.nonzero(covered)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (16, 31, 24, 39)
    np.testing.assert_allclose(frame.depth[covered], 2.0, rtol=1e-5)
    assert set(np.unique(frame.classes[covered])) == {5} and (frame.classes[~covered] == BACKGROUND_CLASS).all()
    # a plane facing the camera has normal (0, 0, 1) in the OpenGL convention: RGB (128, 128, 255)
    assert (frame.normal_rgb[covered] == [128, 128, 255]).all() and (frame.normal_rgb[~covered] == 0).all()
    # a tilted plane z = 2 + 0.5 x: camera depth at pixel u is 2 / (1 - 0.5 (u - cx) / fx)
    tilted = Part(np.array([[-0.5, -0.5, 1.75], [0.5, -0.5, 2.25], [0.5, 0.5, 2.25], [-0.5, 0.5, 1.75]]),
                  np.array([[0, 1, 2], [0, 2, 3]]), 7, (255, 255, 255))
    frame = render_parts([tilted], cam, NO_TABLE)
    v, u = np.nonzero(frame.depth > 0)
    np.testing.assert_allclose(frame.depth[v, u], 2.0 / (1 - 0.5 * (u - cam.cx) / cam.fx), rtol=1e-4)
    # occlusion: the nearer square wins wherever they overlap, whatever the drawing order
    for parts in ([_square(2.0, 0.3, 5), _square(1.0, 0.05, 9)], [_square(1.0, 0.05, 9), _square(2.0, 0.3, 5)]):
        frame = render_parts(parts, cam, NO_TABLE)
        assert frame.classes[23, 31] == 9 and frame.classes[17, 25] == 5
        np.testing.assert_allclose(frame.depth[23, 31], 1.0, rtol=1e-5)


def test_rasterizer_matches_brute_force_on_random_triangles():
    from data_tools.pose.render import rasterize

    rng = np.random.default_rng(0)
    cam = Camera(fx=30, fy=30, cx=15.5, cy=11.5, height=24, width=32)
    verts = np.concatenate([rng.uniform(-0.8, 0.8, (60, 2)), rng.uniform(1.0, 3.0, (60, 1))], 1)
    faces = rng.integers(0, 60, (25, 3))
    pix, face, bary = rasterize(torch.tensor(verts, dtype=torch.float32), torch.tensor(faces), cam)
    got = np.full(cam.height * cam.width, -1)
    got[pix.numpy()] = face.numpy()
    # brute force: every pixel against every triangle, perspective depth from the interpolated 1/z
    uv = cam.project(verts, world=False)
    ys, xs = np.mgrid[:cam.height, :cam.width]
    best = np.full(xs.shape, np.inf)
    want = np.full(xs.shape, -1)
    for f, (a, b, c) in enumerate(faces):
        (xa, ya), (xb, yb), (xc, yc) = uv[a], uv[b], uv[c]
        area = (xb - xa) * (yc - ya) - (yb - ya) * (xc - xa)
        if abs(area) < 1e-9:
            continue
        w0 = ((xb - xs) * (yc - ys) - (yb - ys) * (xc - xs)) / area
        w1 = ((xc - xs) * (ya - ys) - (yc - ys) * (xa - xs)) / area
        w2 = 1 - w0 - w1
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        depth = 1 / (w0 / verts[a, 2] + w1 / verts[b, 2] + w2 / verts[c, 2])
        closer = inside & (depth < best)
        best[closer], want[closer] = depth[closer], f
    np.testing.assert_array_equal(got.reshape(xs.shape), want)
    assert (want >= 0).sum() > 100
    np.testing.assert_allclose(bary.sum(1).numpy(), 1, atol=1e-5)


def test_table_plane_depth():
    rot, trans = look_at([0, 0, 1.0], [0, 0, 0], up=[0, 1.0, 0])
    cam = Camera(fx=40, fy=40, cx=15.5, cy=11.5, height=24, width=32, rotation=rot, translation=trans)
    frame = render_parts([], cam, RenderConfig(table=True, table_size=10.0))
    # looking straight down from 1 m: pixel depth is 1 everywhere, the table is background with normal up
    np.testing.assert_allclose(frame.depth, 1.0, rtol=1e-5)
    assert (frame.classes == BACKGROUND_CLASS).all() and (frame.normal_rgb == [128, 128, 255]).all()


@pytest.fixture(scope="module")
def small_trajectory():
    hand = procedural_hand()
    obj = builtin_object("tomato_soup_can")
    traj = generate_grasp_trajectory(hand, obj, "tomato_soup_can", num_frames=9, height=48, width=64, seed=0,
                                     name="small")
    return hand, obj, traj


def test_grasp_trajectory_phases_and_contact(small_trajectory):
    hand, obj, traj = small_trajectory
    assert traj.num_frames == 9 and traj.hand_pose.shape == (9, 45)
    np.testing.assert_allclose(traj.object_transl[0], [0, 0, -obj.bottom])          # resting on the table
    lift = traj.object_transl[-1, 2] - traj.object_transl[0, 2]
    np.testing.assert_allclose(lift, 0.12, atol=1e-9)
    np.testing.assert_allclose(traj.hand_transl[-1] - traj.hand_transl[-2], traj.object_transl[-1] - traj.object_transl[-2])
    out = hand(traj.hand_global_orient, traj.hand_pose, None, traj.hand_transl)
    verts = out.vertices.numpy().astype(np.float64)
    obj_verts = obj.vertices + traj.object_transl[-1]
    inside = winding_number(obj_verts, obj.faces, verts[-1]) > 0.5
    assert inside.mean() < 0.02                                                      # fingers stop at contact
    tips = out.joints.numpy()[:, [8, 12]]
    axis_dist = np.linalg.norm(tips[..., :2] - traj.object_transl[:, None, :2], axis=-1)
    assert (axis_dist[-1] < axis_dist[0] - 0.05).all()                               # the hand came to the can


def test_given_target_grasp_is_reached_before_the_lift(small_trajectory):
    hand, obj, _ = small_trajectory
    target = Grasp(np.array([0.2, -0.3, 0.1]), hand.curl_pose(0.5), np.array([0.05, -0.1, 0.08]))
    traj = generate_grasp_trajectory(hand, obj, "tomato_soup_can", num_frames=21, height=48, width=64, target=target)
    # frame 14 ends the close phase (approach 40 %, close 30 % of 20 intervals): the target, not yet lifted
    np.testing.assert_allclose(traj.hand_global_orient[14], target.global_orient, atol=1e-9)
    np.testing.assert_allclose(traj.hand_transl[14], target.transl, atol=1e-9)
    np.testing.assert_allclose(traj.hand_pose[14], hand.pose_param(target.full_pose), atol=1e-9)
    back = hand(target.global_orient, None, None, target.transl).vertices[0].numpy()
    start = hand(traj.hand_global_orient[0], None, None, traj.hand_transl[0]).vertices[0].numpy()
    assert np.linalg.norm((start - back).mean(0)) > 0.1                                # it started away


def test_interpolate_grasp_endpoints():
    a = Grasp(np.zeros(3), np.zeros(45), np.zeros(3))
    b = Grasp(np.array([0, 0, 1.0]), np.full(45, 0.2), np.array([0.1, 0, 0]))
    orient, pose, transl, lift = interpolate_grasp(a, b, 21, approach=0.4, close=0.3, lift_height=0.1)
    np.testing.assert_allclose(orient[0], 0, atol=1e-12) and np.testing.assert_allclose(orient[8:], [[0, 0, 1.0]] * 13)
    np.testing.assert_allclose(pose[:9], 0, atol=1e-12)                               # open while approaching
    np.testing.assert_allclose(pose[14:], 0.2, atol=1e-9)                             # closed afterwards
    np.testing.assert_allclose(lift[[0, 14, 20]], [0, 0, 0.1], atol=1e-12)
    np.testing.assert_allclose(transl[-1], [0.1, 0, 0.1])


def test_trajectory_file_round_trip(small_trajectory, tmp_path):
    _, _, traj = small_trajectory
    for suffix in ("npz", "json"):
        back = load_trajectory(save_trajectory(traj, tmp_path / f"t.{suffix}"))
        for key in ("hand_global_orient", "hand_pose", "hand_transl", "object_rot", "object_transl", "hand_betas"):
            np.testing.assert_allclose(getattr(back, key), getattr(traj, key))
        assert back.camera.to_dict() == traj.camera.to_dict() and back.prompt == traj.prompt
    bad = tmp_path / "bad.json"
    bad.write_text('{"hand_pose": [[0]], "meta": {}}')
    with pytest.raises(DataError, match="bad.json"):
        load_trajectory(bad)


def test_graspxl_reader(tmp_path):
    t = 5
    rng = np.random.default_rng(0)
    data = {"right_hand": {"trans": rng.normal(size=(t, 3)), "rot": rng.normal(size=(t, 3)), "pose": rng.normal(size=(t, 45))},
            "obj123": {"trans": rng.normal(size=(t, 3)), "rot": rng.normal(size=(t, 3)), "angle": np.zeros(t)}}
    path = tmp_path / "mano_1.npy"
    np.save(path, np.array(data, dtype=object), allow_pickle=True)
    traj = read_graspxl(path, trans_is_wrist=False)
    np.testing.assert_allclose(traj.hand_pose, data["right_hand"]["pose"])
    np.testing.assert_allclose(traj.object_rot, data["obj123"]["rot"])
    assert traj.object.endswith("obj123.obj") and traj.num_frames == t
    # with trans as the wrist position, the posed wrist lands on it
    traj = read_graspxl(path)
    wrist = procedural_hand()(traj.hand_global_orient, traj.hand_pose, None, traj.hand_transl).joints[:, 0]
    np.testing.assert_allclose(wrist.numpy(), data["right_hand"]["trans"], atol=1e-5)


def test_rendered_seg_labels_and_sim_folder_round_trip(small_trajectory, tmp_path):
    hand, obj, traj = small_trajectory
    bundle = render_trajectory(traj, RenderConfig(height=48, width=64), hand, obj, progress=False)
    assert bundle.shape == (9, 48, 64) and set(bundle.conditions) == {"hand_keypoints", "depth", "seg_mask", "normal"}
    assert bundle.extras["rgb"].shape == (9, 48, 64, 3)
    cam = traj.camera.scaled(48, 64)
    seg = bundle.conditions["seg_mask"]
    hand_colour, obj_colour = ADE20K_PALETTE[HAND_CLASS], ADE20K_PALETTE[obj.class_id]
    # frame 0: the hand is away from the can; the projected can centre and palm centre carry their classes
    u, v = np.round(cam.project(obj.vertices.mean(0) + traj.object_transl[0])).astype(int)
    assert (seg[0, v, u] == obj_colour).all()
    joints = hand(traj.hand_global_orient[:1], traj.hand_pose[:1], None, traj.hand_transl[:1]).joints[0].numpy()
    u, v = np.round(cam.project(joints[[0, 5, 17]].mean(0))).astype(int)
    assert (seg[0, v, u] == hand_colour).all()
    palette_ids = {tuple(c) for c in seg.reshape(-1, 3)}
    assert palette_ids == {tuple(hand_colour), tuple(obj_colour), (0, 0, 0)}
    # depth: foreground non-black, background black; keypoints drawn
    fg = (seg != 0).any(-1)
    assert (bundle.conditions["depth"][fg] > 0).all() and (bundle.conditions["depth"][~fg] == 0).all()
    assert bundle.conditions["hand_keypoints"].reshape(9, -1).max(1).min() > 0
    write_outputs(bundle, str(tmp_path / "sim"), fps=15)
    back = ConditionBundle.from_sim_folder(tmp_path / "sim")
    for name, video in bundle.conditions.items():
        np.testing.assert_array_equal(back.conditions[name], video)
    np.testing.assert_array_equal(back.extras["rgb"], bundle.extras["rgb"])
    assert back.prompt == traj.prompt
    assert (tmp_path / "sim" / "seg_mask.mp4").is_file() and (tmp_path / "sim" / "rgb.mp4").is_file()


def test_corner_normals_box_and_cylinder():
    box = builtin_object("cracker_box")
    tri = box.vertices[box.faces]
    flat = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    flat /= np.linalg.norm(flat, axis=-1, keepdims=True)
    np.testing.assert_allclose(corner_normals(box.vertices, box.faces), np.repeat(flat[:, None], 3, 1), atol=1e-12)
    can = builtin_object("tomato_soup_can")
    normals = corner_normals(can.vertices, can.faces)
    side = np.abs(normals[..., 2]) < 0.5
    radial = can.vertices[can.faces][..., :2][side]
    radial /= np.linalg.norm(radial, axis=-1, keepdims=True)
    assert (np.sum(normals[..., :2][side] * radial, -1) > 0.98).all()        # smooth walls
