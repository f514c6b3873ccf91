"""Normals estimated from relative depth when a dataset has no normal maps (appearance_gen.conditions)."""
from __future__ import annotations

import numpy as np
import pytest

from appearance_gen.conditions import normals_from_depth, split_conditions
from data_tools.errors import DataError
from data_tools.maps.geometry_maps import normals_to_rgb, rgb_to_normals
from data_tools.datasets.hoi_dataset import write_split
from data_tools.maps.bundle import ConditionBundle


def test_flat_depth_faces_the_camera_and_background_stays_black():
    depth = np.full((1, 8, 12, 3), 200, np.uint8)
    depth[:, :, :3] = 0  # no depth on the left
    out = normals_from_depth(depth, blur=0)
    assert out.shape == depth.shape and out.dtype == np.uint8
    assert (out[0, :, :3] == 0).all()
    assert (out[0, :, 4:] == normals_to_rgb(np.array([0.0, 0.0, 1.0]))).all()


def test_ramps_tilt_normals_the_right_way():
    w = 64
    # distance grows to the right (brightness falls): the surface turns towards +x (OpenGL: x right, y up, z to camera)
    ramp = (250 - 3 * np.arange(w))[None, :].repeat(32, 0)  # exact integer steps
    right = normals_from_depth(np.repeat(ramp[None, ..., None], 3, -1).astype(np.uint8), blur=0)
    n = rgb_to_normals(right[0, 16, 32])
    slope = 3 / 255 * w  # distance change over one image width (strength 1)
    assert n[0] > 0.5 and abs(n[1]) < 0.05
    assert np.isclose(n[0] / n[2], slope, rtol=0.03)
    # distance grows downwards: the surface turns towards -y (up is +y)
    down = normals_from_depth(np.repeat(ramp.T[None, :32, :32, None], 3, -1).astype(np.uint8), blur=0)
    n = rgb_to_normals(down[0, 16, 16])
    assert abs(n[0]) < 0.05 and np.isclose(n[1] / n[2], -3 / 255 * 32, rtol=0.05)  # slopes scale with the width


def test_split_conditions_auto_file_depth(tmp_path):
    rng = np.random.default_rng(0)
    ConditionBundle({m: rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8) for m in ("depth", "seg_mask")},
                    video=rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)).save_video_folder(tmp_path / "c")
    write_split(tmp_path, "val", ["c"], ["p"], columns=("video", "depth", "seg_mask"))
    names = ["depth", "normal", "seg_mask"]
    assert split_conditions(str(tmp_path), "val", names, "auto") == (["depth", "seg_mask"], True)
    assert split_conditions(str(tmp_path), "val", ["normal"], "depth") == (["depth"], True)
    assert split_conditions(str(tmp_path), "val", names, "file") == (names, False)
    assert split_conditions(str(tmp_path), "val", ["depth"], "auto") == (["depth"], False)
    with pytest.raises(DataError, match="normal_source"):
        split_conditions(str(tmp_path), "val", names, "guess")
