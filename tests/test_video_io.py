import glob
import os

import numpy as np
import pytest

from data_tools.io import video_io
from data_tools.errors import DataError
from data_tools.io.video_io import (read_image, read_video, resample_indices, resize_frames, video_info, write_image,
                                 write_video)

EXPECTED_SAMPLE_SHAPES = {  # (T, H, W) of the real DexYCB sample videos, as the facts doc lists them
    "val_depth.mp4": (49, 384, 640), "val_hand_keypoints.mp4": (49, 480, 720), "val_seg_mask.mp4": (49, 480, 720),
    "val_normal.mp4": (72, 480, 640), "val_tracking.mp4": (73, 480, 640), "val_video.mp4": (72, 480, 640),
}


def test_read_every_sample_video_and_resample(sample_dir):
    paths = sorted(glob.glob(os.path.join(sample_dir, "*.mp4")))
    assert {os.path.basename(p) for p in paths} == set(EXPECTED_SAMPLE_SHAPES)
    for path in paths:
        raw = read_video(path)
        assert raw.shape == EXPECTED_SAMPLE_SHAPES[os.path.basename(path)] + (3,)
        assert raw.dtype == np.uint8
        full = read_video(path, num_frames=49, size=(480, 720))
        assert full.shape == (49, 480, 720, 3)
        small = read_video(path, num_frames=13, size=(60, 90))
        assert small.shape == (13, 60, 90, 3)
        # the last resampled frame is the source's last frame, and crop keeps the centre
        src_last = raw[-1]
        h, w = src_last.shape[:2]
        centre = src_last[h // 2 - 8: h // 2 + 8, w // 2 - 8: w // 2 + 8].astype(float).mean()
        got = full[-1, 240 - 8: 240 + 8, 360 - 8: 360 + 8].astype(float).mean()
        assert abs(centre - got) < 12


def test_video_info_matches_read(sample_dir):
    info = video_info(os.path.join(sample_dir, "val_depth.mp4"))
    assert (info["num_frames"], info["height"], info["width"]) == (49, 384, 640)
    assert info["fps"] == pytest.approx(15.0)


def test_pyav_fallback_reads_same_frames(sample_dir, monkeypatch):
    path = os.path.join(sample_dir, "val_seg_mask.mp4")
    via_decord = read_video(path)
    monkeypatch.setattr(video_io, "_read_decord", lambda p: (_ for _ in ()).throw(RuntimeError("no decord")))
    via_av = read_video(path)
    assert via_av.shape == via_decord.shape
    assert np.abs(via_av.astype(int) - via_decord.astype(int)).mean() < 2.0


def test_resample_indices_uniform():
    assert resample_indices(72, 49)[[0, -1]].tolist() == [0, 71]
    assert resample_indices(5, 3).tolist() == [0, 2, 4]
    assert resample_indices(2, 4).tolist() == [0, 0, 1, 1]
    assert resample_indices(10, 1).tolist() == [0]


def test_resize_policies_hand_computed():
    img = np.zeros((2, 4, 3), np.uint8)
    img[:, :2] = 10   # left half
    img[:, 2:] = 200  # right half
    padded = resize_frames(img, (4, 4), mode="pad", interpolation="nearest")
    assert padded.shape == (4, 4, 3)
    assert (padded[0] == 0).all() and (padded[3] == 0).all()  # black bars top and bottom
    assert padded[1, 0, 0] == 10 and padded[2, 3, 0] == 200
    cropped = resize_frames(img, (2, 2), mode="crop", interpolation="nearest")
    assert cropped[:, 0, 0].tolist() == [10, 10] and cropped[:, 1, 0].tolist() == [200, 200]  # centre columns 1..2
    stretched = resize_frames(img, (4, 8), mode="resize", interpolation="nearest")
    assert (stretched[:, :4, 0] == 10).all() and (stretched[:, 4:, 0] == 200).all()
    with pytest.raises(ValueError, match="unknown resize mode"):
        resize_frames(img, (4, 4), mode="stretch")


def test_write_read_round_trip(tmp_path):
    frames = np.zeros((5, 32, 48, 3), np.uint8)
    for t in range(5):
        frames[t, :, : 8 * (t + 1)] = (255, 0, 0)
    path = write_video(tmp_path / "clip.mp4", frames, fps=10)
    back = read_video(path)
    assert back.shape == frames.shape
    assert np.abs(back.astype(int) - frames.astype(int)).mean() < 6
    assert (back[4, 16, 4] > 200).sum() == 1 and back[4, 16, 4, 0] > 200  # red stays red
    assert oct(os.stat(path).st_mode & 0o777) != oct(0o600)


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "out.mp4"
    good = np.zeros((3, 16, 16, 3), np.uint8)
    write_video(target, good)
    before = target.read_bytes()

    import imageio.v2 as imageio
    real_get_writer = imageio.get_writer

    def failing_writer(*args, **kwargs):
        writer = real_get_writer(*args, **kwargs)
        calls = {"n": 0}
        real_append = writer.append_data

        def append(frame):
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("encoder died")
            real_append(frame)
        writer.append_data = append
        return writer

    monkeypatch.setattr(imageio, "get_writer", failing_writer)
    with pytest.raises(RuntimeError, match="encoder died"):
        write_video(target, np.full((6, 16, 16, 3), 255, np.uint8))
    assert target.read_bytes() == before  # the earlier output is untouched
    assert sorted(os.listdir(tmp_path)) == ["out.mp4"]  # and no temporary file is left
    with pytest.raises(RuntimeError):
        write_video(tmp_path / "new.mp4", np.full((6, 16, 16, 3), 255, np.uint8))
    assert not (tmp_path / "new.mp4").exists()


def test_bad_inputs_name_the_file(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(DataError, match="nope.mp4: video does not exist"):
        read_video(missing)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    with pytest.raises(DataError, match=r"corrupt.mp4: cannot decode video"):
        read_video(corrupt)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty.mp4"):
        read_video(empty)
    with pytest.raises(DataError, match=r"grey.mp4: cannot write video: expected \(T, H, W, 3\)"):
        write_video(tmp_path / "grey.mp4", np.zeros((2, 8, 8, 4), np.uint8))
    assert not (tmp_path / "grey.mp4").exists()
    bad_img = tmp_path / "bad.png"
    bad_img.write_bytes(b"not a png")
    with pytest.raises(DataError, match="bad.png: cannot decode image"):
        read_image(bad_img)


def test_image_round_trip_and_16bit(tmp_path):
    rgb = np.zeros((8, 10, 3), np.uint8)
    rgb[..., 0] = 200
    write_image(tmp_path / "a.png", rgb)
    assert (read_image(tmp_path / "a.png") == rgb).all()
    depth = (np.arange(80, dtype=np.uint16).reshape(8, 10) * 700)
    write_image(tmp_path / "d.png", depth)
    back = read_image(tmp_path / "d.png", grayscale=True)
    assert back.dtype == np.uint16 and (back == depth).all()
    with pytest.raises(DataError, match="a.png: expected a single-channel image"):
        read_image(tmp_path / "a.png", grayscale=True)
