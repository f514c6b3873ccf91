#!/usr/bin/env bash
# Caption a converted dataset and rewrite its prompt filelists. Example: bash scripts/caption.sh --root data/dexycb_processed --model /models/llava-v1.6-mistral-7b-hf (or --template)
# All arguments pass through; see --help.
set -euo pipefail
source "$(dirname "$0")/_setup.sh" ""  # explicit: a sourced file would otherwise see our arguments
cd "$PAM_ROOT"
python -m data_tools.datasets.captions "$@"
