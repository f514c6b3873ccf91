"""The dataset command: scenarios as a pure function of (seed, k), trajectory checks, quality control, shards that
run side by side, a killed shard resumed, the merge, the card, the SLURM array script."""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from data_tools.errors import DataError
from data_tools.io.contact_sheet import LABEL_HEIGHT
from data_tools.io.video_io import read_image, resize_frames
from data_tools.metrics.quality import QualityConfig, quality, verdict
from data_tools.pose.objects import builtin_object, primitive
from data_tools.pose.scenarios import (CheckConfig, ScenarioConfig, check_trajectory, draw_scenario, make_scenario,
                                       surface_distance)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOY = "configs/dataset/toy.yaml"
FAST = ["scenarios.num_frames=9", "sim2real_overrides=[num_frames=9]"]   # the toy models' 9-frame clips


def _env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SLURM") and k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**env, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}


def _generate(out, *args, wait=True):
    """A generate run whose output goes to a log file beside ``out`` (a pipe nobody reads could fill and block it);
    the process has ``.log``, the file's path."""
    cmd = [sys.executable, "-m", "sim2real.dataset", "generate", "--config", TOY, "--out", str(out), "--count", "6",
           *args, "--set", *FAST]
    log = f"{out}.{len(glob.glob(f'{out}.*.log'))}.log"
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=f, stderr=subprocess.STDOUT, text=True)
    proc.log = log
    if wait:
        proc.wait(timeout=600)
        assert proc.returncode == 0, open(log).read()[-3000:]
    return proc


def _labels(folder) -> dict:
    arrays = {}
    for name in ("hand_joints.npz", "pose_labels.npz"):
        with np.load(os.path.join(folder, name)) as data:
            arrays.update({f"{name}:{k}": data[k] for k in data.files})
    return arrays


def test_two_shards_side_by_side_one_killed_and_resumed_equal_a_one_shard_run(tmp_path):
    out = tmp_path / "two"
    first, second = _generate(out, "--shard", "0/2", wait=False), _generate(out, "--shard", "1/2", wait=False)
    seq = out / "sequences"
    deadline = time.time() + 300
    while not ((seq / "seq_00001" / "qc.json").exists() and (seq / "seq_00003").exists()):
        assert second.poll() is None and time.time() < deadline, "shard 1 ended before it could be killed"
        time.sleep(0.05)
    second.send_signal(signal.SIGKILL)                      # mid-way: seq_00001 done, seq_00003 begun
    second.wait()
    assert not (seq / "seq_00005" / "qc.json").exists()
    _generate(out, "--shard", "1/2")                        # resume
    assert first.wait(timeout=600) == 0, open(first.log).read()[-3000:]
    subprocess.run([sys.executable, "-m", "sim2real.dataset", "merge", str(out)], cwd=ROOT, env=_env(), check=True,
                   capture_output=True)

    index = json.loads((out / "index.json").read_text())
    names = [f"seq_{k:05d}" for k in range(6)]
    assert index["total"] == 6 and not index["pending"]
    assert sorted(r["name"] for r in index["accepted"] + index["rejected"]) == names
    assert index["accepted"] and all(r["reasons"] for r in index["rejected"])
    for record in index["accepted"] + index["rejected"]:
        assert record["scores"]["iou_hand"] is not None and record["scores"]["detection_rate"] is not None
    for record in index["accepted"]:
        clip = out / "dataset" / record["name"]
        for name in ("video.mp4", "hand_joints.npz", "pose_labels.npz", "seg_mask.mp4", "depth.mp4"):
            assert (clip / name).is_file(), clip / name
        qc = json.loads((seq / record["name"] / "qc.json").read_text())
        assert qc["accepted"] and qc["scores"] == record["scores"]
        assert record["name"] in (out / "dataset" / "filelists" / record["split"] / "video.txt").read_text()
    for record in index["rejected"]:
        assert not (out / "dataset" / record["name"]).exists() and (seq / record["name"] / "video.mp4").is_file()
    left = [os.path.join(d, f) for d, _, files in os.walk(seq) for f in files if f == ".claim" or ".part" in f]
    assert not left                                         # no claims or temporaries of the killed shard
    card = (out / "card.md").read_text()
    assert "accepted" in card and "## Time per video" in card
    for plot in ("counts.png", "qc_scores.png", "pose_checks.png", "accepted_first_frames.png"):
        assert (out / "card" / plot).stat().st_size > 1000 and f"card/{plot}" in card
    # the mosaic shows the accepted first frames themselves: its first cell is the first one, scaled
    mosaic = read_image(out / "card" / "accepted_first_frames.png")
    first_frame = read_image(seq / index["accepted"][0]["name"] / "first_frame.png")
    cell_width = round(first_frame.shape[1] * 120 / first_frame.shape[0])
    cell = resize_frames(first_frame[None], (120, cell_width), mode="resize")[0]
    np.testing.assert_array_equal(mosaic[LABEL_HEIGHT:LABEL_HEIGHT + 120, :cell_width], cell)
    rows = -(-len(index["accepted"]) // 4)                  # one cell per accepted sequence, 4 per row
    assert mosaic.shape[:2] == (rows * (LABEL_HEIGHT + 120 + 2) - 2, 4 * (cell_width + 2) - 2)
    # the first frame was chosen by its score: the best-scoring candidate
    manifest = json.loads((seq / "seq_00000" / "manifest.json").read_text())
    candidates = manifest["first_frame"]["candidate_scores"]
    assert manifest["first_frame"]["seed"] == max(candidates, key=lambda c: c["quality"])["seed"]

    one = tmp_path / "one"
    _generate(one, "--shard", "0/1")
    for name in names:
        a = json.loads((seq / name / "scenario.json").read_text())
        b = json.loads((one / "sequences" / name / "scenario.json").read_text())
        assert a["scenario"] == b["scenario"] and a["checks"] == b["checks"] and a["split"] == b["split"]
        la, lb = _labels(seq / name), _labels(one / "sequences" / name)
        assert la.keys() == lb.keys() and all(np.array_equal(la[k], lb[k]) for k in la)

    # moved elsewhere and merged from another working directory with every video let through: the accepted clips
    # come from the moved folder, and the new thresholds are recorded (a later generate run with them is no
    # different config)
    moved = tmp_path / "elsewhere" / "moved"
    os.makedirs(moved.parent)
    shutil.move(one, moved)
    def merge_moved(*thresholds):
        subprocess.run([sys.executable, "-m", "sim2real.dataset", "merge", str(moved), "--set", *thresholds],
                       cwd=tmp_path, env=_env(), check=True, capture_output=True)
        return json.loads((moved / "index.json").read_text())

    assert not merge_moved("min_hand_iou=1")["accepted"]                # nothing passes: an empty dataset/
    assert "No sequence is accepted" in (moved / "card.md").read_text()
    assert not glob.glob(str(moved / "dataset" / "seq_*")) and not (moved / "dataset" / "filelists" / "train").exists()
    assert not (moved / "dataset" / "prompts.jsonl").exists()
    index = merge_moved("min_hand_iou=0", "min_object_iou=null")        # everything passes
    assert len(index["accepted"]) == 6 and index["thresholds"]["min_hand_iou"] == 0
    assert not (moved / "card" / "rejected_first_frames.png").exists()  # the earlier merge's mosaic is gone
    for name in names:
        clip = moved / "dataset" / name / "video.mp4"
        assert clip.read_bytes() == (moved / "sequences" / name / "video.mp4").read_bytes()
    assert "min_object_iou: null" in (moved / "dataset_config.yaml").read_text()
    # a later run of the original config keeps the recorded thresholds (and says so)
    rerun = _generate(moved, "--shard", "0/1")
    assert "differ from the recorded" in open(rerun.log).read()
    assert len(json.loads((moved / "index.json").read_text())["accepted"]) == 6


def test_scenarios_are_a_pure_function_of_seed_and_k():
    config = ScenarioConfig(hand_sides=["right", "left"], num_frames=9, height=96, width=144,
                            camera_distance=[0.42, 0.52])
    assert draw_scenario(config, 3, 7) == draw_scenario(config, 3, 7)
    assert draw_scenario(config, 3, 7) != draw_scenario(config, 3, 8) != draw_scenario(config, 4, 7)
    traj_a, record_a = make_scenario(config, CheckConfig(max_draws=30), 3, 7, "a")
    traj_b, record_b = make_scenario(config, CheckConfig(max_draws=30), 3, 7, "a")
    assert record_a == record_b and np.array_equal(traj_a.hand_pose, traj_b.hand_pose)
    assert not record_a["checks"]["reasons"] and record_a["scenario"]["attempt"] == len(record_a["rejected_draws"])


def test_surface_distance_and_trajectory_checks_against_hand_computed_cases():
    box = primitive("box", (0.1, 0.2, 0.3))
    points = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.2], [0.08, 0.0, 0.0], [0.04, 0.09, 0.1]])
    assert np.allclose(surface_distance(box, points), [0.05, 0.05, 0.03, 0.01])
    config = ScenarioConfig(num_frames=9, height=96, width=144, camera_distance=[0.45, 0.45])
    traj, record = make_scenario(config, CheckConfig(max_draws=30), 0, 0, "x")
    scenario = record["scenario"]
    from data_tools.pose.procedural_hand import load_hand_model

    hand = load_hand_model(None, side=scenario["hand_side"])
    obj = builtin_object(scenario["object"])
    grasp = scenario["approach_fraction"] + scenario["close_fraction"]
    assert check_trajectory(traj, obj, hand, CheckConfig(), grasp)["reasons"] == []
    sunk = traj.subset(np.arange(traj.num_frames))
    sunk.hand_transl = traj.hand_transl + (traj.object_transl[-1] - traj.hand_transl[-1]) * 0.9  # hand into the object
    assert "penetration" in check_trajectory(sunk, obj, hand, CheckConfig(), grasp)["reasons"]
    far = traj.subset(np.arange(traj.num_frames))
    far.hand_transl = traj.hand_transl + np.array([0.0, 0.0, 0.2])                          # 20 cm above: no touch
    assert "no contact" in check_trajectory(far, obj, hand, CheckConfig(), grasp)["reasons"]
    wide = CheckConfig(frame_margin=0.45)   # only the central 10% of the image counts as inside
    assert "out of frame" in check_trajectory(traj, obj, hand, wide, grasp)["reasons"]


def test_verdict_and_quality_on_hand_computed_scores():
    config = QualityConfig(segmenter="seg.safetensors", min_detection_rate=0.5, max_keypoint_error_px=20,
                           min_hand_iou=0.3)
    good = {"detection_rate": 0.9, "keypoint_error_px": 10.0, "iou_hand": 0.5, "iou_object": 0.1}
    assert verdict(good, config) == (True, [])
    assert verdict({**good, "keypoint_error_px": 25.0}, config) == (False, ["keypoint_error_px 25 > 20"])
    assert verdict({**good, "keypoint_error_px": None}, config)[1] == ["keypoint_error_px not measured"]
    assert quality(good) == pytest.approx((0.9 + 0.5 + 0.1 + 0.5) / 4)
    assert quality(dict.fromkeys(good)) == 0.0
    with pytest.raises(DataError, match="no 'segmenter'"):
        QualityConfig(min_hand_iou=0.3)


def test_a_rerun_with_another_config_is_refused_and_the_slurm_array_runs_one_shard_per_gpu(tmp_path):
    out = tmp_path / "ds"
    env = {**_env(), "SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "1",
           "SLURM_ARRAY_TASK_STEP": "1", "SLURM_ARRAY_TASK_COUNT": "2", "CUDA_VISIBLE_DEVICES": "4,6",
           "SLURM_SUBMIT_DIR": ROOT, "PAM_VENV": "none",
           "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    sbatch = ["bash", "scripts/slurm/generate.sbatch", TOY, str(out), "--count", "5", "--stage", "pose", "--set", *FAST]
    done = subprocess.run(sbatch, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    # array task 1 of 0-1 with two GPUs: shards 2/4 and 3/4, i.e. sequences 2 and 3
    made = sorted(os.listdir(out / "sequences"))
    assert made == ["seq_00002", "seq_00003"], made
    assert "shard 2/4" in done.stderr and "shard 3/4" in done.stderr
    assert (out / "slurm_shards").read_text().split() == ["2", "2"]
    # task 1 resubmitted alone (--array=1): the recorded layout gives the same two shards; one GPU fewer is refused
    alone = {**env, "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "1"}
    again = subprocess.run(sbatch, cwd=ROOT, env=alone, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "shard 2/4" in again.stderr and "shard 3/4" in again.stderr, again.stderr[-3000:]
    assert sorted(os.listdir(out / "sequences")) == made
    fewer = subprocess.run(sbatch, cwd=ROOT, env={**alone, "CUDA_VISIBLE_DEVICES": "4"}, capture_output=True,
                           text=True, timeout=600)
    assert fewer.returncode == 2 and "records 2 shards with 2 GPU(s) per task" in fewer.stderr
    for extra, source in (([], f"{out}/slurm_shards"), (["--shards=2"], "--shards")):   # task 5 of a 2-shard layout
        outside = subprocess.run([*sbatch, *extra], cwd=ROOT, env={**alone, "SLURM_ARRAY_TASK_ID": "5"},
                                 capture_output=True, text=True, timeout=600)
        assert outside.returncode == 2, outside.stderr
        assert f"array task id 5 is outside the 2 shards (0..1) of {source}" in outside.stderr, outside.stderr
    # a first submission that is not 0..n-1 (here --array=1-3) must say --shards
    fresh = [*sbatch[:3], str(tmp_path / "fresh"), *sbatch[4:]]
    refused = subprocess.run(fresh, cwd=ROOT, env={**alone, "SLURM_ARRAY_TASK_MAX": "3",
                                                   "SLURM_ARRAY_TASK_COUNT": "3"},
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "needs --shards n" in refused.stderr and not (tmp_path / "fresh").exists()
    assert json.loads((out / "index.json").read_text())["pending"]
    again = subprocess.run([sys.executable, "-m", "sim2real.dataset", "generate", "--config", TOY, "--out", str(out),
                            "--stage", "pose", "--set", *FAST, "seed=1"], cwd=ROOT, env=_env(), capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 2
    assert "dataset_config.yaml: this dataset was started with another config (differs in ['dataset.seed'])" in again.stderr
    # where converted weights are cached is not what a sequence is: another cache folder resumes
    moved_cache = subprocess.run([sys.executable, "-m", "sim2real.dataset", "generate", "--config", TOY, "--out",
                                  str(out), "--stage", "pose", "--set", *FAST[:1],
                                  f"sim2real_overrides=[num_frames=9,weights.cache={tmp_path / 'elsewhere'}]"],
                                 cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert moved_cache.returncode == 0, moved_cache.stderr[-2000:]
    other_frames = subprocess.run([sys.executable, "-m", "sim2real.dataset", "generate", "--config", TOY, "--out",
                                   str(out), "--stage", "pose", "--set", *FAST[:1], "sim2real_overrides=[num_frames=5]"],
                                  cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert other_frames.returncode == 2 and "(differs in ['sim2real.num_frames'])" in other_frames.stderr


def test_generate_dataset_sh_takes_relative_paths_from_where_it_is_run(tmp_path):
    shutil.copy(os.path.join(ROOT, TOY), tmp_path / "mine.yaml")
    env = {**_env(), "PAM_VENV": "none", "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", os.path.join(ROOT, "scripts/generate_dataset.sh"), "--config", "mine.yaml",
                           "--out=made", "--count", "1", "--stage", "pose", "--set", *FAST], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "made" / "sequences" / "seq_00000" / "scenario.json").is_file()
    assert not os.path.exists(os.path.join(ROOT, "made"))


def test_the_release_recipe_runs_on_a_fake_release_converting_it_once_for_two_shards(tmp_path):
    """configs/dataset/pam_release.yaml on tiny random weights in the release's formats, at a small size: two shards
    started together convert the release once, and every sequence is generated, scored and accepted or rejected."""
    import yaml

    from release_fixtures import make_fake_release

    paths = make_fake_release(tmp_path / "release")
    config = yaml.safe_load(open(os.path.join(ROOT, "configs/dataset/pam_release.yaml")))
    config["sim2real_overrides"] += [
        f"weights.pam={paths['pam']}", f"weights.flux={paths['flux']}", f"weights.cogvideox={paths['cogvideox']}",
        f"weights.cache={tmp_path / 'cache'}", "num_frames=9", "height=32", "width=48", "seeds=[0,1]",
        "appearance_steps=1", "motion_steps=1", "appearance_overrides=[sampling.size=null,model.dtype=float32]"]
    config["scenarios"].update(num_frames=9, height=32, width=48)
    (tmp_path / "release.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "ds"
    procs = [subprocess.Popen([sys.executable, "-m", "sim2real.dataset", "generate", "--config",
                               str(tmp_path / "release.yaml"), "--out", str(out), "--count", "2", "--shard", f"{i}/2"],
                              cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    joined = "".join(logs)
    assert joined.count("(once)") == 2 and joined.count("already converted") == 2   # appearance + motion, once
    index = json.loads((out / "index.json").read_text())
    assert index["total"] == 2 and not index["pending"]
    for record in index["accepted"] + index["rejected"]:
        manifest = json.loads((out / "sequences" / record["name"] / "manifest.json").read_text())
        assert manifest["config"]["style"] == "pam_release" and manifest["size"] == [32, 48]
        assert manifest["prompts"]["motion"] == "A man is in a lab trying to grasp something."
        assert manifest["prompts"]["appearance"].startswith(("A right hand grasps", "A left hand grasps"))
        assert record["scores"]["detection_rate"] is not None


def test_throughput_estimate_of_the_release_recipe_by_hand():
    from sim2real.dataset import load_dataset_config
    from sim2real.throughput import estimate_seconds, videos_per_gpu_hour

    _, sim2real = load_dataset_config(os.path.join(ROOT, "configs/dataset/pam_release.yaml"))
    seconds = estimate_seconds(sim2real)
    motion = 100 * (1 + 12 / 42) + 10                                 # the anchor setting itself: 49x480x720, 50 steps
    appearance = 5 * (30 * 40) / 4096 * 1.10 * (989 / 67) * 4         # 480x640 = 30x40 tokens, fp32, seeds 42..45
    assert seconds["motion_s"] == pytest.approx(motion, abs=0.1)
    assert seconds["appearance_s"] == pytest.approx(appearance, abs=0.1)
    assert videos_per_gpu_hour(seconds) == pytest.approx(3600 / seconds["total_s"], abs=0.1)
    from sim2real.preflight import Report, check_dataset_config    # the preflight prints the same estimate

    report = Report()
    check_dataset_config(report, os.path.join(ROOT, "configs/dataset/pam_release.yaml"))
    [(level, line)] = report.lines
    assert level == "ok" and "estimate (not measured)" in line
    assert f"{videos_per_gpu_hour(seconds)} videos per GPU-hour" in line and "3400 videos" in line
    check_dataset_config(report, os.path.join(ROOT, "configs/dataset/missing.yaml"))
    assert report.lines[-1][0] == "FAIL" and "config file does not exist" in report.lines[-1][1]


def _box_obj(path, centre, size=(0.06, 0.08, 0.12)):
    """A box mesh file whose vertices sit around ``centre`` (a scanned mesh is rarely centred on its origin)."""
    import trimesh

    box = primitive("box", size)
    trimesh.Trimesh(box.vertices + np.asarray(centre), box.faces, process=False).export(path)


def test_mesh_objects_are_posed_where_the_hand_grasps_them(tmp_path):
    """A mesh file off its origin: the grasp is planned on the centred mesh, the trajectory poses the file's own
    vertices, so the object the renderer loads (from the trajectory) is the one the fingers touch; the YCB
    folder name gives the label and the seg class, and the matched files are recorded."""
    from data_tools.pose.procedural_hand import load_hand_model
    from sim2real.dataset import DatasetConfig, config_record
    from sim2real.release import ReleaseConfig

    folder = tmp_path / "ycb" / "061_foam_box" / "google_16k"
    folder.mkdir(parents=True)
    _box_obj(folder / "textured.obj", centre=(0.25, -0.4, 0.3))
    config = ScenarioConfig(objects=[], object_meshes=str(tmp_path / "ycb/*/google_16k/textured.obj"), num_frames=9,
                            height=96, width=144, camera_distance=[0.45, 0.5])
    traj, record = make_scenario(config, CheckConfig(max_draws=30), 0, 2, "m")
    scenario = record["scenario"]
    assert scenario["object_name"] == "foam_box" and "foam box" in scenario["prompt"]
    assert traj.object == str(folder / "textured.obj") and traj.object_class_id == 61
    rendered = traj.resolve_object()                                   # what the renderer poses
    assert np.allclose(rendered.vertices.min(0), [0.22, -0.44, 0.24])  # the file as it is
    hand = load_hand_model(None, side=scenario["hand_side"])
    grasp = scenario["approach_fraction"] + scenario["close_fraction"]
    assert check_trajectory(traj, rendered, hand, CheckConfig(), grasp) == record["checks"]
    assert record["checks"]["contact_fingers"] >= 2
    recorded = config_record(DatasetConfig(scenarios=config), ReleaseConfig())
    assert recorded["object_mesh_files"] == [str(folder / "textured.obj")]


def test_graspxl_files_give_right_hands_their_object_and_contact_at_the_end(tmp_path):
    """A GraspXL sequence (here: a synthesised right-hand grasp written in GraspXL's format, ending when the hand
    has closed) is drawn with a right hand whatever hand_sides says, named after its object entry, and checked for
    contact at its last frame."""
    from data_tools.pose.procedural_hand import load_hand_model

    made = ScenarioConfig(objects=["cracker_box"], num_frames=9, height=96, width=144, camera_distance=[0.45, 0.5])
    traj, record = make_scenario(made, CheckConfig(max_draws=30), 0, 0, "g")
    closed = record["checks"]["grasp_frame"] + 1
    hand = load_hand_model(None, side="right")
    box = builtin_object("cracker_box")
    import trimesh

    trimesh.Trimesh(box.vertices, box.faces, process=False).export(tmp_path / "003_cracker_box.obj")
    data = {"right_hand": {"trans": traj.hand_transl[:closed] + hand.rest_joints()[0],
                           "rot": traj.hand_global_orient[:closed], "pose": traj.hand_pose[:closed]},
            "003_cracker_box": {"trans": traj.object_transl[:closed], "rot": traj.object_rot[:closed]}}
    path = tmp_path / "mano_1.npy"
    np.save(path, np.array(data, dtype=object), allow_pickle=True)
    config = ScenarioConfig(hand_sides=["left"], graspxl=[str(path)], num_frames=9, height=96, width=144,
                            camera_distance=[0.45, 0.5])
    assert record["scenario"]["hand_side"] == "right"
    traj_x, record_x = make_scenario(config, CheckConfig(max_draws=30), 0, 0, "g")
    scenario = record_x["scenario"]
    assert scenario["hand_side"] == "right" and scenario["object_name"] == "cracker_box"
    assert record_x["checks"]["grasp_frame"] == closed - 1 and record_x["checks"]["contact_fingers"] >= 2
    assert np.allclose(traj_x.hand_transl, traj.hand_transl[:closed])


def test_a_sequence_without_a_valid_draw_is_recorded_as_failed_and_the_shard_goes_on(tmp_path):
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "sim2real.dataset", "generate", "--config", TOY, "--out", str(out), "--count", "2",
           "--stage", "pose", "--set", *FAST, "checks.max_draws=1", "checks.min_contact_fingers=5",
           "checks.contact_mm=0"]
    done = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 sequence(s) found no draw passing the trajectory checks" in done.stderr
    index = json.loads((out / "index.json").read_text())
    assert [f["name"] for f in index["failed"]] == ["seq_00000", "seq_00001"] and index["total"] == 2
    assert "no draw out of 1 passed" in index["failed"][0]["reason"] and "2 failed" in (out / "card.md").read_text()
    failed = json.loads((out / "sequences" / "seq_00000" / "failed.json").read_text())
    assert failed["rejected_draws"][0]["reasons"] and failed["rejected_draws"][0]["contact_fingers"] < 5
    again = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "'done': 2" in again.stderr


@pytest.mark.parametrize("override, message", [
    ("splits=[train, val]", "'splits' must map split names to non-negative fractions"),
    ("splits={train: .nan}", "'splits' must map split names"),
    ("scenarios.prompts.template='A {side hand'", "prompts.template is not a valid template"),
    ("scenarios.prompts.template='A {colour} hand'", "names unknown fields ['colour']"),
    ("scenarios.prompts.template='A {side:d} hand'", "prompts.template cannot be filled"),
    ("splits={train: .inf}", "'splits' must map split names"),
    ("scenarios.camera_distance=[.nan, 0.5]", "scenarios.camera_distance must be [low, high]"),
    ("scenarios.palm_gap_mm=[-3, 2]", "scenarios.palm_gap_mm must be [low, high] with 0 <= low"),
    ("scenarios.grip=[0.5, 2]", "scenarios.grip must be [low, high]"),
])
def test_bad_dataset_values_are_one_line_and_exit_2(tmp_path, override, message):
    done = subprocess.run([sys.executable, "-m", "sim2real.dataset", "generate", "--config", TOY, "--out",
                           str(tmp_path / "ds"), "--set", override], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "ds").exists()


def test_split_of_ignores_the_order_splits_are_written_in():
    from sim2real.dataset import split_of

    a, b = {"train": 0.8, "val": 0.1, "test": 0.1}, {"test": 0.1, "val": 0.1, "train": 0.8}
    picks = [split_of(0, k, a) for k in range(400)]
    assert picks == [split_of(0, k, b) for k in range(400)]
    assert 0.72 < picks.count("train") / 400 < 0.88


def test_a_corrupt_record_or_thresholds_are_one_line(tmp_path):
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "sim2real.dataset"]
    subprocess.run([*cmd, "generate", "--config", TOY, "--out", str(out), "--count", "1", "--stage", "pose", "--set",
                    *FAST], cwd=ROOT, env=_env(), check=True, capture_output=True, timeout=600)
    bad = subprocess.run([*cmd, "merge", str(out), "--set", "min_hand_iou=2"], cwd=ROOT, env=_env(),
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "min_hand_iou" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    unknown = subprocess.run([*cmd, "merge", str(out), "--set", "hand_iou=0.2"], cwd=ROOT, env=_env(),
                             capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown QC thresholds ['hand_iou']" in unknown.stderr
    nowhere = subprocess.run([*cmd, "merge", str(tmp_path / "not_made")], cwd=ROOT, env=_env(), capture_output=True,
                             text=True)
    assert nowhere.returncode == 2 and "not a dataset folder" in nowhere.stderr
    assert not (tmp_path / "not_made").exists()                         # no lock file left in a wrong folder
    (out / "dataset_config.yaml").write_text("dataset: [unclosed\n")
    broken = subprocess.run([*cmd, "merge", str(out)], cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert broken.returncode == 2 and "dataset_config.yaml: invalid YAML" in broken.stderr
    assert "Traceback" not in broken.stderr


def test_shard_from_the_slurm_environment(monkeypatch):
    """An array 0..n-1 gives task i shard i/n; any other array (a resubmitted task, a step, a list) must say."""
    from sim2real.dataset import shard_from_environment

    def shard(**env):
        for key in [k for k in os.environ if k.startswith("SLURM")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(f"SLURM_ARRAY_TASK_{key}", str(value))
        return shard_from_environment(None)

    assert shard() is None and shard_from_environment("1/3") == "1/3"
    assert shard(ID=3, MIN=0, MAX=7, STEP=1, COUNT=8) == "3/8"
    for env in (dict(ID=3, MIN=3, MAX=3, STEP=1, COUNT=1), dict(ID=2, MIN=0, MAX=6, STEP=2, COUNT=4),
                dict(ID=5, MIN=0, MAX=5, STEP=1, COUNT=2)):                 # --array=3, 0-6:2, 0,5
        with pytest.raises(DataError, match="give --shard i/n"):
            shard(**env)


def test_merge_lists_what_no_shard_has_begun_and_refuses_malformed_files(tmp_path):
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "sim2real.dataset"]
    subprocess.run([*cmd, "generate", "--config", TOY, "--out", str(out), "--count", "4", "--shard", "1/2", "--stage",
                    "pose", "--set", *FAST], cwd=ROOT, env=_env(), check=True, capture_output=True, timeout=600)
    index = json.loads((out / "index.json").read_text())
    assert index["total"] == 4 and [p["name"] for p in index["pending"]] == [f"seq_{k:05d}" for k in range(4)]
    assert [p["split"] is None for p in index["pending"]] == [True, False, True, False]   # 0 and 2: not begun
    (out / "sequences" / "seq_00001" / "scenario.json").write_text("[1, 2]")
    bad = subprocess.run([*cmd, "merge", str(out)], cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert bad.returncode == 2 and "seq_00001/scenario.json: not a scenario file of this dataset" in bad.stderr


def test_a_crash_at_each_step_resumes_from_that_step(tmp_path, monkeypatch):
    """A crash while sim2real runs keeps the scenario; a crash in quality control keeps the video (sim2real is not
    run again); the rerun finishes the sequence, and the card counts it as the index does."""
    from sim2real import dataset

    out = tmp_path / "ds"
    run = lambda: dataset.generate(TOY, str(out), FAST, count=1, shard="0/1")  # noqa: E731
    folder = out / "sequences" / "seq_00000"

    def crash(*args, **kwargs):
        raise RuntimeError("injected crash")

    monkeypatch.setattr(dataset.Sim2Real, "run_sequence", crash)
    with pytest.raises(RuntimeError, match="injected"):
        run()
    assert (folder / "scenario.json").is_file() and not (folder / "manifest.json").exists()
    scenario = (folder / "scenario.json").stat().st_mtime_ns
    monkeypatch.undo()

    monkeypatch.setattr(dataset.DatasetWorker, "quality_control", crash)
    with pytest.raises(RuntimeError, match="injected"):
        run()
    assert (folder / "manifest.json").is_file() and not (folder / "qc.json").exists()
    video = (folder / "video.mp4").stat().st_mtime_ns
    monkeypatch.undo()

    calls = []
    original = dataset.Sim2Real.run_sequence
    monkeypatch.setattr(dataset.Sim2Real, "run_sequence", lambda *a, **k: calls.append(1) or original(*a, **k))
    assert run() == {"made": 1} and not calls
    assert (folder / "qc.json").is_file() and not (folder / ".claim").exists()
    assert (folder / "scenario.json").stat().st_mtime_ns == scenario and (folder / "video.mp4").stat().st_mtime_ns == video
    index = json.loads((out / "index.json").read_text())
    card = (out / "card.md").read_text()
    assert f"**{len(index['accepted'])} accepted**, {len(index['rejected'])} rejected" in card


def test_a_run_that_fails_its_checks_records_nothing_and_the_recorded_thresholds_judge(tmp_path):
    """Missing release weights: one line, exit 2, and no record left to refuse the corrected rerun. A run whose
    config has other QC thresholds than the recorded ones writes the verdict merge gives (the recorded decide)."""
    cmd = [sys.executable, "-m", "sim2real.dataset", "generate", "--out", str(tmp_path / "release"), "--count", "1"]
    missing = str(tmp_path / "no_weights")
    weights = f"sim2real_overrides=[weights.pam={missing},weights.flux={missing},weights.cogvideox={missing}]"
    done = subprocess.run([*cmd, "--config", "configs/dataset/pam_release.yaml", "--set", weights, "qc.keypoints=false",
                           "qc.min_detection_rate=null", "qc.max_keypoint_error_px=null"], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "the weight folders are incomplete" in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "release").exists()
    (tmp_path / "a_file").write_text("x")
    as_file = subprocess.run([*cmd[:-4], "--config", TOY, "--out", str(tmp_path / "a_file")], cwd=ROOT, env=_env(),
                             capture_output=True, text=True, timeout=300)
    assert as_file.returncode == 2 and "a_file: --out cannot be created: the path is a file" in as_file.stderr

    out = tmp_path / "ds"
    lenient = ["qc.min_hand_iou=0", "qc.min_object_iou=0"]
    subprocess.run([*cmd[:-4], "--config", TOY, "--out", str(out), "--count", "1", "--stage", "pose", "--set", *FAST,
                    *lenient], cwd=ROOT, env=_env(), check=True, capture_output=True, timeout=600)
    strict = subprocess.run([*cmd[:-4], "--config", TOY, "--out", str(out), "--count", "1", "--set", *FAST,
                             "qc.min_hand_iou=1"], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert strict.returncode == 0 and "differ from the recorded" in strict.stderr, strict.stderr[-2000:]
    qc = json.loads((out / "sequences" / "seq_00000" / "qc.json").read_text())
    index = json.loads((out / "index.json").read_text())
    assert qc["accepted"] and qc["thresholds"]["min_hand_iou"] == 0 and index["accepted"][0]["name"] == "seq_00000"
    assert "seq_00000: accepted" in strict.stderr


@pytest.mark.parametrize("rank, world", [("3", "2"), ("0", "0"), ("a", "2"), ("-1", "2")])
def test_rank_and_world_size_from_the_environment_are_checked(monkeypatch, rank, world):
    from data_tools.runtime.sharding import parse_shard

    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", world)
    with pytest.raises(DataError, match=f"RANK={rank} WORLD_SIZE={world}"):
        parse_shard(None)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert parse_shard(None) == (1, 2)
