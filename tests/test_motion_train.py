"""Training the condition branch on the tiny config: overfitting one batch, 2-process CPU run with
checkpoint + resume, conversion of checkpoints to a diffusers transformer folder."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import margins
import torch
from conftest import torchrun
from safetensors.torch import load_file, save_file

from data_tools.errors import DataError
from data_tools.runtime.training import list_checkpoints, read_train_log
from motion_gen.config import load_motion_config
from motion_gen.convert_ckpt import convert
from motion_gen.model import BRANCH_PREFIXES, CogVideoXConditionTransformer
from motion_gen.prepare import prepare
from motion_gen.tiny_data import synthetic_dataset
from motion_gen.train import build_spec, condition_subsets, train

TINY = "configs/motion/tiny.yaml"


@pytest.fixture(scope="module")
def latents(tmp_path_factory):
    root = tmp_path_factory.mktemp("motion")
    synthetic_dataset(root / "ds", num_clips=2)
    cfg = load_motion_config(TINY, [f"data.root={root / 'ds'}", f"data.latents={root / 'lat'}"])
    prepare(cfg)
    return str(root / "lat")


def _cfg(latents, out, *extra):
    return load_motion_config(TINY, [f"data.latents={latents}", f"train.loop.output_dir={out}",
                                     "train.loop.validate_every=0", *extra])


def test_overfit_one_batch(latents, tmp_path):
    """30 steps on one batch with fixed noise/timesteps: the loss drops (floor and spread in tests/margins.py)."""
    before, after, summary, spec, base = margins.motion_overfit_ratio(latents, str(tmp_path / "run"))
    assert summary["step"] == 30
    margins.check({"motion_overfit.loss_ratio": before / after})
    # the base stayed frozen; the branch moved
    for n, p in spec.transformer.named_parameters():
        if n in base:
            assert torch.equal(p, base[n]), n
    assert spec.transformer.condition_projections[0].weight.abs().sum() > 0


def test_loss_matches_hand_computation(latents):
    """With dropout 1 the image and condition first-frame latents are zero; the loss is the weighted x0 error."""
    cfg = _cfg(latents, "unused", "train.noised_image_dropout=1.0")
    spec, dataset = build_spec(cfg)
    batch = spec.collate([dataset[0]])
    seen = {}

    def model(hidden_states, conditions, timestep, **kw):
        seen.update(hidden=hidden_states, conditions=conditions, t=timestep)
        return (torch.zeros_like(hidden_states[:, :, :4]),)

    loss = spec.loss(model, batch, "cpu", generator=torch.Generator().manual_seed(0))
    assert torch.count_nonzero(seen["hidden"][:, :, 4:]) == 0  # dropped first-frame latent
    assert all(torch.count_nonzero(c[:, :, 4:]) == 0 for c in seen["conditions"].values())
    # zero v-prediction -> x0 estimate = sqrt(abar) * noisy; loss = w * mean((sqrt(abar) x_t - x0)^2)
    t = seen["t"]
    abar = spec.scheduler.alphas_cumprod[t]
    noisy = seen["hidden"][:, :, :4]
    g = torch.Generator().manual_seed(0)
    from motion_gen.latents import sample_latents

    x0 = sample_latents(batch["video"].float(), spec.scale, g)
    expected = ((abar.sqrt() * noisy - x0) ** 2).mean() / (1 - abar)
    torch.testing.assert_close(loss, expected.squeeze(), rtol=1e-5, atol=1e-6)


def test_two_process_run_checkpoint_resume_and_convert(latents, tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.getcwd())
    cmd = [*torchrun(2), "-m", "motion_gen.train", "--config", TINY, f"data.latents={latents}", f"train.loop.output_dir={out}",
           "train.loop.max_steps=2", "train.loop.checkpoint_every=2", "train.loop.validate_every=0"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "world 2" in result.stderr
    assert [s for s, _ in list_checkpoints(str(out))] == [2]
    ckpt = out / "checkpoints" / "checkpoint-2"
    assert json.load(open(ckpt / "trainer_state.json"))["config"]["transformer_config"]["condition_names"] == \
        ["hand_keypoints", "depth", "seg_mask"]
    # resume (one process here) continues at step 3 from the saved state
    summary = train(_cfg(latents, out, "train.loop.max_steps=3", "train.loop.checkpoint_every=3"))
    assert summary["step"] == 3 and len(summary["losses"]) == 1
    assert [r["step"] for r in read_train_log(str(out))] == [1, 2, 3]
    # convert the 2-process checkpoint (the branch only): loads with from_pretrained, holds the checkpoint's branch
    folder = convert(str(ckpt), str(tmp_path / "transformer"))
    model = CogVideoXConditionTransformer.from_pretrained(folder)
    saved = load_file(str(ckpt / "model.safetensors"))
    assert set(saved) == {n for n, _ in model.named_parameters() if n.startswith(BRANCH_PREFIXES)}
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())
    # a training output folder resolves to its newest checkpoint (step 3), bf16 on request
    folder3 = convert(str(out), str(tmp_path / "t3"), dtype="bf16")
    assert load_file(f"{folder3}/diffusion_pytorch_model.safetensors")["proj_out.weight"].dtype == torch.bfloat16
    model3 = CogVideoXConditionTransformer.from_pretrained(folder3, torch_dtype=torch.bfloat16)
    final = CogVideoXConditionTransformer.from_pretrained(out / "final")
    torch.testing.assert_close(model3.condition_embed.weight.float(),
                               final.condition_embed.weight.to(torch.bfloat16).float())


def test_checkpoint_holds_the_branch_only_resumes_and_converts(latents, tmp_path):
    """A checkpoint holds exactly the trained branch (not the frozen base), is smaller than the full model, a run
    resumed from it continues as the uninterrupted run, and converting it with the base rebuilt from the run config
    gives the full model of that step (what converting a full checkpoint gave)."""
    steps = ["train.loop.checkpoint_every=2", "train.optim.scheduler=constant", "train.optim.warmup_steps=0"]
    whole = train(_cfg(latents, tmp_path / "whole", "train.loop.max_steps=4", *steps))
    part = tmp_path / "part"
    train(_cfg(latents, part, "train.loop.max_steps=2", *steps))
    ckpt = part / "checkpoints" / "checkpoint-2"
    full = CogVideoXConditionTransformer.from_pretrained(part / "final")  # the whole model at step 2
    trained = {n for n, _ in full.named_parameters() if n.startswith(BRANCH_PREFIXES)}
    assert set(load_file(str(ckpt / "model.safetensors"))) == trained and len(trained) < len(full.state_dict())
    assert os.path.getsize(ckpt / "model.safetensors") < 0.5 * os.path.getsize(
        part / "final" / "diffusion_pytorch_model.safetensors")
    converted = CogVideoXConditionTransformer.from_pretrained(convert(str(ckpt), str(tmp_path / "conv"))).state_dict()
    assert set(converted) == set(full.state_dict())
    assert all(torch.equal(v, converted[k]) for k, v in full.state_dict().items())
    resumed = train(_cfg(latents, part, "train.loop.max_steps=4", *steps))
    assert len(resumed["losses"]) == 2
    assert resumed["losses"] == pytest.approx(whole["losses"][2:], rel=1e-6, abs=1e-7)
    a = CogVideoXConditionTransformer.from_pretrained(part / "final").state_dict()
    b = CogVideoXConditionTransformer.from_pretrained(tmp_path / "whole" / "final").state_dict()
    assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7) for k in b)


def test_resume_refuses_a_checkpoint_without_the_trained_weights(latents, tmp_path):
    """A checkpoint whose model file lacks trained weights (another model's) is named, not half-loaded."""
    out = tmp_path / "run"
    train(_cfg(latents, out, "train.loop.max_steps=1", "train.loop.checkpoint_every=1"))
    path = out / "checkpoints" / "checkpoint-1" / "model.safetensors"
    save_file({k: v for k, v in load_file(str(path)).items() if not k.startswith("condition_embed")}, str(path))
    with pytest.raises(DataError, match="checkpoint lacks 2 trained weight.*condition_embed"):
        train(_cfg(latents, out, "train.loop.max_steps=2"))


DS_RUN = textwrap.dedent("""
    import json, os, sys, torch, deepspeed
    from safetensors.torch import save_file
    from data_tools.runtime.latent_store import LatentDataset
    from motion_gen.config import load_motion_config
    from motion_gen.train import MotionSpec
    latents, out = sys.argv[1], sys.argv[2]
    dataset = LatentDataset(latents)
    spec = MotionSpec(load_motion_config("configs/motion/tiny.yaml", [f"data.latents={latents}"]), latent_meta=dataset.meta)
    config = {"train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 1, "zero_optimization": {"stage": 2},
              "optimizer": {"type": "AdamW", "params": {"lr": 1e-2, "torch_adam": True}}, "steps_per_print": 10**6}
    engine, *_ = deepspeed.initialize(model=spec.transformer, config=config,
                                      model_parameters=[p for p in spec.transformer.parameters() if p.requires_grad])
    rank = int(os.environ["RANK"])
    for step in range(2):
        loss = spec.loss(engine, spec.collate([dataset[rank]]), "cpu", generator=torch.Generator().manual_seed(rank))
        engine.backward(loss)
        engine.step()
    ckpt = os.path.join(out, "checkpoints", "checkpoint-2")
    engine.save_checkpoint(ckpt, tag="pytorch_model")  # the layout accelerate's DeepSpeed save_state writes
    if rank == 0:
        json.dump({"step": 2, "config": {"transformer_config": dict(spec.transformer.config)}},
                  open(os.path.join(ckpt, "trainer_state.json"), "w"))
        save_file({k: v.detach().float().contiguous() for k, v in engine.module.state_dict().items()},
                  os.path.join(out, "expected.safetensors"))
    torch.distributed.barrier()
""")


def _deepspeed_on_two_cpu_ranks(script: str, latents: str, tmp_path) -> None:
    """Run ``script`` (latents, output folder ``tmp_path/out``) on 2 CPU ranks with DeepSpeed's CPU accelerator."""
    pytest.importorskip("deepspeed")
    (tmp_path / "ds_script.py").write_text(script)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.getcwd(), DS_ACCELERATOR="cpu")
    result = subprocess.run([*torchrun(2), str(tmp_path / "ds_script.py"), latents, str(tmp_path / "out")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_convert_deepspeed_zero2_checkpoint(latents, tmp_path):
    """A ZeRO-2 checkpoint of 2 CPU ranks (DS_ACCELERATOR=cpu; the shared Trainer refuses DeepSpeed without CUDA,
    so the engine is driven directly) converts to a folder holding the engine's weights."""
    _deepspeed_on_two_cpu_ranks(DS_RUN, latents, tmp_path)
    folder = convert(str(tmp_path / "out"), str(tmp_path / "transformer"))  # resolves checkpoints/checkpoint-2
    model = CogVideoXConditionTransformer.from_pretrained(folder)
    expected = load_file(str(tmp_path / "out" / "expected.safetensors"))
    assert set(expected) == set(model.state_dict())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in expected.items())
    assert model.condition_embed.weight.abs().sum() > 0  # two steps moved the fusion linear too


DS_PARTIAL = textwrap.dedent("""
    import json, os, sys, torch, deepspeed
    from types import SimpleNamespace
    from accelerate.utils import DistributedType
    from safetensors.torch import save_file
    from data_tools.io.config import to_dict
    from data_tools.runtime.latent_store import LatentDataset
    from data_tools.runtime.training import state_kwargs
    from motion_gen.config import load_motion_config
    from motion_gen.train import MotionSpec
    latents, out = sys.argv[1], sys.argv[2]
    dataset = LatentDataset(latents)
    cfg = load_motion_config("configs/motion/tiny.yaml", [f"data.latents={latents}"])
    config = {"train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 1, "zero_optimization": {"stage": 2},
              "optimizer": {"type": "AdamW", "params": {"lr": 1e-2, "torch_adam": True}}, "steps_per_print": 10**6}
    rank = int(os.environ["RANK"])
    kwargs = lambda save: state_kwargs(SimpleNamespace(distributed_type=DistributedType.DEEPSPEED), save)
    def engine():  # the transformer as the run config builds it (tiny seed), branch trainable
        spec = MotionSpec(cfg, latent_meta=dataset.meta)
        trained = [p for p in spec.transformer.parameters() if p.requires_grad]
        return spec, deepspeed.initialize(model=spec.transformer, config=config, model_parameters=trained)[0]
    def step(spec, engine, i):
        loss = spec.loss(engine, spec.collate([dataset[rank]]), "cpu", generator=torch.Generator().manual_seed(10 * i + rank))
        engine.backward(loss)
        engine.step()
        return loss.item()
    spec, whole = engine()
    losses = [step(spec, whole, i) for i in range(3)]
    spec, part = engine()
    [step(spec, part, i) for i in range(2)]
    ckpt = os.path.join(out, "checkpoints", "checkpoint-2")
    part.save_checkpoint(ckpt, tag="pytorch_model", **kwargs(True))  # what accelerate's save_state passes on
    if rank == 0:
        json.dump({"step": 2, "config": {"motion": to_dict(cfg), "transformer_config": dict(spec.transformer.config)}},
                  open(os.path.join(ckpt, "trainer_state.json"), "w"))
        save_file({k: v.detach().float().contiguous() for k, v in part.module.state_dict().items()},
                  os.path.join(out, "expected.safetensors"))
    spec, resumed = engine()
    resumed.load_checkpoint(ckpt, tag="pytorch_model", **kwargs(False))
    json.dump({"whole": losses[2], "resumed": step(spec, resumed, 2)}, open(os.path.join(out, f"rank{rank}.json"), "w"))
    torch.distributed.barrier()
""")


def test_deepspeed_checkpoint_holds_the_branch_only_resumes_and_converts(latents, tmp_path):
    """DeepSpeed ZeRO-2 (2 CPU ranks, the engine driven directly: accelerate has no CPU DeepSpeed) with the save and
    load arguments the Trainer passes: the model states hold the branch only, a fresh engine resumed from them
    takes the same next step, and the converter rebuilds the base from the run config."""
    _deepspeed_on_two_cpu_ranks(DS_PARTIAL, latents, tmp_path)
    for rank in range(2):
        losses = json.loads((tmp_path / "out" / f"rank{rank}.json").read_text())
        assert losses["resumed"] == pytest.approx(losses["whole"], rel=1e-6)
    states = torch.load(tmp_path / "out" / "checkpoints" / "checkpoint-2" / "pytorch_model" / "mp_rank_00_model_states.pt",
                        weights_only=False)
    expected = load_file(str(tmp_path / "out" / "expected.safetensors"))
    trained = {k for k in expected if k.startswith(BRANCH_PREFIXES)}
    assert set(states["module"]) == trained and len(trained) < len(expected)
    model = CogVideoXConditionTransformer.from_pretrained(convert(str(tmp_path / "out"), str(tmp_path / "transformer")))
    assert set(expected) == set(model.state_dict())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in expected.items())


def test_missing_paths_fail_at_start_up_in_one_error(latents, tmp_path):
    """A missing validation folder (and weights folder) stop the run before any step, named in one error."""
    cfg = _cfg(latents, tmp_path / "run", "train.loop.validate_every=500",
               f"train.validation_sample={tmp_path / 'no_val'}", f"model.pretrained={tmp_path / 'no_weights'}")
    with pytest.raises(DataError, match="2 path.*model.pretrained=.*no_weights, train.validation_sample=.*no_val"):
        train(cfg)
    assert not (tmp_path / "run").exists()
    split = _cfg(latents, tmp_path / "run", "train.loop.validate_every=500", "train.validation_split=val",
                 f"data.root={tmp_path / 'dataset'}")
    with pytest.raises(DataError, match=r"train.validation_split \(val of data.root\)=.*dataset/filelists/val"):
        train(split)


def test_seed_validation_leaves_training_streams_alone(latents, tmp_path):
    """Validation on the first clip of a split (prompt embeddings cached once, pipeline rebuilt without T5 each
    time): videos written, and the loss curve is that of the same run without validation."""
    import motion_gen.generator

    calls = []
    encode = motion_gen.generator.encode_prompts
    root = os.path.join(os.path.dirname(latents), "ds")
    common = ["train.loop.max_steps=2", "train.loop.checkpoint_every=0", f"data.root={root}"]
    plain = train(_cfg(latents, tmp_path / "plain", *common))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(motion_gen.generator, "encode_prompts", lambda *a: calls.append(1) or encode(*a))
        validated = train(_cfg(latents, tmp_path / "val", *common, "train.loop.validate_every=1",
                               "train.validation_split=train"))
    assert len(calls) == 1
    for step in (1, 2):
        assert os.path.getsize(tmp_path / "val" / "validation" / f"step-{step}" / "video.mp4") > 0
    assert validated["losses"] == plain["losses"]


def test_seed_motion_loss_draws_from_the_process_rng(latents):
    """Noise, timesteps, posterior samples and dropout come from the global torch RNG the Trainer seeds per rank."""
    spec, dataset = build_spec(_cfg(latents, "unused"))
    batch = spec.collate([dataset[0]])
    losses = []
    for seed in (0, 1, 0):
        torch.manual_seed(seed)
        with torch.no_grad():
            losses.append(spec.compute_loss(spec.transformer, batch, type("A", (), {"device": "cpu"})()).item())
    assert losses[0] == losses[2] and losses[0] != losses[1]


def _loss_inputs(latents, *overrides, batch_size=1):
    """What the denoiser sees in one training loss (fixed generator, no image dropout)."""
    cfg = _cfg(latents, "unused", "train.noised_image_dropout=0.0", *overrides)
    spec, dataset = build_spec(cfg)
    batch = spec.collate([dataset[0]] * batch_size)
    seen = {}

    def model(hidden_states, conditions, timestep, **kw):
        seen.update(hidden=hidden_states, conditions=conditions, t=timestep)
        return (torch.zeros_like(hidden_states[:, :, :4]),)

    spec.loss(model, batch, "cpu", generator=torch.Generator().manual_seed(0))
    return seen


def _zeroed(conditions, batch_size):
    """Per sample, which conditions arrive all-zero (video and first-frame latents together)."""
    return [tuple(bool(torch.count_nonzero(c[i]) == 0) for c in conditions.values()) for i in range(batch_size)]


def test_condition_dropout_zeroes_whole_samples_of_every_condition(latents):
    """condition_dropout drops all conditions of a sample together (video and first-frame latents), never the
    image."""
    dropped = _loss_inputs(latents, "train.condition_dropout=1.0")
    assert all(torch.count_nonzero(c) == 0 for c in dropped["conditions"].values())
    assert torch.count_nonzero(dropped["hidden"][:, 0, 4:]) > 0  # the image latent stays
    zero = _zeroed(_loss_inputs(latents, "train.condition_dropout=0.5", batch_size=16)["conditions"], 16)
    assert all(len(set(row)) == 1 for row in zero)  # a sample loses all its conditions or none
    assert 0 < sum(row[0] for row in zero) < 16


def test_condition_subsets_draw_proper_non_empty_subsets():
    """Each row keeps all conditions or one of the 2**n - 2 proper non-empty subsets, uniformly; no draw (the
    random stream untouched) when off or with a single condition."""
    generator = torch.Generator().manual_seed(0)
    rows = condition_subsets(6000, 3, 1.0, generator)
    kept = [tuple(int(v) for v in row) for row in rows]
    counts = {subset: kept.count(subset) for subset in set(kept)}
    assert set(counts) == {(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1)}
    assert all(abs(n / 6000 - 1 / 6) < 0.02 for n in counts.values())
    half = condition_subsets(6000, 3, 0.5, generator)
    assert abs((half.sum(dim=1) == 3).float().mean().item() - 0.5) < 0.03
    for size, probability in ((1, 1.0), (3, 0.0)):
        state = generator.get_state()
        assert torch.equal(condition_subsets(4, size, probability, generator), torch.ones(4, size))
        assert torch.equal(generator.get_state(), state)


def test_condition_subset_dropout_zeroes_some_conditions_of_a_sample(latents):
    """With condition_subset_dropout=1 every sample keeps at least one condition and loses at least one (both its
    video and first-frame latents), and the image stays; with condition_dropout=1 as well, all are zero."""
    seen = _loss_inputs(latents, "train.condition_subset_dropout=1.0", batch_size=16)
    zero = _zeroed(seen["conditions"], 16)
    assert all(any(row) and not all(row) for row in zero)
    assert len(set(zero)) > 1
    assert torch.count_nonzero(seen["hidden"][:, :, 4:]) > 0
    both = _loss_inputs(latents, "train.condition_subset_dropout=1.0", "train.condition_dropout=1.0", batch_size=4)
    assert all(all(row) for row in _zeroed(both["conditions"], 4))


def test_resume_and_conversion_refuse_another_base(latents, tmp_path):
    """The checkpoint leaves the frozen base out, so it records its fingerprint: a resume or a conversion whose
    rebuilt base differs (another tiny seed here, like another model.pretrained) is refused, naming a tensor."""
    from data_tools.runtime.checkpoints import load_checkpoint_state
    from motion_gen.convert_ckpt import save_transformer

    out = tmp_path / "run"
    train(_cfg(latents, out, "train.loop.max_steps=1", "train.loop.checkpoint_every=1"))
    with pytest.raises(DataError, match="frozen weights differ from those this checkpoint was trained with"):
        train(_cfg(latents, out, "train.loop.max_steps=2", "model.tiny.seed=7"))
    ckpt = str(out / "checkpoints" / "checkpoint-1")
    state = json.loads(open(os.path.join(ckpt, "trainer_state.json")).read())
    state["config"]["motion"]["model"]["tiny"]["seed"] = 7
    json.dump(state, open(os.path.join(ckpt, "trainer_state.json"), "w"))
    from motion_gen.convert_ckpt import frozen_base

    with pytest.raises(DataError, match=r"values: sum"):
        save_transformer(state["config"]["transformer_config"], load_checkpoint_state(ckpt), str(tmp_path / "conv"),
                         source=ckpt, base=lambda: frozen_base(ckpt))


def test_a_bf16_run_converts_to_its_own_final_model(latents, tmp_path):
    """Under bf16 mixed precision the trainer keeps the frozen base in bf16: the converter rebuilds it so (from
    the recorded fingerprint's dtypes), and the converted step equals the run's final model exactly."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)   # this process's earlier runs set mixed precision "no"
    out = tmp_path / "bf16"
    try:
        train(_cfg(latents, out, "train.loop.max_steps=1", "train.loop.checkpoint_every=1",
                   "train.loop.mixed_precision=bf16", "train.loop.cpu_bf16=true"))
    finally:                              # the later tests' runs are mixed precision "no" again, even after a failure
        AcceleratorState._reset_state(True)
    weights = "diffusion_pytorch_model.safetensors"
    final = load_file(str(out / "final" / weights))
    assert final["transformer_blocks.0.attn1.to_q.weight"].dtype == torch.bfloat16
    assert final["condition_embed.weight"].dtype == torch.float32
    converted = load_file(os.path.join(convert(str(out / "checkpoints" / "checkpoint-1"), str(tmp_path / "conv")),
                                       weights))
    assert set(converted) == set(final) and all(torch.equal(final[k], converted[k]) for k in final)


def test_deepspeed_resume_checks_the_trained_weights_in_the_module_states(tmp_path):
    """accelerate's load pre-hook sees no models under DeepSpeed: the trainer reads the model states file itself
    (here one written in DeepSpeed's layout) and names a missing trained weight before loading."""
    from data_tools.runtime.training import check_deepspeed_trained_weights

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    model[0].requires_grad_(False)
    folder = tmp_path / "checkpoint-2" / "pytorch_model"
    folder.mkdir(parents=True)
    states = {"module": {"1.weight": torch.zeros(2, 2), "1.bias": torch.zeros(2)}, "ds_version": "0.19"}
    torch.save(states, folder / "mp_rank_00_model_states.pt")
    check_deepspeed_trained_weights(model, str(tmp_path / "checkpoint-2"))    # the frozen layer 0 may be absent
    del states["module"]["1.bias"]
    torch.save(states, folder / "mp_rank_00_model_states.pt")
    with pytest.raises(DataError, match=r"mp_rank_00_model_states.pt: checkpoint lacks 1 trained weight.*1\.bias"):
        check_deepspeed_trained_weights(model, str(tmp_path / "checkpoint-2"))
    with pytest.raises(DataError, match="no DeepSpeed model states"):
        check_deepspeed_trained_weights(model, str(tmp_path))


def test_the_base_folder_is_found_from_the_run_directory_or_named(tmp_path, monkeypatch):
    """A relative model.pretrained is looked up from the directory training ran in (trainer_state.json's cwd)
    when the converter runs elsewhere; --pretrained wins; a folder found nowhere names the flag."""
    from data_tools.runtime.checkpoints import run_folder

    ckpt = tmp_path / "run" / "checkpoints" / "checkpoint-1"
    ckpt.mkdir(parents=True)
    (tmp_path / "run" / "weights" / "cogvideox").mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text(json.dumps({"step": 1, "cwd": str(tmp_path / "run")}))
    monkeypatch.chdir(tmp_path)
    assert run_folder(str(ckpt), "weights/cogvideox", None, "--pretrained") == str(tmp_path / "run/weights/cogvideox")
    assert run_folder(str(ckpt), "weights/cogvideox", "/elsewhere", "--pretrained") == "/elsewhere"
    assert run_folder(str(ckpt), None, None, "--pretrained") is None
    with pytest.raises(DataError, match="give --pretrained FOLDER where it lies"):
        run_folder(str(ckpt), "weights/gone", None, "--pretrained")
