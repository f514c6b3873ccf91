"""Evaluation end to end on a tiny processed dataset: sharded, resumable generation, metrics, results table."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from data_tools.errors import DataError
from data_tools.metrics.evaluation import (Evaluator, MetricsConfig, results_markdown, run_from_filelists)
from data_tools.io.filelists import write_filelist
from data_tools.datasets.hoi_dataset import write_split
from data_tools.maps.keypoints import draw_hand_keypoints_video
from data_tools.metrics.fvd import FVDConfig
from data_tools.maps.hand_joints import HandKeypoints
from data_tools.metrics.standins import write_standins
from data_tools.maps.segmentation import colorize_classes
from data_tools.io.video_io import read_video, write_video
from data_tools.runtime.sharding import parse_shard
from motion_gen.evaluate import EvalConfig, RunConfig, compute_metrics, generate_run
from data_tools.io.config import load_config

T, H, W = 9, 32, 48
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "eval", "tiny.yaml")


class FakeGenerator:
    """MotionGenerator stand-in (the contract's interface): the first frame, brightened by the seed."""

    condition_names = ["hand_keypoints", "depth", "seg_mask"]
    num_frames, height, width = T, H, W

    def __init__(self):
        self.calls = []

    def generate(self, first_frame, bundle, seed=0, num_inference_steps=None, guidance_scale=None):
        assert set(bundle.conditions) == set(self.condition_names) and bundle.shape == (T, H, W)
        self.calls.append(bundle.name)
        return np.repeat(np.clip(first_frame.astype(int) + seed, 0, 255).astype(np.uint8)[None], T, axis=0)


def _make_dataset(root, n=3):
    rng = np.random.default_rng(0)
    clips = []
    for k in range(n):
        clip = f"s{k}/seq/cam"
        joints = rng.uniform(8, 40, size=(T, 21, 2))
        video = rng.integers(0, 255, size=(T, H, W, 3), dtype=np.uint8)
        seg = np.full((T, H, W), 150)
        seg[:, 8:20, 10:30] = 149
        maps = {"video": video, "hand_keypoints": draw_hand_keypoints_video(joints, H, W),
                "depth": np.full((T, H, W, 3), 90, np.uint8), "seg_mask": colorize_classes(seg)}
        for name, frames in maps.items():
            write_video(root / clip / f"{name}.mp4", frames)
        HandKeypoints(joints, rng.normal(0, 50, size=(T, 21, 3))).save(root / clip / "hand_joints.npz")
        clips.append(clip)
    write_split(root, "test", clips, [f"clip {k}" for k in range(n)])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("eval")
    _make_dataset(tmp / "data")
    weights = write_standins(tmp / "weights")
    overrides = [f"dataset.root={tmp / 'data'}", f"output={tmp / 'out'}", f"metrics.fvd.detector_path={weights['fvd']}",
                 f"metrics.lpips.weights=[{weights['lpips']}]", f"metrics.keypoints.estimator.path={weights['estimator']}",
                 "metrics.fvd.num_frames=8"]
    return tmp, weights, overrides


def test_sharded_resumable_generation_and_metrics(setup):
    tmp, _, overrides = setup
    config = load_config(EvalConfig, CONFIG, overrides)
    gen = FakeGenerator()
    run = RunConfig(label="all", seed=3)
    run_dir = generate_run(config, run, parse_shard("1/2"), generator=gen)
    assert len(gen.calls) == 1 and os.path.isfile(os.path.join(run_dir, "videos", "00001.mp4"))
    # temporaries left by a killed shard 0: its resumed run removes those of its own samples only
    videos = os.path.join(run_dir, "videos")
    for name in (".00000.k1.part.mp4", ".00002.k2.part.json", ".00001.k3.part.mp4", ".00000.k4.part.json"):
        open(os.path.join(videos, name), "w").write("partial")
        if name != ".00000.k4.part.json":   # k4: fresh, as a duplicate worker's file being written now
            os.utime(os.path.join(videos, name), (0, 0))
    generate_run(config, run, parse_shard("0/2"), generator=gen)
    assert sorted(n for n in os.listdir(videos) if ".part" in n) == [".00000.k4.part.json", ".00001.k3.part.mp4"]
    assert gen.calls == ["s1/seq/cam", "s0/seq/cam", "s2/seq/cam"]
    generate_run(config, run, parse_shard("0/1"), generator=gen)   # resumed: nothing left to do
    assert len(gen.calls) == 3
    record = json.load(open(os.path.join(run_dir, "videos", "00002.json")))
    assert record["name"] == "s2/seq/cam" and record["conditions"] == FakeGenerator.condition_names
    generated = read_video(os.path.join(run_dir, record["generated"]))
    assert generated.shape == (T, H, W, 3)

    # a second ablation row: keypoints only, the other conditions filled with black videos
    generate_run(config, RunConfig(label="kp", conditions=["hand_keypoints"], fill_missing=True), generator=gen)
    rows = compute_metrics(config)
    assert [r["label"] for r in rows] == ["kp", "all"]   # ablation order: fewer conditions first
    for row in rows:
        assert row["num_samples"] == 3 and row["num_real"] == 3 and row["num_generated"] == 3
        assert np.isfinite([row[k] for k in ("psnr", "ssim", "lpips", "fvd", "mpjpe_2d_px", "mpjpe_3d_mm")]).all()
        assert all(s["keypoint_reference"] == "file" for s in row["samples"])
    table = open(tmp / "out" / "results.md").read()
    assert "| Run | hand_keypoints | depth | seg_mask | FVD ↓ | PSNR ↑" in table and "| kp | ✓ |  |  |" in table
    saved = json.load(open(tmp / "out" / "results.json"))
    assert saved["runs"][1]["label"] == "all" and len(saved["runs"][1]["samples"]) == 3


def test_metric_values_match_direct_computation(setup):
    """Per-frame metrics of a run equal those computed directly on the aligned videos."""
    tmp, weights, _ = setup
    ref = tmp / "ref.mp4"
    gen = tmp / "gen.mp4"
    rng = np.random.default_rng(5)
    reference = rng.integers(0, 255, size=(T, H, W, 3), dtype=np.uint8)
    write_video(ref, reference)
    write_video(gen, np.clip(reference.astype(int) + 20, 0, 255).astype(np.uint8))
    write_filelist(tmp / "gen.txt", [str(gen), "gen.mp4"])
    write_filelist(tmp / "refs" / "ref.txt", [str(ref), "../ref.mp4"])  # relative to its own folder
    run = run_from_filelists(str(tmp / "gen.txt"), str(tmp / "refs" / "ref.txt"), label="pair")
    cfg = MetricsConfig(metrics=["psnr", "ssim"])
    row = Evaluator(cfg).evaluate(run)
    from data_tools.metrics.image_metrics import psnr, ssim
    g, r = read_video(gen), read_video(ref)
    assert row["psnr"] == pytest.approx(float(np.mean(psnr(g, r))))
    assert row["psnr_after_first"] == pytest.approx(float(np.mean(psnr(g[1:], r[1:]))))
    assert row["ssim"] == pytest.approx(float(np.mean(ssim(g, r))))
    assert "fvd" not in row and "lpips" not in row

    # FVD: a second run over the same references reuses the real-video statistics
    evaluator = Evaluator(MetricsConfig(metrics=["fvd"], fvd=FVDConfig(detector_path=weights["fvd"], num_frames=8)))
    first = evaluator.evaluate(run)
    again = evaluator.evaluate(run_from_filelists(str(tmp / "gen.txt"), str(tmp / "refs" / "ref.txt"), label="b"))
    assert len(evaluator._real_cache) == 1 and first["num_real"] == again["num_real"] == 2
    assert again["fvd"] == pytest.approx(first["fvd"]) and np.isfinite(first["fvd"])


def test_keypoint_file_is_mapped_to_the_generated_frame(setup, tmp_path):
    """Joints stored at the clip's size are resampled in time and space like the video (crop)."""
    _, weights, _ = setup
    joints = np.tile(np.array([[40.0, 30.0]]), (5, 21, 1)) + np.arange(5)[:, None, None]
    HandKeypoints(joints).save(tmp_path / "hand_joints.npz")
    write_video(tmp_path / "video.mp4", np.zeros((5, 60, 80, 3), np.uint8))
    from data_tools.metrics.evaluation import Run
    cfg = MetricsConfig(metrics=["keypoints"])
    cfg.keypoints.estimator.kind, cfg.keypoints.estimator.path = "torchscript", weights["estimator"]
    evaluator = Evaluator(cfg)
    run = Run("x", [], [{"generated": "g.mp4", "reference": str(tmp_path / "video.mp4"), "clip_dir": str(tmp_path)}])
    target, source = evaluator._reference_keypoints(run, run.records[0], None, (3, 30, 30))
    assert source == "file" and target.joints_2d.shape == (3, 21, 2)
    # 60x80 -> crop to 30x30: scale 0.5 (30x40), x shifted by 5; frames 0, 2, 4 picked
    np.testing.assert_allclose(target.joints_2d[:, 0], [[14.75, 14.75], [15.75, 15.75], [16.75, 16.75]])


def test_missing_weights_fail_before_work(setup):
    with pytest.raises(DataError, match="detector_path is not set"):
        Evaluator(MetricsConfig(metrics=["fvd"]))
    with pytest.raises(DataError, match="unknown metric"):
        Evaluator(MetricsConfig(metrics=["fid"]))
    with pytest.raises(DataError, match="shard"):
        parse_shard("3/2")
    from data_tools.metrics.evaluation import check_metric_weights
    from motion_gen.evaluate import main
    with pytest.raises(DataError, match="absent.pt: weight file for metrics.keypoints.estimator.path"):
        main(["--config", CONFIG, "--set", "metrics.keypoints.estimator.path=absent.pt"] +
             [a for o in setup[2] if "estimator" not in o for a in ("--set", o)])
    check_metric_weights(MetricsConfig(metrics=["psnr", "ssim"]))  # nothing to load


def test_results_markdown_layout():
    rows = [{"label": "d+s", "conditions": ["depth", "seg_mask"], "fvd": 40.123, "pck_10px": 0.5, "pck_5px": 0.25,
             "mpjpe_3d_mm": float("nan"), "num_samples": 2}]
    table = results_markdown(rows, "T")
    assert "| Run | depth | seg_mask | FVD ↓ | PCK@5px ↑ | PCK@10px ↑ | MPJPE-3D (mm) ↓ | N |" in table
    assert "| d+s | ✓ | ✓ | 40.12 | 0.250 | 0.500 | – | 2 |" in table


def test_cli_with_the_tiny_motion_generator(setup):
    """The real path: motion_gen.evaluate's CLI, MotionGenerator from configs/motion/tiny.yaml, stand-in metrics."""
    pytest.importorskip("motion_gen.generator")
    from motion_gen.evaluate import main

    tmp, _, overrides = setup
    out = tmp / "cli_out"
    args = ["--config", CONFIG, "--set", "dataset.limit=1", "--set",
            f"runs=[{{config: {os.path.join(REPO, 'configs', 'motion', 'tiny.yaml')}, num_inference_steps: 1}}]"]
    for o in overrides + [f"output={out}"]:
        args += ["--set", o]
    assert main(args) == 0
    saved = json.load(open(out / "results.json"))
    (row,) = saved["runs"]
    assert row["label"] == "hand_keypoints+depth+seg_mask" and row["num_samples"] == 1
    assert row["psnr"] > 0 and row["mpjpe_2d_px"] >= 0 and row["fvd"] is None  # one clip: FVD not computable
    assert read_video(out / row["label"] / "videos" / "00000.mp4").shape == (T, H, W, 3)


class OverrideRecorder(FakeGenerator):
    """Records the overrides each ``load`` receives."""

    loaded: list = []

    @classmethod
    def load(cls, config, overrides, device=None):
        cls.loaded.append(list(overrides))
        return cls()


def test_run_overrides_follow_each_runs_own(setup):
    """``run_overrides`` (e.g. another sampler for every row) reach each run's generator after its own overrides,
    and run.json records them."""
    tmp, _, overrides = setup
    runs = (f"runs=[{{config: a.yaml, overrides: [x=1], label: a, generator: {__name__}:OverrideRecorder}}, "
            f"{{config: b.yaml, label: b, generator: {__name__}:OverrideRecorder}}]")
    cfg = load_config(EvalConfig, CONFIG, overrides + [f"output={tmp / 'ovr'}", "dataset.limit=1", runs,
                                                       "run_overrides=[generate.scheduler=ddim]"])
    for run in cfg.runs:
        generate_run(cfg, run)
    assert OverrideRecorder.loaded[-2:] == [["x=1", "generate.scheduler=ddim"], ["generate.scheduler=ddim"]]
    assert json.load(open(tmp / "ovr" / "a" / "run.json"))["run_overrides"] == ["generate.scheduler=ddim"]
    # the same folder resumes with the same settings, and refuses other ones instead of keeping their samples
    generate_run(cfg, cfg.runs[0])
    other = load_config(EvalConfig, CONFIG, overrides + [f"output={tmp / 'ovr'}", "dataset.limit=1", runs])
    with pytest.raises(DataError, match="other settings \\(run_overrides\\)"):
        generate_run(other, other.runs[0])
    assert json.load(open(tmp / "ovr" / "a" / "run.json"))["run_overrides"] == ["generate.scheduler=ddim"]


def test_sim_folders_generation(setup, tmp_path):
    """dataset.kind=sim: conditions from rendered_{map}_{i}.png folders, the chosen first frame from a filelist."""
    from data_tools.maps.bundle import ConditionBundle
    from data_tools.io.video_io import write_image

    _, _, overrides = setup
    rng = np.random.default_rng(2)
    maps = {n: rng.integers(0, 255, size=(T, H, W, 3), dtype=np.uint8) for n in FakeGenerator.condition_names}
    ConditionBundle(maps, prompt="sim").save_sim_folder(tmp_path / "seq0")
    write_image(tmp_path / "first.png", np.full((H, W, 3), 77, np.uint8))
    write_filelist(tmp_path / "sims.txt", ["seq0"])
    write_filelist(tmp_path / "firsts.txt", ["first.png"])
    config = load_config(EvalConfig, CONFIG, overrides + [
        "dataset.kind=sim", f"dataset.sim_list={tmp_path / 'sims.txt'}", f"output={tmp_path / 'out'}",
        f"dataset.first_frame_list={tmp_path / 'firsts.txt'}"])
    run_dir = generate_run(config, RunConfig(label="sim", seed=0), generator=FakeGenerator())
    video = read_video(os.path.join(run_dir, "videos", "00000.mp4"))
    assert video.shape == (T, H, W, 3) and abs(float(video.mean()) - 77) < 3
    record = json.load(open(os.path.join(run_dir, "videos", "00000.json")))
    assert record["reference"] is None and record["name"] == "seq0"


def test_each_shard_gets_its_own_gpu(monkeypatch):
    """--shard i/n processes started side by side run on GPU i mod count (LOCAL_RANK wins under torchrun); an
    explicit device is kept; without CUDA the default stays."""
    import motion_gen.evaluate as evaluate
    from data_tools.runtime.sharding import process_device

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert process_device(None, 3) is None or torch.cuda.is_available()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [process_device(None, i) for i in range(4)] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert process_device("cpu", 1) == "cpu"
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert process_device(None, 0) == "cuda:1"
    monkeypatch.delenv("LOCAL_RANK")
    devices = []
    monkeypatch.setattr(evaluate, "generate_run", lambda config, run, shard: devices.append((shard, config.device)))
    for i in range(4):
        evaluate.main(["--config", CONFIG, "--set", "device=null", "--shard", f"{i}/4", "--stage", "generate"])
    assert devices == [((i, 4), f"cuda:{i % 2}") for i in range(4)]


def test_committed_evaluation_configs_load_and_name_existing_motion_configs():
    """Every evaluation YAML in configs/ parses (an EvalConfig, or a MetricsConfig without runs; a broken one used
    to surface only when run), each motion run's config and overrides load, and labels are unique per file."""
    import yaml

    from motion_gen.config import load_motion_config

    paths = [os.path.join(REPO, "configs", "eval", n) for n in os.listdir(os.path.join(REPO, "configs", "eval"))]
    paths += [os.path.join(REPO, "configs", "toy_world", n) for n in os.listdir(os.path.join(REPO, "configs", "toy_world"))
              if n.startswith(("eval", "sweep"))]
    assert any("sweep_subset_train" in p for p in paths)
    for path in sorted(p for p in paths if p.endswith(".yaml")):
        with open(path, encoding="utf-8") as f:
            if "runs" not in (yaml.safe_load(f) or {}):
                load_config(MetricsConfig, path)
                continue
        cfg = load_config(EvalConfig, path)
        labels = [run.label for run in cfg.runs]
        assert len(set(labels)) == len(labels), path
        for run in cfg.runs:
            if run.generator == RunConfig.generator:
                load_motion_config(os.path.join(REPO, run.config), list(run.overrides) + list(cfg.run_overrides))
