#!/usr/bin/env bash
# Renderer benchmark: 49 procedural frames at 480x720 with all maps -> frames/s (see docs/benchmarks.md).
# Usage: bash scripts/bench_render.sh [--device cuda] [--threads 2] [other args of python -m sim2real.bench_render]
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
cd "$PAM_ROOT"
python -m sim2real.bench_render "$@"
