#!/usr/bin/env bash
# oakink2 evaluation: generate with the motion stage (shardable, resumable), then the metrics and results table.
# Usage: bash scripts/evaluate_oakink2.sh [--set key=value ...] [--shard i/n --stage generate|metrics|all]
# Config: ${PAM_EVAL_CONFIG:-configs/eval/oakink2.yaml}; see docs/evaluation.md.
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
cd "$PAM_ROOT"
python -m motion_gen.evaluate --config "${PAM_EVAL_CONFIG:-configs/eval/oakink2.yaml}" "$@"
