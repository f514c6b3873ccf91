#!/usr/bin/env bash
# sim2real evaluation: generate with the motion stage (shardable, resumable), then the metrics and results table.
# Usage: bash scripts/evaluate_sim2real.sh [--set key=value ...] [--shard i/n --stage generate|metrics|all]
#        bash scripts/evaluate_sim2real.sh --exported DIR [--split train] [--set key=value ...]
#          pose fidelity of an exported dataset (sim2real.run --export-dataset DIR): the hand-pose estimator on
#          each generated video vs its exported labels; results.md/results.json in DIR/eval (needs the eval extra)
# Config: ${PAM_EVAL_CONFIG:-configs/eval/sim2real.yaml} (--exported: configs/eval/pose_fidelity.yaml); docs/evaluation.md.
set -euo pipefail
if [ "${1:-}" = "--exported" ]; then
  [ $# -ge 2 ] || { echo "usage: $0 --exported DIR [--split SPLIT] [--set key=value ...]" >&2; exit 2; }
  dir="$2"; shift 2
  split=train
  if [ "${1:-}" = "--split" ]; then split="$2"; shift 2; fi
  source "$(dirname "$0")/_setup.sh" eval
  cd "$PAM_ROOT"
  python -m data_tools.metrics.evaluation --generated "$dir/filelists/$split/video.txt" --root "$dir" \
    --label "$split" --config "${PAM_EVAL_CONFIG:-configs/eval/pose_fidelity.yaml}" --output "$dir/eval" \
    --title "Sim-to-real pose fidelity" "$@"
  exit
fi
source "$(dirname "$0")/_setup.sh"
cd "$PAM_ROOT"
python -m motion_gen.evaluate --config "${PAM_EVAL_CONFIG:-configs/eval/sim2real.yaml}" "$@"
