"""One step of ``scripts/gpu_checks.sh``: run a Python module in this process and record its peak GPU memory
next to the preflight's estimate for the same configuration.

    python -m sim2real.gpu_step --json OUT/step.json --require-cuda \\
        --estimate motion:configs/motion/random_real_size.yaml:train -- motion_gen.bench --real

The JSON (default ``$STEP_JSON``, which ``scripts/_steps.sh`` sets per step) holds the module's exit status, wall
seconds, ``peak_memory_gib`` (``torch.cuda.max_memory_allocated`` over the whole step; null without CUDA) and
``estimate_gib`` (the sum of the ``--estimate`` lines, GiB per GPU, from ``sim2real.preflight``) with the
parameter counts and allowances behind it. A step stopped by ``timeout`` (SIGTERM) still writes its JSON.
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import runpy
import signal
import sys
import time
import warnings

import torch

from data_tools.errors import DataError
from data_tools.io.atomic import write_json
from data_tools.io.cli import positive_int, setup_logging

logger = logging.getLogger("sim2real.gpu_step")
STAGES = ("motion", "appearance")
MODES = ("train", "infer")


def parse_estimate(text: str) -> tuple[str, str, str]:
    """``STAGE:CONFIG:MODE`` -> its three parts (DataError naming what is wrong)."""
    parts = text.split(":")
    if len(parts) != 3 or parts[0] not in STAGES or parts[2] not in MODES:
        raise DataError(None, f"--estimate {text!r}: expected STAGE:CONFIG:MODE with STAGE in {STAGES} and MODE in "
                              f"{MODES}, e.g. motion:configs/motion/random_real_size.yaml:train")
    return parts[0], parts[1], parts[2]


def estimate(specs: list[str], batch: int, optimizer_offload: bool) -> dict:
    """The preflight's estimate on one GPU for each ``STAGE:CONFIG:MODE`` and their sum (GiB)."""
    from sim2real.preflight import memory_estimate

    lines, total = [], 0.0
    for spec in specs:
        stage, path, mode = parse_estimate(spec)
        if stage == "motion":
            from motion_gen.config import load_motion_config as load
        else:
            from appearance_gen.config import load_appearance_config as load
        found = memory_estimate(stage, load(path), mode, 1, optimizer_offload, batch, optimizer_offload)
        total += found.gib
        lines.append({"estimate": spec, "gib": round(found.gib, 2), "batch": found.batch,
                      "params_b": {k: round(v / 1e9, 3) for k, v in found.params.items()},
                      "allowances_gib": {k: round(v, 2) for k, v in found.extras.items()}})
    return {"estimate_gib": round(total, 2) if specs else None, "estimates": lines,
            "estimate_optimizer_offload": optimizer_offload}


def run_module(module: str, args: list[str]) -> int:
    """``python -m module args`` in this process; its exit status (1 on an uncaught exception)."""
    argv = sys.argv
    sys.argv = [module, *args]
    # the estimate may have imported the module already (motion_gen.bench): it runs again as __main__, as intended
    warnings.filterwarnings("ignore", message=".*found in sys.modules", category=RuntimeWarning)
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception:  # noqa: BLE001 - the step's failure is recorded, not raised
        logger.exception("%s failed", module)
        return 1
    finally:
        sys.argv = argv


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=os.environ.get("STEP_JSON"), help="where the step's JSON goes "
                        "(default: $STEP_JSON)")
    parser.add_argument("--estimate", action="append", default=[], metavar="STAGE:CONFIG:MODE",
                        help="a preflight estimate to record beside the peak (repeatable: summed)")
    parser.add_argument("--batch", type=positive_int, default=1, help="micro-batch of a train estimate")
    parser.add_argument("--zero2-offload", action="store_true",
                        help="estimate with the optimizer states on the CPU (DeepSpeed ZeRO-2 offload)")
    parser.add_argument("--require-cuda", action="store_true", help="fail at once (exit 2) without a CUDA GPU")
    parser.add_argument("module", help="the Python module to run, then its arguments (after --)")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if not args.json:
        parser.error("--json is required when $STEP_JSON is not set")
    try:
        found = importlib.util.find_spec(args.module)
    except ModuleNotFoundError:
        found = None
    if found is None:
        raise DataError(None, f"no Python module {args.module!r} to run")
    setup_logging(False)
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))  # `timeout` ends the step: write the JSON
    cuda = torch.cuda.is_available()
    module_args = args.args[1:] if args.args[:1] == ["--"] else args.args
    record = {"module": args.module, "args": module_args, "device": torch.cuda.get_device_name() if cuda else "cpu",
              "exit": None, "wall_s": None, "peak_memory_gib": None}
    start = time.perf_counter()
    peak = PeakMemory()
    try:
        try:   # an estimate that cannot be made is recorded; the measurement still runs
            record.update(estimate(args.estimate, args.batch, args.zero2_offload))
        except (DataError, ValueError, OSError) as exc:
            record["estimate_error"] = str(exc)[:500]
            logger.error("estimate: %s", exc)
        if args.require_cuda and not cuda:
            record["error"] = "no CUDA GPU: this step measures GPU time and memory"
            logger.error(record["error"])
            record["exit"] = 2
        else:
            with peak:
                record["exit"] = run_module(args.module, module_args)
    except SystemExit as exc:  # SIGTERM from timeout
        record["exit"] = exc.code if isinstance(exc.code, int) else 1
    finally:
        record["wall_s"] = round(time.perf_counter() - start, 1)
        if cuda:
            record["peak_memory_gib"] = round(peak.gib(), 2)
        write_json(args.json, record)
        signal.signal(signal.SIGTERM, previous)
    return record["exit"]


class PeakMemory:
    """The peak of ``torch.cuda.max_memory_allocated`` over a whole block, also when the code inside resets the
    peak counter (the benches do, before their timed part): each reset first adds the peak so far."""

    def __init__(self):
        self.peak = 0

    def _note(self) -> None:
        if torch.cuda.is_available():
            self.peak = max(self.peak, torch.cuda.max_memory_allocated())

    def __enter__(self):
        self._reset = torch.cuda.reset_peak_memory_stats

        def reset(*args, **kwargs):
            self._note()
            return self._reset(*args, **kwargs)

        torch.cuda.reset_peak_memory_stats = reset
        if torch.cuda.is_available():
            self._reset()
        return self

    def __exit__(self, *exc):
        self._note()
        torch.cuda.reset_peak_memory_stats = self._reset
        return False

    def gib(self) -> float:
        self._note()
        return self.peak / 2**30


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
