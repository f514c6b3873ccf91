"""Conditions in the style of the PAM authors' released models (``style: pam_release``): inferno depth (checked
against the reference's DexYCB sample), full-frame normals, the 3D-point tracking video, and the motion model's
normal stream fed as the reference feeds it."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from data_tools.errors import DataError
from data_tools.maps.bundle import ConditionBundle
from data_tools.maps.geometry_maps import normalize_depth
from data_tools.maps.style import get_style
from data_tools.pose.camera import Camera
from data_tools.pose.render import Part, RenderConfig, render_parts, render_trajectory
from data_tools.pose.tracking import tracking_video

# matplotlib's inferno at 0, 1/4, 1/2, 3/4 and 1 (its published table), an independent check of OpenCV's table
MATPLOTLIB_INFERNO = np.array([[0.001462, 0.000466, 0.013866], [0.341500, 0.062325, 0.429425],
                               [0.735683, 0.215906, 0.330245], [0.978422, 0.557937, 0.034931],
                               [0.988362, 0.998364, 0.644924]]) * 255


def _table(name: str) -> np.ndarray:
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], getattr(cv2, f"COLORMAP_{name.upper()}"))
    return cv2.cvtColor(lut, cv2.COLOR_BGR2RGB)[:, 0].astype(np.float64)


INFERNO = _table("inferno")
GREY = np.repeat(np.arange(256.0)[:, None], 3, 1)


def _rms_to_table(pixels: np.ndarray, table: np.ndarray) -> float:
    """RMS distance of RGB pixels ``(N, 3)`` to their nearest entry of a colour table ``(256, 3)``."""
    d = ((pixels[:, None, :].astype(np.float64) - table[None]) ** 2).sum(-1).min(1)
    return float(np.sqrt(d.mean()))


def test_release_inferno_table_is_matplotlibs():
    assert np.abs(INFERNO[[0, 64, 128, 191, 255]] - MATPLOTLIB_INFERNO).max() < 2.5


def test_release_style_colours_a_depth_ramp_with_inferno():
    ramp = np.linspace(0.5, 2.0, 64 * 64).reshape(1, 64, 64)
    style = get_style("pam_release")
    coloured = normalize_depth(ramp, near_is_bright=True, colormap=style.depth_colormap).reshape(-1, 3)
    grey = normalize_depth(ramp, near_is_bright=True, colormap=get_style("engine").depth_colormap).reshape(-1, 3)
    assert _rms_to_table(coloured, INFERNO) < 1.0 and _rms_to_table(grey, INFERNO) > 60
    assert _rms_to_table(grey, GREY) < 1.0
    # near is bright: the nearest pixel gets inferno's last (brightest) entry
    assert (coloured[0] == INFERNO[255]).all() and coloured[0].sum() > coloured[-1].sum()


def test_release_dexycb_sample_depth_is_inferno_not_grey(sample_dir):
    """The reference's own DexYCB depth condition: its foreground (non-black) pixels lie near inferno."""
    from data_tools.io.video_io import read_video

    video = read_video(f"{sample_dir}/val_depth.mp4")
    pixels = video.reshape(-1, 3)
    foreground = pixels[pixels.max(1) > 30]
    foreground = foreground[np.random.default_rng(0).choice(len(foreground), 20000, replace=False)]
    assert _rms_to_table(foreground, INFERNO) < 25           # measured: 15.6
    assert _rms_to_table(foreground, GREY) > 60               # measured: 135
    assert _rms_to_table(foreground, _table("magma")) > 40    # the nearest other map, measured: 66


def test_release_render_style(tmp_path):
    """pam_release rendering: inferno depth on the foreground, the normal facing the camera where nothing
    was rendered, a tracking video; an unknown style is one clear error before rendering."""
    from data_tools.pose.objects import builtin_object
    from data_tools.pose.procedural_hand import procedural_hand
    from data_tools.pose.trajectory import generate_grasp_trajectory

    hand, obj = procedural_hand(), builtin_object("tomato_soup_can")
    traj = generate_grasp_trajectory(hand, obj, "tomato_soup_can", num_frames=5, height=48, width=64, seed=0)
    bundle = render_trajectory(traj, RenderConfig(height=48, width=64, style="pam_release"), hand, obj, progress=False)
    assert set(bundle.conditions) == {"hand_keypoints", "depth", "seg_mask", "normal", "tracking"}
    fg = (bundle.conditions["seg_mask"] != 0).any(-1)
    depth = bundle.conditions["depth"]
    assert _rms_to_table(depth[fg], INFERNO) < 1.0 and (depth[~fg] == 0).all()
    engine = render_trajectory(traj, RenderConfig(height=48, width=64), hand, obj, progress=False)
    empty = (engine.conditions["normal"] == 0).all(-1)     # neither table nor meshes
    assert empty.any() and (bundle.conditions["normal"][empty] == [128, 128, 255]).all()
    np.testing.assert_array_equal(bundle.conditions["normal"][~empty], engine.conditions["normal"][~empty])
    assert bundle.conditions["tracking"].shape == (5, 48, 64, 3) and bundle.conditions["tracking"][0].any()
    oak = render_trajectory(traj, RenderConfig(height=48, width=64, style="pam_release_oakink2"), hand, obj,
                            progress=False)
    np.testing.assert_array_equal(oak.conditions["normal"], oak.conditions["depth"])
    bundle.save_sim_folder(tmp_path / "sim")                  # rendered_tracking_{i}.png round-trips
    np.testing.assert_array_equal(ConditionBundle.from_sim_folder(tmp_path / "sim").conditions["tracking"],
                                  bundle.conditions["tracking"])
    with pytest.raises(DataError, match="unknown condition style 'pam'"):
        render_trajectory(traj, RenderConfig(height=48, width=64, style="pam"), hand, obj, progress=False)


def test_release_converter_style_sets_the_depth_colours():
    from data_tools.datasets.runner import clip_options

    assert clip_options(style="pam_release")["depth_colormap"] == "inferno"
    assert clip_options()["depth_colormap"] == "gray"
    assert clip_options(style="pam_release", depth_colormap="turbo")["depth_colormap"] == "turbo"
    with pytest.raises(DataError, match="known styles: engine, pam_release"):
        clip_options(style="released")


def _square(x0: float, z: float = 1.0, half: float = 0.3) -> Part:
    v = np.array([[x0 - half, -half, z], [x0 + half, -half, z], [x0 + half, half, z], [x0 - half, half, z]])
    return Part(v, np.array([[0, 1, 2], [0, 2, 3]]), 1, (200, 200, 200))


def test_release_tracking_points_follow_the_surface():
    """A square facing the camera moves 8 px right per frame: every tracked square moves with it (same colours),
    colours grow red to the right and green downwards, and a square in front hides the points behind it."""
    camera = Camera(fx=80.0, fy=80.0, cx=47.5, cy=31.5, height=64, width=96)
    config = RenderConfig(height=64, width=96, table=False, tracking_stride=9 * 480 // 64, tracking_point_size=5 * 480 // 64)
    shift = 8 / camera.fx                                      # 8 px at depth 1
    parts = [[_square(-0.2 + t * shift)] for t in range(3)]
    frames = [render_parts(p, camera, config) for p in parts]
    video = tracking_video(parts, frames, camera, config)
    assert video[0].any()
    np.testing.assert_array_equal(video[2][:, 16:], video[0][:, :-16])   # moved 16 px in two frames
    ys, xs = np.nonzero(video[0].any(-1))
    left, right = video[0][ys, xs][xs == xs.min()], video[0][ys, xs][xs == xs.max()]
    assert left[:, 0].max() == 0 and right[:, 0].min() == 255          # red: x (min-max over the points)
    top, bottom = video[0][ys, xs][ys == ys.min()], video[0][ys, xs][ys == ys.max()]
    assert top[:, 1].max() == 0 and bottom[:, 1].min() == 255          # green: y down
    assert (video[0][ys, xs][:, 2] == 255).all()                       # blue: nearness (one depth: all near)
    # an occluder in front of the right half in frame 1: no tracked point of the square shows through it
    occluded = [parts[0], [_square(-0.2 + shift), _square(0.25, z=0.5, half=0.1)], parts[2]]
    frames = [render_parts(p, camera, config) for p in occluded]
    hidden = tracking_video(occluded, frames, camera, config)
    front = frames[1].depth == np.float32(0.5)
    assert front.any() and not hidden[1][front].any() and hidden[1][~front].any()


def test_release_motion_feeds_normal_as_grey_or_zero_latent():
    """The released transformer's five streams; style pam_release needs no normal video: the stream gets an
    all-zero video in model range (exactly, not uint8 128), VAE-encoded like any condition."""
    from motion_gen.config import GenerateConfig
    from motion_gen.generator import MotionGenerator, fixed_conditions

    names = "[tracking,normal,depth,seg_mask,hand_keypoints]"
    torch.manual_seed(0)
    gen = MotionGenerator.load("configs/motion/tiny.yaml", [f"model.condition_names={names}", "generate.style=pam_release"])
    assert gen.condition_names == ["tracking", "depth", "seg_mask", "hand_keypoints"]
    assert gen.fixed_conditions == {"normal": "grey"}
    pipe, rng = gen.pipe, np.random.default_rng(0)
    videos = {n: rng.integers(0, 255, (9, 32, 48, 3), dtype=np.uint8) for n in gen.condition_names}

    def encode(conditions, fixed):
        torch.manual_seed(1)
        return pipe.encode_conditions(conditions, 9, 32, 48, fixed=fixed)

    fixed = encode(videos, {"normal": "grey"})
    explicit = encode({**videos, "normal": torch.zeros(9, 3, 32, 48)}, None)
    for name in explicit:
        torch.testing.assert_close(fixed[name], explicit[name], rtol=0, atol=0)
    near_grey = encode({**videos, "normal": np.full((9, 32, 48, 3), 128, np.uint8)}, None)
    assert not torch.equal(near_grey["normal"], fixed["normal"])
    zero = encode(videos, {"normal": "zero_latent"})
    assert zero["normal"].shape == fixed["normal"].shape and not zero["normal"].any()
    first = np.full((32, 48, 3), 100, np.uint8)
    out = gen.generate(first, ConditionBundle(videos, prompt="a hand"), num_inference_steps=1)
    assert out.shape == (9, 32, 48, 3)
    with pytest.raises(DataError, match="fixed_conditions values"):
        fixed_conditions(GenerateConfig(fixed_conditions={"normal": "black"}), ["normal"])
    assert fixed_conditions(GenerateConfig(style="pam_release"), ["depth"]) == {}    # a model without the stream


def test_release_sim2real_style_reaches_render_and_motion():
    from sim2real.run import Sim2Real, Sim2RealConfig

    with pytest.raises(DataError, match="unknown condition style"):
        Sim2Real(Sim2RealConfig(style="pam"))
    engine = Sim2Real(Sim2RealConfig(style="pam_release",
                                     motion_overrides=["model.condition_names=[tracking,normal,depth,seg_mask,hand_keypoints]"]))
    assert engine.motion.fixed_conditions == {"normal": "grey"}
    assert engine.motion.condition_names == ["tracking", "depth", "seg_mask", "hand_keypoints"]
