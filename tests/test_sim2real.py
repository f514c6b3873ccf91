"""The sim2real command end to end with the tiny appearance and motion models (CPU, seconds)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from data_tools.errors import DataError
from data_tools.pose.objects import builtin_object
from data_tools.pose.procedural_hand import procedural_hand
from data_tools.pose.render import RenderConfig, render_trajectory, write_outputs
from data_tools.pose.trajectory import generate_grasp_trajectory, save_trajectory
from data_tools.io.video_io import read_image, read_video, video_info
from sim2real.run import Sim2RealConfig, discover, main, read_first_frames, run, shard_of

pytest.importorskip("appearance_gen.generator")
pytest.importorskip("motion_gen.generator")
torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models do many small ops: one thread is faster and immune to oversubscribed cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("s2r_in")
    hand = procedural_hand()
    traj = generate_grasp_trajectory(hand, builtin_object("gelatin_box"), "gelatin_box", num_frames=9,
                                     height=64, width=96, seed=1, name="grasp_a")
    traj_path = save_trajectory(traj, root / "grasp_a.npz")
    bundle = render_trajectory(traj, RenderConfig(height=64, width=96), hand, progress=False)
    write_outputs(bundle, str(root / "sims" / "seq_1"), fps=15, mp4=False)
    return root, traj_path


def test_trajectory_to_video_with_expected_frames_and_size(inputs, tmp_path):
    _, traj_path = inputs
    out = tmp_path / "out"
    assert main([traj_path, "--out", str(out), "--set", "seeds=[3,4]", "pick=1", "num_frames=9", "height=32",
                 "width=48"]) == 0
    seq = out / "grasp_a"
    info = video_info(str(seq / "video.mp4"))
    assert (info["num_frames"], info["height"], info["width"]) == (9, 32, 48)
    assert read_video(str(seq / "video.mp4")).shape == (9, 32, 48, 3)
    manifest = json.loads((seq / "manifest.json").read_text())
    assert manifest["num_frames"] == 9 and manifest["size"] == [32, 48]
    assert manifest["seeds"]["appearance"] == [3, 4] and manifest["first_frame"]["seed"] == 4
    assert manifest["input"]["kind"] == "trajectory" and "render_s" in manifest["timings"]
    assert {"appearance_s", "motion_s", "total_s"} <= set(manifest["timings"])
    assert manifest["model_configs"]["motion"]["generate"]["num_frames"] == 9
    np.testing.assert_array_equal(read_image(str(seq / "first_frame.png")), read_image(str(seq / "candidates" / "seed_4.png")))
    sheet = read_image(str(seq / "contact_sheet.png"))
    assert sheet.shape[1] > 5 * 48                                        # conditions | first frame | generated
    assert sorted(os.listdir(seq / "conditions")) == ["depth.mp4", "hand_keypoints.mp4", "normal.mp4", "prompt.txt",
                                                      "seg_mask.mp4"]


def test_batch_sharded_resumable_and_chosen_first_frames(inputs, tmp_path):
    root, traj_path = inputs
    out = str(tmp_path / "out")
    config = Sim2RealConfig(seeds=[0])
    sequences = discover([str(root / "sims"), traj_path])
    assert [(s.name, s.kind) for s in sequences] == [("seq_1", "sim"), ("grasp_a", "trajectory")]
    assert [s.name for s in shard_of(sequences, "1/2")[0]] == ["grasp_a"]
    first = run([str(root / "sims"), traj_path], out, config, shard="0/2")
    assert [m["name"] for m in first] == ["seq_1"] and first[0]["input"]["kind"] == "sim"
    stamp = os.path.getmtime(os.path.join(out, "seq_1", "manifest.json"))
    again = run([str(root / "sims"), traj_path], out, config)               # resumes: only grasp_a is left
    assert [m["name"] for m in again] == ["grasp_a"]
    assert os.path.getmtime(os.path.join(out, "seq_1", "manifest.json")) == stamp
    # a chosen first frame from a list is used as is (resized to the generation size)
    picked = np.zeros((64, 96, 3), np.uint8)
    picked[:, :48] = 255
    from data_tools.io.video_io import write_image

    write_image(str(tmp_path / "pick.png"), picked)
    (tmp_path / "chosen.txt").write_text("seq_1 pick.png\n")
    assert read_first_frames(str(tmp_path / "chosen.txt"), sequences) == {"seq_1": str(tmp_path / "pick.png")}
    redo = run([str(root / "sims" / "seq_1")], out, config, first_frames=str(tmp_path / "chosen.txt"), overwrite=True)
    assert redo[0]["first_frame"]["source"] == "file"
    ff = read_image(os.path.join(out, "seq_1", "first_frame.png"))
    assert ff.shape == (32, 48, 3) and ff[:, :20].min() > 200 and ff[:, 28:].max() < 50


def test_sim_folder_starting_above_zero_and_appearance_first_frames_list(inputs, tmp_path):
    root, _ = inputs
    shifted = tmp_path / "shifted" / "seq_7"
    shifted.mkdir(parents=True)
    for entry in os.listdir(root / "sims" / "seq_1"):
        name, index = entry.rsplit("_", 1) if entry.startswith("rendered_") else (entry, None)
        target = f"{name}_{int(index[:-4]) + 5}.png" if index else entry
        os.link(root / "sims" / "seq_1" / entry, shifted / target)
    manifest = run([str(shifted)], str(tmp_path / "out"), Sim2RealConfig(seeds=[0]))[0]
    assert manifest["num_frames"] == 9 and manifest["input"]["kind"] == "sim"
    # appearance_gen.infer's first_frames.txt lists '<name>/seed_<s>.png' relative to its folder
    (tmp_path / "app" / "seq_7").mkdir(parents=True)
    (tmp_path / "app" / "first_frames.txt").write_text("seq_7/seed_3.png\n")
    sequences = discover([str(root / "sims"), str(shifted)])
    assert read_first_frames(str(tmp_path / "app" / "first_frames.txt"), sequences) == {
        "seq_7": str(tmp_path / "app" / "seq_7" / "seed_3.png")}


def test_appearance_stage_writes_candidates_only(inputs, tmp_path):
    root, _ = inputs
    assert run([str(root / "sims" / "seq_1")], str(tmp_path), Sim2RealConfig(seeds=[5, 6]), stage="appearance") == []
    assert sorted(os.listdir(tmp_path / "seq_1" / "candidates")) == ["seed_5.png", "seed_6.png"]
    assert not (tmp_path / "seq_1" / "manifest.json").exists() and not (tmp_path / "seq_1" / "video.mp4").exists()


def test_bad_inputs_name_the_file(tmp_path):
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(DataError, match="notes.md"):
        discover([str(tmp_path / "notes.md")])
    with pytest.raises(DataError, match="shard"):
        shard_of([], "3/2")


def test_demo_end_to_end_and_fallback_without_generators(tmp_path, monkeypatch):
    from sim2real import demo

    args = ["--frames", "9", "--height", "48", "--width", "64", "--object", "tuna_fish_can"]
    assert demo.main(["--out", str(tmp_path / "full")] + args) == 0
    seq = tmp_path / "full" / "sim2real" / "procedural_tuna_fish_can"
    assert read_video(str(seq / "video.mp4")).shape == (9, 32, 48, 3)
    assert json.loads((seq / "manifest.json").read_text())["input"]["kind"] == "sim"
    assert len([f for f in os.listdir(tmp_path / "full" / "sim" / "procedural_tuna_fish_can")
                if f.startswith("rendered_")]) == 5 * 9
    monkeypatch.setitem(__import__("sys").modules, "motion_gen.generator", None)   # import now fails
    assert demo.main(["--out", str(tmp_path / "fallback")] + args) == 0
    assert (tmp_path / "fallback" / "conditions_sheet.png").is_file()
    assert (tmp_path / "fallback" / "sim" / "procedural_tuna_fish_can" / "depth.mp4").is_file()
    assert not (tmp_path / "fallback" / "sim2real").exists()
