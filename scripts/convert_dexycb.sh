#!/usr/bin/env bash
# Convert the official DexYCB download (per-view clips, s0 filelists, prompts). Example: bash scripts/convert_dexycb.sh --root /data/dex-ycb --out data/dexycb_processed --num-frames 49 --size 480x720
# All arguments pass through; see --help.
set -euo pipefail
source "$(dirname "$0")/_setup.sh" ""  # explicit: a sourced file would otherwise see our arguments
cd "$PAM_ROOT"
python -m data_tools.datasets.dexycb "$@"
