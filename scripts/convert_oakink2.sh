#!/usr/bin/env bash
# Convert the official OakInk2 download (49-frame clips, hand keypoints/seg from MANO, filelists). Example: bash scripts/convert_oakink2.sh --root /data/OakInk-v2 --out data/oakink2_processed --mano-dir assets/mano_v1_2/models
# All arguments pass through; see --help.
set -euo pipefail
source "$(dirname "$0")/_setup.sh" ""  # explicit: a sourced file would otherwise see our arguments
cd "$PAM_ROOT"
python -m data_tools.datasets.oakink2 "$@"
