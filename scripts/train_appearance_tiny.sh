#!/usr/bin/env bash
# Tiny random appearance model trained on CPU for a few steps on a one-clip dataset built from the DexYCB sample.
# Usage: scripts/train_appearance_tiny.sh [--sample-dataset FOLDER] [--set k=v ...]
# Launcher options as in train_appearance.sh (--gpus N, --accelerate-config FILE, multi-machine); default: one CPU
# process (configs/accelerate/cpu.yaml).
set -euo pipefail
source "$(dirname "$0")/_setup.sh" ""  # explicit: a bare `source` would pass our arguments on
cd "$PAM_ROOT"
sample="$(python -c 'from data_tools.io.cli import shared_samples_dir as s; print(s() or "")')"
args=()
if [ -n "$sample" ] && [[ " $* " != *" --sample-dataset "* ]]; then args=(--sample-dataset "$sample"); fi
python -m data_tools.runtime.launch --default-accelerate-config configs/accelerate/cpu.yaml \
  appearance_gen.train --config configs/appearance/tiny.yaml "${args[@]}" "$@"
