import dataclasses
import os

import numpy as np
import pytest

from data_tools.maps.bundle import ConditionBundle, from_model_range, to_model_range
from data_tools.io.config import load_config, save_config
from data_tools.io.contact_sheet import make_contact_sheet, write_contact_sheet
from data_tools.errors import DataError
from data_tools.io.filelists import (read_columns, read_filelist, read_prompts_jsonl, write_filelist,
                                  write_prompts_jsonl)
from data_tools.io.video_io import read_image, read_video


def test_filelists_and_prompts_round_trip(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("v1.mp4", "v2.mp4", "d1.mp4", "d2.mp4"):
        (tmp_path / "a" / name).write_bytes(b"x")
    write_filelist(tmp_path / "videos.txt", ["a/v1.mp4", "a/v2.mp4"])
    write_filelist(tmp_path / "depth.txt", ["a/d1.mp4", "a/d2.mp4"])
    assert read_filelist(tmp_path / "videos.txt") == ["a/v1.mp4", "a/v2.mp4"]
    cols = read_columns({"video": tmp_path / "videos.txt", "depth": tmp_path / "depth.txt"})
    assert cols["depth"] == ["a/d1.mp4", "a/d2.mp4"]
    write_prompts_jsonl(tmp_path / "p.jsonl", [{"video": "a/v1.mp4", "prompt": "a hand grasps a mug"}])
    assert read_prompts_jsonl(tmp_path / "p.jsonl")[0]["prompt"] == "a hand grasps a mug"


def test_filelist_errors_name_file_and_line(tmp_path):
    (tmp_path / "v1.mp4").write_bytes(b"x")
    write_filelist(tmp_path / "videos.txt", ["v1.mp4", "v_missing.mp4"])
    write_filelist(tmp_path / "short.txt", ["v1.mp4"])
    with pytest.raises(DataError, match=r"short.txt: column 'depth' has 1 lines but column 'video'"):
        read_columns({"video": tmp_path / "videos.txt", "depth": tmp_path / "short.txt"})
    with pytest.raises(DataError, match=r"videos.txt: line 2: 'v_missing.mp4' does not exist"):
        read_columns({"video": tmp_path / "videos.txt"})
    (tmp_path / "bad.jsonl").write_text('{"video": "v1.mp4", "prompt": "x"}\n{oops\n')
    with pytest.raises(DataError, match=r"bad.jsonl: line 2 is not valid JSON"):
        read_prompts_jsonl(tmp_path / "bad.jsonl")
    with pytest.raises(DataError, match="filelist does not exist"):
        read_filelist(tmp_path / "none.txt")


def _toy_bundle(t=3, h=16, w=24):
    rng = np.random.default_rng(0)
    conds = {name: rng.integers(0, 255, (t, h, w, 3), dtype=np.uint8) for name in ("depth", "seg_mask")}
    return ConditionBundle(conds, prompt="a hand", first_frame=np.zeros((h, w, 3), np.uint8), name="toy",
                           extras={"rgb": np.zeros((t, h, w, 3), np.uint8)})


def test_bundle_validation_errors():
    with pytest.raises(DataError, match="unknown condition name 'flow'"):
        ConditionBundle({"flow": np.zeros((2, 4, 4, 3), np.uint8)})
    with pytest.raises(DataError, match=r"'seg_mask' has \(T, H, W\) \(3, 4, 4\) but 'depth' has \(2, 4, 4\)"):
        ConditionBundle({"depth": np.zeros((2, 4, 4, 3), np.uint8), "seg_mask": np.zeros((3, 4, 4, 3), np.uint8)})
    with pytest.raises(DataError, match="must be \\(T, H, W, 3\\) uint8"):
        ConditionBundle({"depth": np.zeros((2, 4, 4, 4), np.uint8)})
    with pytest.raises(DataError, match="lacks conditions"):
        _toy_bundle().select(["hand_keypoints"])


def test_sim_folder_round_trip(tmp_path):
    bundle = _toy_bundle()
    bundle.save_sim_folder(tmp_path / "sim")
    assert (tmp_path / "sim" / "rendered_seg_mask_2.png").exists()
    assert (tmp_path / "sim" / "rendered_rgb_0.png").exists()
    back = ConditionBundle.from_sim_folder(tmp_path / "sim")
    assert set(back.conditions) == {"depth", "seg_mask"} and back.prompt == "a hand"
    assert all((back.conditions[k] == bundle.conditions[k]).all() for k in bundle.conditions)  # PNG is lossless
    assert back.extras["rgb"].shape == (3, 16, 24, 3)
    os.remove(tmp_path / "sim" / "rendered_depth_1.png")
    with pytest.raises(DataError, match="rendered_depth_\\*.png frames are not contiguous from 0 \\(missing index 1\\)"):
        ConditionBundle.from_sim_folder(tmp_path / "sim")


def test_video_folder_from_real_sample(sample_dir, tmp_path):
    with pytest.raises(DataError, match="pass num_frames/size"):
        ConditionBundle.from_video_folder(sample_dir)  # the sample's videos have different sizes
    bundle = ConditionBundle.from_video_folder(sample_dir, names=["hand_keypoints", "depth", "seg_mask"],
                                               num_frames=13, size=(60, 90))
    assert bundle.shape == (13, 60, 90) and bundle.first_frame.shape == (60, 90, 3)
    assert bundle.video.shape == (13, 60, 90, 3)
    # label maps are resampled with nearest (no blended colours at edges), smooth maps with area
    seg_path = os.path.join(sample_dir, "val_seg_mask.mp4")
    nearest = read_video(seg_path, 13, (60, 90), interpolation="nearest")
    assert (bundle.conditions["seg_mask"] == nearest).all()
    assert not (read_video(seg_path, 13, (60, 90), interpolation="area") == nearest).all()
    bundle.save_video_folder(tmp_path / "out")
    again = ConditionBundle.from_video_folder(tmp_path / "out")
    assert again.shape == (13, 60, 90) and set(again.conditions) == {"hand_keypoints", "depth", "seg_mask"}
    os.remove(tmp_path / "out" / "video.mp4")
    with pytest.raises(DataError, match="out: no ground-truth video"):
        ConditionBundle.from_video_folder(tmp_path / "out", require_video=True)
    with pytest.raises(DataError, match="no video for condition 'normal'"):
        ConditionBundle.from_video_folder(tmp_path / "out", names=["normal"])


def test_model_range_round_trip():
    frames = np.arange(2 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 4, 5, 3)
    tensor = to_model_range(frames)
    assert tuple(tensor.shape) == (2, 3, 4, 5) and float(tensor.min()) == -1.0
    assert (from_model_range(tensor) == frames).all()


def test_contact_sheet_layout(tmp_path):
    bundle = _toy_bundle(t=8, h=20, w=30)
    sheet = make_contact_sheet({"depth": bundle.conditions["depth"], "first": bundle.first_frame},
                               num_rows=3, cell_height=40, gap=2)
    # two columns of 60 px (+2 px gap); label 22 px + 3 rows of (2 + 40) px
    assert sheet.shape == (22 + 3 * 42, 60 + 2 + 60, 3)
    write_contact_sheet(tmp_path / "s.png", {"depth": bundle.conditions["depth"]})
    assert read_image(tmp_path / "s.png").shape[0] > 0


@dataclasses.dataclass
class _Optim:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)


@dataclasses.dataclass
class _Run:
    name: str
    steps: int = 10
    optim: _Optim = dataclasses.field(default_factory=_Optim)
    conditions: list[str] = dataclasses.field(default_factory=list)


def test_config_yaml_overrides_and_errors(tmp_path):
    (tmp_path / "run.yaml").write_text("name: tiny\noptim:\n  lr: 0.001\nconditions: [depth]\n")
    cfg = load_config(_Run, tmp_path / "run.yaml", ["steps=3", "optim.betas=[0.8, 0.9]"])
    assert cfg == _Run(name="tiny", steps=3, optim=_Optim(lr=0.001, betas=(0.8, 0.9)), conditions=["depth"])
    save_config(cfg, tmp_path / "saved.yaml")
    assert load_config(_Run, tmp_path / "saved.yaml") == cfg
    (tmp_path / "bad.yaml").write_text("name: x\noptim:\n  lrr: 1\n")
    with pytest.raises(DataError, match=r"bad.yaml: unknown config key\(s\) \['optim.lrr'\]"):
        load_config(_Run, tmp_path / "bad.yaml")
    with pytest.raises(DataError, match="'steps' must be an integer"):
        load_config(_Run, tmp_path / "run.yaml", ["steps=2.5"])
    with pytest.raises(DataError, match="config file does not exist"):
        load_config(_Run, tmp_path / "nope.yaml")


def test_no_shipped_config_points_into_shared():
    """../shared exists only in the development checkout: a shipped config that reads from it breaks real runs."""
    import glob

    import yaml

    def strings(node):
        if isinstance(node, dict):
            return [s for v in node.values() for s in strings(v)]
        if isinstance(node, list):
            return [s for v in node for s in strings(v)]
        return [node] if isinstance(node, str) else []

    configs = glob.glob("configs/**/*.yaml", recursive=True)
    assert len(configs) > 5
    offenders = {p: s for p in configs for s in strings(yaml.safe_load(open(p))) if "shared/" in s}
    assert not offenders
