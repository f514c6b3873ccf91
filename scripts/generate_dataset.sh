#!/usr/bin/env bash
# Make a labelled dataset: scenarios -> trajectories -> first frames and videos -> quality control -> index, card.
# Usage: bash scripts/generate_dataset.sh --config configs/dataset/toy.yaml --out DIR [--count N] [--shard i/n]
#        [--stage pose] [--set key=value ...]
#   --shard i/n makes every n-th sequence from i (default: the SLURM array task, else 0/1); run several shards at
#   once on one DIR, rerun a killed one to resume it. Each shard merges at its end; `python -m sim2real.dataset
#   merge DIR` does it any time. Results: DIR/index.json, DIR/dataset/ (accepted sequences, filelists), DIR/card.md.
#   On a SLURM cluster: sbatch --array=0-63 scripts/slurm/generate.sbatch configs/dataset/pam_release.yaml DIR
set -euo pipefail
source "$(dirname "$0")/_help.sh" "$@"
source "$(dirname "$0")/_setup.sh" eval
cd "$PAM_ROOT"
python -m sim2real.dataset generate "$@"
