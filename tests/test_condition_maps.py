import numpy as np
import pytest

from data_tools.maps.geometry_maps import foreground_from_seg, normalize_depth, normals_to_rgb, rgb_to_normals
from data_tools.maps.keypoints import BONES, draw_hand_keypoints, draw_hand_keypoints_video
from data_tools.maps.segmentation import (ADE20K_PALETTE, classes_from_colors, colorize_classes, colorize_dexycb_labels,
                                     dexycb_labels_to_classes)
from data_tools.io.video_io import read_video, write_video


def straight_hand():
    """Wrist at (100, 150); each finger a vertical line of 4 joints 20 px apart going up, fingers 40 px apart."""
    joints = np.zeros((21, 2))
    joints[0] = (100, 150)
    for f in range(5):
        for k in range(4):
            joints[1 + 4 * f + k] = (20 + 40 * f, 110 - 20 * k)
    return joints


def test_bone_table_is_thumb_first():
    assert BONES[:4] == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert BONES[4] == (0, 5) and BONES[19] == (19, 20) and len(BONES) == 20


def test_keypoint_colours_at_joints_and_bones():
    img = draw_hand_keypoints(straight_hand(), 200, 220)
    assert img.shape == (200, 220, 3) and img.dtype == np.uint8
    # bone 5 = index finger 5->6 from (60, 110) to (60, 90); colour base[1] + 35 * 1 = RGB (35, 91, 290->255)
    assert tuple(img[100, 60]) == (35, 91, 255)
    # bone 1 = thumb 1->2 along x=20, half-width 6: 5 px off the axis is still thumb-coloured, RGB (174, 88, 255)
    assert tuple(img[100, 25]) == (174, 88, 255)
    # ...but 5 px off an index bone (half-width 3) is background
    assert tuple(img[100, 65]) == (0, 0, 0)
    # joint 8 (index tip at (60, 50)) sits at the end of bone 7; 3 px to its side only the joint circle
    # covers it: joint colour base[8 // 4 = 2] + 35 * 0 = RGB (43, 140, 237)
    assert tuple(img[50, 63]) == (43, 140, 237)
    # joint 20 uses the 6th base colour: RGB (70, 17, 145)
    assert tuple(img[50, 183]) == (70, 17, 145)
    # far from the hand: black
    assert tuple(img[190, 5]) == (0, 0, 0)


def test_keypoint_colours_follow_the_reference_sample():
    """The reference's own DexYCB keypoint video is blue-dominant, as the table read as RGB draws it."""
    from data_tools.io.video_io import read_video
    from data_tools.io.cli import shared_samples_dir

    ours = draw_hand_keypoints(straight_hand(), 200, 220).reshape(-1, 3).astype(int)
    lit = ours[ours.max(1) > 60]
    assert (lit[:, 2] > lit[:, 0] + 30).mean() > 0.5 > (lit[:, 0] > lit[:, 2] + 30).mean()
    if shared_samples_dir() is None:
        pytest.skip("../shared/samples/dexycb_val is absent")
    sample = read_video(f"{shared_samples_dir()}/val_hand_keypoints.mp4").reshape(-1, 3).astype(int)
    lit = sample[sample.max(1) > 60]
    assert (lit[:, 2] > lit[:, 0] + 30).mean() > 0.5 > (lit[:, 0] > lit[:, 2] + 30).mean()   # measured 0.60 / 0.06


def test_bone_order_reverses_with_depth():
    joints = straight_hand()
    joints[5:9, 0] = 24  # index finger moved onto the thumb: bones overlap
    forward = draw_hand_keypoints(joints, 200, 220, joints_3d=np.c_[joints, np.full(21, 1.0)])
    joints_3d = np.c_[joints, np.linspace(0.5, 1.0, 21)]  # wrist nearer than joint 20 -> reversed
    reverse = draw_hand_keypoints(joints, 200, 220, joints_3d=joints_3d)
    # the pixel on both bones shows the one drawn last: index (drawn after thumb) vs thumb (drawn after index)
    assert tuple(forward[100, 24]) == (35, 91, 255)
    assert tuple(reverse[100, 24]) == (174, 88, 255)


def test_missing_joints_give_black_frame():
    joints = straight_hand()
    joints[7] = (-1, -1)
    assert not draw_hand_keypoints(joints, 64, 64).any()
    video = draw_hand_keypoints_video(np.stack([straight_hand(), joints]), 200, 220)
    assert video[0].any() and not video[1].any()
    with pytest.raises(ValueError, match="expected 21 joints"):
        draw_hand_keypoints(np.zeros((20, 2)), 8, 8)


def test_seg_colouring_round_trip(tmp_path):
    labels = np.zeros((4, 48, 64), np.uint8)
    labels[:, 10:30, 10:30] = 255   # hand
    labels[:, 20:40, 35:60] = 3     # YCB object 3
    classes = dexycb_labels_to_classes(labels)
    assert classes[0, 0, 0] == 150 and classes[0, 15, 15] == 149 and classes[0, 25, 40] == 3
    colours = colorize_dexycb_labels(labels)
    assert tuple(colours[0, 0, 0]) == (0, 0, 0)
    assert tuple(colours[0, 15, 15]) == (92, 0, 255)
    assert tuple(colours[0, 25, 40]) == (80, 50, 50)
    assert (classes_from_colors(colours) == classes).all()
    # through lossy h264, restricted to the classes that can occur: almost every pixel comes back
    write_video(tmp_path / "seg.mp4", colours)
    decoded = classes_from_colors(read_video(tmp_path / "seg.mp4"), candidates=[3, 149, 150])
    assert (decoded == classes).mean() > 0.98
    with pytest.raises(ValueError, match="class ids must lie"):
        colorize_classes(np.array([[151]]))
    assert ADE20K_PALETTE.shape == (151, 3)


def test_depth_normalisation_masks_background():
    depth = np.array([[[1.0, 2.0], [3.0, 0.0]]])  # 0 = invalid sensor pixel
    mask = np.array([[[True, True], [False, True]]])
    out = normalize_depth(depth, mask=mask)
    assert out.shape == (1, 2, 2, 3)
    assert out[0, 0, 0, 0] == 255 and out[0, 0, 1, 0] == 1   # nearest bright, farthest dim but not black
    assert out[0, 1, 0, 0] == 0 and out[0, 1, 1, 0] == 0     # masked and invalid -> black
    far_bright = normalize_depth(depth, mask=mask, near_is_bright=False)
    assert far_bright[0, 0, 1, 0] == 255 and far_bright[0, 0, 0, 0] == 1
    turbo = normalize_depth(depth, mask=mask, colormap="turbo")
    assert turbo[0, 1, 0].tolist() == [0, 0, 0] and turbo[0, 0, 0].any()
    inferno = normalize_depth(depth, mask=mask, colormap="inferno")
    assert inferno[0, 1, 0].tolist() == [0, 0, 0]
    assert inferno[0, 0, 0, 0] > 200 and inferno[0, 0, 0, 2] < 200  # inferno's bright end is pale yellow
    with pytest.raises(ValueError, match="unknown depth colormap"):
        normalize_depth(depth, colormap="jet")


def test_normals_rgb_round_trip():
    n = np.array([[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -2.0, 0.0]]])
    rgb = normals_to_rgb(n)
    assert rgb[0, 0].tolist() == [128, 128, 255] and rgb[0, 1].tolist() == [255, 128, 128]
    assert rgb[0, 2].tolist() == [128, 0, 128]  # normalised first
    assert np.allclose(rgb_to_normals(rgb)[0, 1], [1, 0, 0], atol=0.01)
    assert normals_to_rgb(n, mask=np.array([[True, False, True]]))[0, 1].tolist() == [0, 0, 0]
    assert foreground_from_seg(np.array([[[0, 0, 0], [92, 0, 255]]])).tolist() == [[False, True]]
