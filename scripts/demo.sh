#!/usr/bin/env bash
# Full sim-to-real demo on the built-in procedural sample (procedural hand grasps a built-in object -> CPU render
# -> tiny appearance -> tiny motion); outputs under outputs/demo/.
# Usage: bash scripts/demo.sh [extra args for python -m sim2real.demo, see --help]
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
cd "$PAM_ROOT"
python -m sim2real.demo --out outputs/demo "$@"
