"""The shared training runtime on N processes (CPU, gloo, torchrun): the LR schedule is that of one process,
each rank draws its own random numbers and a resumed run continues them, an empty shard is an error, DeepSpeed
gets the configured clipping. One torchrun launch serves every 2-process check (module fixture)."""
import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import torchrun

from data_tools.errors import DataError
from data_tools.runtime.training import (LoopConfig, OptimizerConfig, Trainer, check_shards, deepspeed_config,
                                         deepspeed_plugin, launcher_deepspeed_config, read_train_log)

TOY = textwrap.dedent('''
    import torch
    from data_tools.runtime.training import LoopConfig, OptimizerConfig, TrainingSpec

    class ToyData(torch.utils.data.Dataset):
        """y = w.x - 1 with 32 fixed samples."""
        def __init__(self, n=32):
            g = torch.Generator().manual_seed(0)
            self.x = torch.randn(n, 4, generator=g)
            self.y = self.x @ torch.tensor([3.0, -1.0, 0.5, 2.0]) - 1.0
        def __len__(self):
            return len(self.x)
        def __getitem__(self, i):
            return {"x": self.x[i], "y": self.y[i]}

    class Killed(Exception):
        pass

    class NoisySpec(TrainingSpec):
        """Inputs noised from the global torch RNG (as diffusion losses draw noise and timesteps); records draws.
        ``kill_at``: raise at that micro-batch, as a run killed mid-training."""
        def __init__(self, kill_at=None):
            torch.manual_seed(0)
            self.model = torch.nn.Linear(4, 1)
            self.draws = []
            self.kill_at = kill_at
        def trainable_module(self):
            return self.model
        def compute_loss(self, model, batch, accelerator):
            if len(self.draws) == self.kill_at:
                raise Killed()
            noise = 0.3 * torch.randn(batch["x"].shape)
            self.draws.append(round(float(noise[0, 0]), 6))
            return torch.nn.functional.mse_loss(model(batch["x"] + noise).squeeze(-1), batch["y"])
        def save_weights(self, model, output_dir):
            pass

    def loop(out, **kw):
        base = dict(output_dir=out, max_steps=8, batch_size=2, grad_accum=2, checkpoint_every=0, log_every=0,
                    cpu=True, seed=7)
        return LoopConfig(**{**base, **kw})

    OPTIM = OptimizerConfig(lr=0.05, warmup_steps=2, scheduler="cosine_with_restarts", num_cycles=1)
''')

RUN2 = textwrap.dedent('''
    import json, os, sys
    import accelerate
    from torch.utils.data import Subset
    from data_tools.errors import DataError
    from data_tools.runtime.training import Trainer

    accelerate.Accelerator.end_training = lambda self: None  # three runs share one process group
    out = sys.argv[1]
    spec = NoisySpec()
    a = Trainer(spec, ToyData(), loop(out + "/a"), OPTIM).train()
    try:  # killed in step 6 (micro-batch 11), after the checkpoint of step 5
        Trainer(NoisySpec(kill_at=10), ToyData(), loop(out + "/b", checkpoint_every=5), OPTIM).train()
    except Killed:
        pass
    resumed = Trainer(NoisySpec(), ToyData(), loop(out + "/b", checkpoint_every=5), OPTIM).train()
    try:
        Trainer(NoisySpec(), Subset(ToyData(), [0, 1, 2]), loop(out + "/c"), OPTIM).train()
        empty = None
    except DataError as exc:
        empty = str(exc)
    rank = int(os.environ["RANK"])
    with open(os.path.join(out, f"result_{rank}.json"), "w") as f:
        json.dump({"rank": rank, "world": a["world_size"], "lrs": a["lrs"], "losses": a["losses"],
                   "draws": spec.draws, "resumed": resumed["losses"], "empty": empty}, f)
    import torch.distributed
    torch.distributed.destroy_process_group()
''')


def hand_lr(step: int, lr=0.05, warmup=2, total=8) -> float:
    """diffusers' cosine_with_restarts (one cycle) at optimizer step ``step`` (0-based), computed by hand."""
    if step < warmup:
        return lr * step / warmup
    progress = (step - warmup) / (total - warmup)
    return lr * 0.5 * (1.0 + math.cos(math.pi * (progress % 1.0)))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    (folder / "toy_multi_rank.py").write_text(TOY)
    sys.path.insert(0, str(folder))
    import importlib

    import toy_multi_rank
    yield importlib.reload(toy_multi_rank)
    sys.path.remove(str(folder))


@pytest.fixture(scope="module")
def two_ranks(toy, tmp_path_factory):
    """``{rank: result}`` of RUN2 under ``torchrun --nproc_per_node 2`` (gloo)."""
    folder = tmp_path_factory.mktemp("ddp")
    script = folder / "run2.py"
    script.write_text(TOY + RUN2)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.getcwd())
    result = subprocess.run([*torchrun(2), str(script), str(folder)], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    found = [json.loads((folder / f"result_{rank}.json").read_text()) for rank in (0, 1)]
    assert sorted(r["rank"] for r in found) == [0, 1] and all(r["world"] == 2 for r in found)
    logs = {"log": read_train_log(str(folder / "a")), "resumed_log": read_train_log(str(folder / "b"))}
    return {r["rank"]: r | logs for r in found}


@pytest.fixture(scope="module")
def one_rank(toy, tmp_path_factory):
    spec = toy.NoisySpec()
    summary = Trainer(spec, toy.ToyData(), toy.loop(str(tmp_path_factory.mktemp("single"))), toy.OPTIM).train()
    return summary | {"draws": spec.draws}


def test_schedule_multi_rank_lr_is_the_single_process_schedule(two_ranks, one_rank):
    """The LR of each optimizer step: 2 processes == 1 process == diffusers' formula by hand (warm-up 2 of 8)."""
    expected = [hand_lr(s) for s in range(8)]
    assert one_rank["lrs"] == pytest.approx(expected, abs=1e-9)
    for rank in (0, 1):
        assert two_ranks[rank]["lrs"] == pytest.approx(expected, abs=1e-9)
    assert [r["lr"] for r in two_ranks[0]["log"]] == pytest.approx(expected, abs=1e-9)
    assert [r["step"] for r in two_ranks[0]["log"]] == list(range(1, 9))


def test_seed_multi_rank_streams_differ_per_rank(two_ranks, one_rank):
    """Rank 0 draws the stream of a single process with the same seed; rank 1 draws a different one."""
    draws0, draws1 = two_ranks[0]["draws"], two_ranks[1]["draws"]
    assert len(draws0) == len(draws1) == 16  # 8 steps x grad_accum 2
    assert draws0 == one_rank["draws"]
    assert all(a != b for a, b in zip(draws0, draws1))


def test_seed_multi_rank_resume_continues_the_uninterrupted_run(two_ranks):
    """Killed in step 6 after the checkpoint of step 5 (mid epoch 1: 4 steps per epoch), resumed to step 8: the
    loss of every step (mean over ranks) equals that of the run that was never stopped."""
    run = two_ranks[0]
    assert [r["step"] for r in run["resumed_log"]] == list(range(1, 9))
    assert [r["loss"] for r in run["resumed_log"]] == pytest.approx(run["losses"], rel=1e-6, abs=1e-7)
    for rank in (0, 1):
        assert two_ranks[rank]["resumed"] == pytest.approx(run["losses"][5:], rel=1e-6, abs=1e-7)
    assert two_ranks[0]["losses"] == two_ranks[1]["losses"]  # the logged loss is the mean over ranks


def test_multi_rank_empty_shard_is_an_error(two_ranks, toy, tmp_path):
    """3 samples, batch 2, 2 ranks: no rank gets a batch. Named in the error, not an endless loop."""
    for rank in (0, 1):
        message = two_ranks[rank]["empty"]
        assert message and "3 samples" in message and "batch_size 2" in message and "world_size 2" in message
    assert check_shards(32, 2, 2) == 8 and check_shards(4, 2, 2) == 1 and check_shards(5, 2, 1) == 2
    with pytest.raises(DataError, match="1 samples, fewer than batch_size 2 x world_size 1"):
        Trainer(toy.NoisySpec(), toy.ToyData(1), toy.loop(str(tmp_path)), toy.OPTIM).train()


@pytest.mark.parametrize("max_grad_norm", [0.5, 0.0])
def test_multi_rank_deepspeed_gets_the_configured_clipping(max_grad_norm, monkeypatch):
    """The plugin built for ``accelerate launch --config_file deepspeed_zero2.yaml`` carries max_grad_norm, and
    accelerate's own fill of the "auto" keys at prepare (clipping 1.0) leaves it alone; 0 disables clipping."""
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_CONFIG_FILE", "configs/accelerate/zero2.json")
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)  # the plugin only; nothing is launched
    assert launcher_deepspeed_config() == "configs/accelerate/zero2.json"
    loop, optim = LoopConfig(batch_size=4, grad_accum=4), OptimizerConfig(max_grad_norm=max_grad_norm)
    plugin = deepspeed_plugin(loop, optim)
    plugin.set_mixed_precision("bf16")
    # what Accelerator._prepare_deepspeed passes for a batch of 4 on 4 GPUs
    plugin.deepspeed_config_process(must_match=False, gradient_clipping=1.0, train_micro_batch_size_per_gpu=4,
                                    train_batch_size=64,
                                    **{"zero_optimization.stage3_gather_16bit_weights_on_model_save": False})
    config = plugin.deepspeed_config
    assert config["gradient_clipping"] == max_grad_norm and plugin.gradient_clipping == max_grad_norm
    assert config["train_micro_batch_size_per_gpu"] == 4 and config["gradient_accumulation_steps"] == 4
    assert config["bf16"]["enabled"] is True


def test_multi_rank_deepspeed_clipping_conflict_and_cpu(tmp_path, monkeypatch):
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 2}, "gradient_clipping": 2.0}))
    with pytest.raises(DataError, match="gradient_clipping is 2.0 but train.optim.max_grad_norm is 1.0"):
        deepspeed_config(str(path), LoopConfig(), OptimizerConfig(max_grad_norm=1.0))
    assert deepspeed_config(str(path), LoopConfig(), OptimizerConfig(max_grad_norm=2.0))["gradient_clipping"] == 2.0
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_CONFIG_FILE", str(path))
    with pytest.raises(DataError, match="DeepSpeed training needs CUDA"):
        deepspeed_plugin(LoopConfig(cpu=True), OptimizerConfig())
