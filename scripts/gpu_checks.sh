#!/usr/bin/env bash
# Everything to measure on a lent GPU machine, in one go; logs, JSON figures and summary.md in OUT
# (default outputs/gpu_checks/), to be copied into docs/benchmarks.md ("GPU"). Budget, under 9 min on a bare
# H100/H200 machine (each step is stopped at its budget by `timeout`; install is before the first step):
#   install (scripts/_setup.sh gpu, once: torch, the project, DeepSpeed)                       210 s
#   1. preflight: python -m sim2real.preflight                                                 15 s
#   2. motion_real_gc: one training step of CogVideoX-5b-I2V + condition branch (random bf16 weights built on the
#      GPU, 49x480x720, batch 1), gradient checkpointing, torch AdamW                          45 s
#   3. motion_real_no_gc: the same without gradient checkpointing (may run out of memory)      20 s
#   4. motion_real_zero2_offload: DeepSpeed ZeRO-2, optimizer on the CPU (builds cpu_adam)      80 s
#   5. appearance_real, appearance_real_gc: FLUX.1-dev sizes, 480x720, without / with checkpointing   20 + 20 s
#   6. sim2real_real_size: one sim2real generation at 49x480x720 with random real-size weights
#      (configs/sim2real/random_real_size.yaml: FLUX.1-dev + branches, then CogVideoX-5b-I2V + branch, T5-XXL),
#      2 denoising steps per stage: time per stage and per video                              55 s
#   7. motion_options: each generation option against plain bf16 (motion_gen.bench_options, 2 steps a video,
#      compile last: its JSON keeps the options measured before a stop)                        70 s
#   total 535 s (8 min 55 s) when every step stops at its budget (on SIGTERM a step writes its JSON and ends after
#   the running GPU operation); one that has not ended 5 s later is killed (40 s more at most). The install is
#   not stopped (nothing runs without it): 210 s is its expected time on a bare machine (pip wheels, no compiling)
# Steps 2-7 run through python -m sim2real.gpu_step: peak GPU memory (torch.cuda.max_memory_allocated) beside the
# preflight's estimate for the same configuration, in OUT/<step>.step.json and in the summary's columns.
# The environment is set up once here; the steps call Python directly (no second _setup.sh, no pip).
# Every step runs even when an earlier one failed; the exit status is the number of failed steps.
# Usage: bash scripts/gpu_checks.sh [OUT]
set -uo pipefail
source "$(dirname "$0")/_help.sh" "$@"
source "$(dirname "$0")/_setup.sh" gpu
cd "$PAM_ROOT"
source "$(dirname "$0")/_steps.sh"   # after _setup.sh: its set -e off, every step runs
out="${1:-outputs/gpu_checks}"
steps_begin "$out"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
motion="motion:configs/motion/random_real_size.yaml"
appearance="appearance:configs/appearance/random_real_size.yaml"
gpu_step=(python -m sim2real.gpu_step --require-cuda)
within() { timeout --kill-after=5 "$@"; }  # within SECONDS COMMAND...: stopped at its budget (exit 124)
step preflight within 15 python -m sim2real.preflight
step motion_real_gc within 45 "${gpu_step[@]}" --estimate "$motion:train" -- \
  motion_gen.bench --real --out "$out/motion_real_gc.json"
step motion_real_no_gc within 20 "${gpu_step[@]}" --estimate "$motion:train" -- \
  motion_gen.bench --real --no-gradient-checkpointing --out "$out/motion_real_no_gc.json"
step motion_real_zero2_offload within 80 "${gpu_step[@]}" --estimate "$motion:train" --zero2-offload -- \
  motion_gen.bench --real --zero2-offload --out "$out/motion_real_zero2_offload.json"
step appearance_real within 20 "${gpu_step[@]}" --estimate "$appearance:train" -- \
  appearance_gen.bench --real --warmup 1 --repeats 2 --out "$out/appearance"
step appearance_real_gc within 20 "${gpu_step[@]}" --estimate "$appearance:train" -- \
  appearance_gen.bench --real --gradient-checkpointing --warmup 1 --repeats 2 --out "$out/appearance"
step sim2real_real_size within 55 "${gpu_step[@]}" --estimate "$appearance:infer" --estimate "$motion:infer" -- \
  sim2real.demo --out "$out/sim2real" --config configs/sim2real/random_real_size.yaml --frames 49 --height 480 \
  --width 720 --set appearance_steps=2 motion_steps=2
step motion_options within 70 "${gpu_step[@]}" --estimate "$motion:infer" -- \
  motion_gen.bench_options --steps 2 --out "$out/motion_options.json"
{
  echo; echo "Figures (JSON):"
  for f in "$out"/*.json "$out"/appearance/*.json; do [ -f "$f" ] && { echo "- $f"; sed 's/^/    /' "$f"; }; done
  for f in "$out"/sim2real/sim2real/*/manifest.json; do
    [ -f "$f" ] && python -c 'import json,sys; m=json.load(open(sys.argv[1])); print("- sim2real timings", sys.argv[1], json.dumps(m.get("timings")))' "$f"
  done
} >> "$out/summary.md"
steps_end
