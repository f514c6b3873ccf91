"""Training launch: the accelerate command per machine (GPU count, config, multi-machine options), the SLURM batch
script's per-node commands from a fake SLURM environment, and a real 2-machine x 1-process gloo run on localhost."""
import argparse
import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from data_tools.errors import DataError
from data_tools.runtime.launch import launch_command, launch_parser

ROOT = Path(__file__).resolve().parents[1]


def _args(argv, default_config="configs/accelerate/deepspeed_zero2.yaml", env=None):
    args, rest = launch_parser(default_config, env or {}).parse_known_args(argv)
    return args, rest


def _option(cmd, name):
    return cmd[cmd.index(name) + 1]


def test_launch_options_anywhere_and_gpu_count(monkeypatch):
    monkeypatch.chdir(ROOT)
    args, rest = _args(["--config", "c.yaml", "--gpus", "2", "train.loop.max_steps=5", "--set", "a=1"])
    cmd = launch_command("motion_gen.train", args, rest)
    assert _option(cmd, "--num_processes") == "2"  # not the config's 4
    assert cmd[-6:] == ["-m", "motion_gen.train", "--config", "c.yaml", "train.loop.max_steps=5", "--set", "a=1"][-6:]
    assert "--num_machines" not in cmd
    # default: every visible GPU; none visible with a GPU config is a clear error
    args, rest = _args([])
    assert _option(launch_command("m", args, rest, gpus_visible=3), "--num_processes") == "3"
    with pytest.raises(DataError, match="no GPU is visible"):
        launch_command("m", args, rest, gpus_visible=0)
    # a CPU config runs one process without asking for GPUs; the env var gives the count too
    args, rest = _args(["--accelerate-config", "configs/accelerate/cpu.yaml"])
    assert _option(launch_command("m", args, rest, gpus_visible=0), "--num_processes") == "1"
    args, rest = _args([], env={"GPUS": "5", "ACCELERATE_CONFIG": "configs/accelerate/multi_gpu.yaml"})
    cmd = launch_command("m", args, rest, gpus_visible=8)
    assert _option(cmd, "--num_processes") == "5" and _option(cmd, "--config_file").endswith("multi_gpu.yaml")
    # a one-process config asked for two GPUs becomes DDP over all of them
    args, rest = _args(["--gpus", "2", "--accelerate-config", "configs/accelerate/single_gpu.yaml"])
    cmd = launch_command("m", args, rest)
    assert "--multi_gpu" in cmd and _option(cmd, "--gpu_ids") == "all"


def test_multi_machine_options(monkeypatch):
    monkeypatch.chdir(ROOT)
    args, rest = _args(["--gpus", "8", "--num-machines", "3", "--machine-rank", "2", "--main-process-ip", "n01"])
    cmd = launch_command("motion_gen.train", args, rest)
    assert _option(cmd, "--num_processes") == "24"  # accelerate counts processes over all machines
    assert (_option(cmd, "--num_machines"), _option(cmd, "--machine_rank")) == ("3", "2")
    assert (_option(cmd, "--main_process_ip"), _option(cmd, "--main_process_port")) == ("n01", "29500")
    assert _option(cmd, "--deepspeed_multinode_launcher") == "standard"  # torchrun per node, not pdsh
    for bad, match in ((["--num-machines", "2", "--machine-rank", "2", "--main-process-ip", "n"], "machine-rank"),
                       (["--num-machines", "2"], "main-process-ip")):
        args, rest = _args(["--gpus", "1", *bad])
        with pytest.raises(DataError, match=match):
            launch_command("m", args, rest)


def _fake_slurm_bin(tmp_path: Path, hosts) -> Path:
    """``scontrol show hostnames`` and an ``srun`` that runs its command once per node, as SLURM would."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text("#!/usr/bin/env bash\n" + "".join(f"echo {h}\n" for h in hosts))
    (bin_dir / "srun").write_text(
        f"#!/usr/bin/env bash\nwhile [[ \"$1\" == --* ]]; do echo \"$1\" >> {tmp_path}/srun_options; shift; done\n"
        f"for i in $(seq 0 $(({len(hosts)} - 1))); do SLURM_NODEID=$i SLURM_PROCID=$i \"$@\" || exit 1; done\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return bin_dir


def test_sbatch_builds_one_launch_command_per_node(tmp_path):
    bin_dir = _fake_slurm_bin(tmp_path, ["gpu-a17", "gpu-a18"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM", "VIRTUAL_ENV", "CONDA"))}
    env.update(PATH=f"{bin_dir}:{Path(sys.executable).parent}:{env['PATH']}", PAM_VENV="none",
               PAM_LAUNCH_DRY_RUN="1", GPUS="4", SLURM_JOB_NODELIST="gpu-a[17-18]", SLURM_NNODES="2",
               SLURM_JOB_ID="4321", SLURM_SUBMIT_DIR=str(ROOT), SLURM_CPUS_PER_TASK="32")
    out = subprocess.run(["bash", str(ROOT / "scripts/slurm/train.sbatch"), "scripts/train_motion_dexycb.sh",
                          "train.loop.max_steps=10"], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    commands = [shlex.split(line) for line in out.stdout.splitlines() if "accelerate.commands.launch" in line]
    assert len(commands) == 2, out.stdout
    # recent SLURM does not pass sbatch's --cpus-per-task on to srun: the script must
    assert "--cpus-per-task=32" in (tmp_path / "srun_options").read_text().split()
    for rank, cmd in enumerate(commands):
        assert _option(cmd, "--machine_rank") == str(rank)
        assert _option(cmd, "--num_machines") == "2" and _option(cmd, "--num_processes") == "8"
        assert _option(cmd, "--main_process_ip") == "gpu-a17" and _option(cmd, "--main_process_port") == "24321"
        assert _option(cmd, "--config_file") == "configs/accelerate/deepspeed_zero2.yaml"
        assert cmd[-5:] == ["motion_gen.train", "--config", "configs/motion/dexycb.yaml", "model.transformer=null",
                            "train.loop.max_steps=10"]


ALLREDUCE = """
import json, sys, torch, torch.distributed as dist
from accelerate import PartialState
state = PartialState(cpu=True)  # as the trainers with train.loop.cpu=true
value = torch.tensor([state.process_index + 1.0])
dist.all_reduce(value)
json.dump({"rank": state.process_index, "world": state.num_processes, "backend": dist.get_backend(),
           "sum": value.item()}, open(sys.argv[1] + f"/rank{state.process_index}.json", "w"))
dist.destroy_process_group()  # as the trainers do: exiting with a live gloo group can abort and hang the peer
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_machines_one_process_each_gloo(tmp_path):
    """Both "machines" run the launcher's command for their rank; they form one process group over localhost."""
    script = tmp_path / "allreduce.py"
    script.write_text(ALLREDUCE)
    port = str(_free_port())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    procs = []
    for rank in (0, 1):
        argv = ["--gpus", "1", "--accelerate-config", "configs/accelerate/multi_gpu.yaml", "--num-machines", "2",
                "--machine-rank", str(rank), "--main-process-ip", "127.0.0.1", "--main-process-port", port]
        cmd = launch_command(str(script), argparse.Namespace(**vars(_args(argv)[0])), [str(tmp_path)])
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    logs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in results] == [2, 2] and {r["backend"] for r in results} == {"gloo"}
    assert [r["sum"] for r in results] == [3.0, 3.0]  # 1 + 2 from the two machines


PLUGIN = """
import json, sys, torch
torch.cuda.is_available = lambda: True   # the plugin is built before any GPU is touched
from data_tools.runtime.training import LoopConfig, OptimizerConfig, deepspeed_plugin
plugin = deepspeed_plugin(LoopConfig(output_dir=sys.argv[1], batch_size=4, grad_accum=4), OptimizerConfig())
print(json.dumps({"stage": plugin.zero_stage, "micro": plugin.deepspeed_config["train_micro_batch_size_per_gpu"]}))
"""


@pytest.mark.parametrize("config", ["configs/accelerate/deepspeed_zero2.yaml"])
def test_accelerate_launch_deepspeed_config_builds_the_plugin(config, tmp_path):
    """``accelerate launch --config_file`` with the DeepSpeed config: the environment its launcher builds (accelerate's
    own parser, validation and ``prepare_deepspeed_cmd_env``, as ``launch_command`` does) lets the training
    process construct the DeepSpeedPlugin. A ``mixed_precision`` beside ``deepspeed_config_file`` makes it raise."""
    pytest.importorskip("deepspeed")
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env

    args = launch_command_parser().parse_args(["--config_file", config, "--num_processes", "2", "train.py"])
    args, defaults, mixed_precision_from_config = _validate_launch_command(args)
    assert args.use_deepspeed
    fields = list(defaults.deepspeed_config.keys()) if defaults else []   # as accelerate's launch_command
    if mixed_precision_from_config:
        fields.append("mixed_precision")
    args.deepspeed_fields_from_accelerate_config = ",".join(fields)
    _, env = prepare_deepspeed_cmd_env(args)
    env = {**env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", PLUGIN, str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-1500:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"stage": 2, "micro": 4}
