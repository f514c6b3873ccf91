"""The ``accelerate launch`` command of a training script, the same for every trainer.

Launcher options may stand anywhere among the training arguments; everything else is passed on to the module::

    python -m data_tools.runtime.launch motion_gen.train --config configs/motion/dexycb.yaml \\
        [--gpus N] [--accelerate-config FILE] \\
        [--num-machines M --machine-rank R --main-process-ip HOST --main-process-port PORT] [--dry-run] [k=v ...]

- ``--gpus``: processes on this machine (default: every visible GPU; 1 with a CPU accelerate config).
  ``accelerate``'s ``--num_processes`` is the total, ``gpus x num_machines``.
- Multi-machine runs start one launcher per machine (``scripts/slurm/*.sbatch``); DeepSpeed then uses its
  ``standard`` multi-node launcher (torchrun on each machine) instead of pdsh.
- Environment defaults: ``GPUS`` (or ``NUM_PROCESSES``), ``ACCELERATE_CONFIG``, ``NUM_MACHINES``, ``MACHINE_RANK``,
  ``MAIN_PROCESS_IP``, ``MAIN_PROCESS_PORT``; ``PAM_LAUNCH_DRY_RUN=1`` prints the command instead of running it.
"""
from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from typing import Mapping, Sequence

import yaml

from data_tools.errors import DataError

logger = logging.getLogger(__name__)
DEFAULT_PORT = 29500


def launch_parser(default_config: str | None = None, env: Mapping[str, str] = os.environ) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False, add_help=False)
    parser.add_argument("--gpus", type=int, default=_int(env.get("GPUS") or env.get("NUM_PROCESSES")),
                        help="processes (GPUs) on this machine; default: all visible GPUs")
    parser.add_argument("--accelerate-config", default=env.get("ACCELERATE_CONFIG") or default_config,
                        help=f"accelerate config YAML (default: {default_config})")
    parser.add_argument("--num-machines", type=int, default=_int(env.get("NUM_MACHINES")) or 1)
    parser.add_argument("--machine-rank", type=int, default=_int(env.get("MACHINE_RANK")) or 0)
    parser.add_argument("--main-process-ip", default=env.get("MAIN_PROCESS_IP"),
                        help="address of machine rank 0 (needed with --num-machines > 1)")
    parser.add_argument("--main-process-port", type=int, default=_int(env.get("MAIN_PROCESS_PORT")) or DEFAULT_PORT)
    parser.add_argument("--dry-run", action="store_true", default=env.get("PAM_LAUNCH_DRY_RUN") == "1",
                        help="print the command instead of running it")
    return parser


def _int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count()


def launch_command(module: str, args: argparse.Namespace, module_args: Sequence[str],
                   gpus_visible: int | None = None) -> list[str]:
    """``[python, -m, accelerate.commands.launch, ...]`` for this machine; DataError on an impossible set-up."""
    config_path = args.accelerate_config
    if not config_path or not os.path.isfile(config_path):
        raise DataError(config_path, "accelerate config does not exist")
    with open(config_path) as f:
        config = yaml.safe_load(f) or {}
    on_cpu = bool(config.get("use_cpu"))
    gpus = args.gpus
    if gpus is None:
        gpus = 1 if on_cpu else (visible_gpus() if gpus_visible is None else gpus_visible)
    if gpus < 1:
        raise DataError(config_path, "no GPU is visible on this machine (run bash scripts/check_node.sh); on CPU "
                                     "use --accelerate-config configs/accelerate/cpu.yaml")
    if args.num_machines < 1 or not 0 <= args.machine_rank < args.num_machines:
        raise DataError(None, f"--machine-rank {args.machine_rank} must lie in [0, {args.num_machines})")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config_path,
           "--num_processes", str(gpus * args.num_machines)]
    distributed = config.get("distributed_type")
    if distributed == "NO" and gpus * args.num_machines > 1:
        cmd += ["--multi_gpu", "--gpu_ids", "all"]  # a one-process config asked for several: DDP
    if args.num_machines > 1:
        if not args.main_process_ip:
            raise DataError(None, "--num-machines > 1 needs --main-process-ip (the address of machine rank 0)")
        cmd += ["--num_machines", str(args.num_machines), "--machine_rank", str(args.machine_rank),
                "--main_process_ip", args.main_process_ip, "--main_process_port", str(args.main_process_port)]
        if distributed == "DEEPSPEED":
            cmd += ["--deepspeed_multinode_launcher", "standard"]
    if module.endswith(".py"):
        return cmd + [module, *module_args]
    return cmd + ["-m", module, *module_args]


def main(argv: Sequence[str] | None = None) -> int:
    from data_tools.io.cli import setup_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--default-accelerate-config")
    known, rest = pre.parse_known_args(argv)
    if not rest or rest[0] in ("-h", "--help"):
        launch_parser(known.default_accelerate_config).print_help()
        return 0
    module, rest = rest[0], rest[1:]
    if "-h" in rest or "--help" in rest:  # the launcher's options, then the trainer's own help
        launch_parser(known.default_accelerate_config).print_help()
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, "-m", module, "--help"])
    args, module_args = launch_parser(known.default_accelerate_config).parse_known_args(rest)
    setup_logging()
    cmd = launch_command(module, args, module_args)  # DataError: one line and exit 2 through run_cli
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    logger.info("%s", shlex.join(cmd))
    os.execv(sys.executable, cmd)
    return 0  # not reached


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
