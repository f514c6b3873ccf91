"""The shared training loop on a toy regression problem: loss drops, checkpoints resume, 2 processes run."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import torchrun

from data_tools.errors import DataError
from data_tools.io import atomic
from data_tools.runtime.training import (LoopConfig, OptimizerConfig, Trainer, latest_checkpoint,
                                 list_checkpoints, loss_ratio, read_train_log)

TOY = textwrap.dedent('''
    import os, sys, torch
    from safetensors.torch import save_file
    from data_tools.runtime.training import TrainingSpec

    class ToyData(torch.utils.data.Dataset):
        """y = 3 x - 1 with 32 fixed samples."""
        def __init__(self):
            g = torch.Generator().manual_seed(0)
            self.x = torch.randn(32, 4, generator=g)
            self.y = self.x @ torch.tensor([3.0, -1.0, 0.5, 2.0]) - 1.0
        def __len__(self):
            return 32
        def __getitem__(self, i):
            return {"x": self.x[i], "y": self.y[i]}

    class ToySpec(TrainingSpec):
        def __init__(self):
            torch.manual_seed(0)
            self.model = torch.nn.Sequential(torch.nn.Linear(4, 1))
            self.frozen = torch.nn.Linear(1, 1)  # never trained
        def trainable_module(self):
            return self.model
        def compute_loss(self, model, batch, accelerator):
            return torch.nn.functional.mse_loss(model(batch["x"]).squeeze(-1), batch["y"])
        def save_weights(self, model, output_dir):
            os.makedirs(output_dir, exist_ok=True)
            save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                      os.path.join(output_dir, "model.safetensors"))
''')


@pytest.fixture()
def toy(tmp_path, monkeypatch):
    (tmp_path / "toy_spec.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    import toy_spec
    return importlib.reload(toy_spec)


def _optim():
    return OptimizerConfig(lr=0.05, warmup_steps=0, scheduler="constant", max_grad_norm=1.0)


def test_loss_drops_and_final_weights(toy, tmp_path):
    loop = LoopConfig(output_dir=str(tmp_path / "run"), max_steps=24, batch_size=8, grad_accum=2,
                      checkpoint_every=0, log_every=0, cpu=True)
    summary = Trainer(toy.ToySpec(), toy.ToyData(), loop, _optim()).train()
    assert summary["step"] == 24 and len(summary["losses"]) == 24
    assert loss_ratio(summary["losses"]) > 3.0
    assert [r["step"] for r in read_train_log(loop.output_dir)] == list(range(1, 25))
    assert os.path.isfile(tmp_path / "run" / "final" / "model.safetensors")


def test_saved_weights_get_ordinary_file_permissions(toy, tmp_path, monkeypatch):
    """safetensors >= 0.8 writes 0600 files; the final weights and the checkpoints get what the umask gives any new
    file (as their json neighbours), so others on a shared folder can load them."""
    monkeypatch.setattr(atomic, "_UMASK", 0o022)  # the usual umask, whatever this process's is
    loop = LoopConfig(output_dir=str(tmp_path / "run"), max_steps=2, batch_size=4, checkpoint_every=2,
                      log_every=0, cpu=True)
    Trainer(toy.ToySpec(), toy.ToyData(), loop, _optim()).train()
    weights = [os.path.join(root, n) for root, _, names in os.walk(tmp_path / "run") for n in names
               if n.endswith(".safetensors")]
    assert any("final" in w for w in weights) and any("checkpoint-2" in w for w in weights)
    assert {oct(os.stat(w).st_mode & 0o777) for w in weights} == {oct(0o644)}


def test_checkpoint_resume_continues(toy, tmp_path):
    out = str(tmp_path / "run")
    first = LoopConfig(output_dir=out, max_steps=6, batch_size=4, checkpoint_every=3, checkpoints_total_limit=1,
                       log_every=0, cpu=True)
    Trainer(toy.ToySpec(), toy.ToyData(), first, _optim()).train()
    assert [s for s, _ in list_checkpoints(out)] == [6]  # the limit removed checkpoint-3
    assert json.load(open(os.path.join(latest_checkpoint(out), "trainer_state.json")))["step"] == 6
    resumed = Trainer(toy.ToySpec(), toy.ToyData(), dataclass_replace(first, max_steps=9), _optim()).train()
    assert resumed["step"] == 9 and len(resumed["losses"]) == 3  # only steps 7..9 ran
    assert [r["step"] for r in read_train_log(out)] == list(range(1, 10))
    # a fresh run that starts from scratch reproduces step 7's loss only if the state was restored
    scratch = Trainer(toy.ToySpec(), toy.ToyData(),
                      LoopConfig(output_dir=str(tmp_path / "b"), max_steps=9, batch_size=4, checkpoint_every=0,
                                 log_every=0, cpu=True), _optim()).train()
    assert scratch["losses"][6] == pytest.approx(resumed["losses"][0], rel=1e-4)


def dataclass_replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


def test_errors(toy, tmp_path):
    spec = toy.ToySpec()
    for p in spec.model.parameters():
        p.requires_grad_(False)
    with pytest.raises(DataError, match="no trainable parameters"):
        Trainer(spec, toy.ToyData(), LoopConfig(output_dir=str(tmp_path), cpu=True), _optim()).train()
    with pytest.raises(DataError, match="zero2.json: DeepSpeed training needs CUDA"):
        Trainer(toy.ToySpec(), toy.ToyData(), LoopConfig(output_dir=str(tmp_path), cpu=True,
                                                         deepspeed_config="configs/accelerate/zero2.json"),
                _optim()).train()
    with pytest.raises(DataError, match="not a complete checkpoint"):
        Trainer(toy.ToySpec(), toy.ToyData(), LoopConfig(output_dir=str(tmp_path), resume=str(tmp_path), cpu=True),
                _optim()).train()


def test_two_processes_with_torchrun(toy, tmp_path):
    script = tmp_path / "run2.py"
    script.write_text(TOY + textwrap.dedent(f'''
        from data_tools.runtime.training import LoopConfig, OptimizerConfig, Trainer
        import json, os
        loop = LoopConfig(output_dir={str(tmp_path / "ddp")!r}, max_steps=4, batch_size=4, checkpoint_every=2,
                          log_every=0, cpu=True)
        s = Trainer(ToySpec(), ToyData(), loop, OptimizerConfig(lr=0.05, warmup_steps=0, scheduler="constant")).train()
        # one file per rank: two ranks printing to one shared pipe can interleave within a line
        with open(os.path.join({str(tmp_path)!r}, "summary_" + os.environ["RANK"] + ".json"), "w") as f:
            json.dump({{"world": s["world_size"], "step": s["step"], "type": s["distributed_type"]}}, f)
    '''))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.getcwd())
    result = subprocess.run([*torchrun(2), str(script)], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = [json.loads((tmp_path / f"summary_{rank}.json").read_text()) for rank in (0, 1)]
    assert all(s == {"world": 2, "step": 4, "type": "DistributedType.MULTI_CPU"} for s in summaries)
    assert [s for s, _ in list_checkpoints(str(tmp_path / "ddp"))] == [2, 4]


def test_cpu_runs_fall_back_to_fp32_unless_cpu_bf16(tmp_path):
    """mixed_precision=bf16 on a CPU run trains in fp32, unless cpu_bf16 keeps bf16 autocast (matmuls in bf16)."""
    script = textwrap.dedent('''
        import sys, torch
        from data_tools.runtime.training import LoopConfig, OptimizerConfig, build_accelerator
        loop = LoopConfig(output_dir=sys.argv[1], mixed_precision="bf16", cpu=True, cpu_bf16=sys.argv[2] == "1")
        acc = build_accelerator(loop, OptimizerConfig())

        class Probe(torch.nn.Linear):
            def forward(self, x):  # the dtype the matmul ran in (accelerate returns outputs in fp32)
                return {"matmul": str(super().forward(x).dtype)}

        model = acc.prepare(Probe(4, 4))
        print(acc.mixed_precision, model(torch.ones(2, 4))["matmul"], model.weight.dtype)
    ''')
    env = dict(os.environ, PYTHONPATH=os.getcwd(), OMP_NUM_THREADS="1")
    out = {flag: subprocess.run([sys.executable, "-c", script, str(tmp_path), flag], capture_output=True, text=True,
                                env=env, timeout=120) for flag in ("0", "1")}
    assert [r.returncode for r in out.values()] == [0, 0], out["1"].stderr[-2000:]
    assert out["0"].stdout.split() == ["no", "torch.float32", "torch.float32"]
    assert "requested without CUDA" in out["0"].stderr
    assert out["1"].stdout.split() == ["bf16", "torch.bfloat16", "torch.float32"]  # fp32 weights, bf16 autocast


def test_process_group_timeout_is_the_configured_one(tmp_path):
    """Rank 0's real-size validation outlasts torch's 10-minute collective timeout: the loop sets its own."""
    from datetime import timedelta

    from data_tools.runtime.training import build_accelerator

    accelerator = build_accelerator(LoopConfig(output_dir=str(tmp_path), cpu=True, process_group_timeout_s=5400),
                                    _optim())
    assert accelerator.init_handler.timeout == timedelta(seconds=5400)
    assert LoopConfig().process_group_timeout_s >= 3600
