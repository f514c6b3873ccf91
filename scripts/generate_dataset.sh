#!/usr/bin/env bash
# Make a labelled dataset: scenarios -> trajectories -> first frames and videos -> quality control -> index, card.
# Usage: bash scripts/generate_dataset.sh --config configs/dataset/toy.yaml --out DIR [--count N] [--shard i/n]
#        [--stage pose] [--set key=value ...]
#   --shard i/n makes every n-th sequence from i (default: the SLURM array task, else 0/1); run several shards at
#   once on one DIR, rerun a killed one to resume it. Each shard merges at its end; `python -m sim2real.dataset
#   merge DIR` does it any time. Results: DIR/index.json, DIR/dataset/ (accepted sequences, filelists), DIR/card.md.
#   On a SLURM cluster: sbatch --array=0-63 scripts/slurm/generate.sbatch configs/dataset/pam_release.yaml DIR
# Run from anywhere: a relative --out is taken from the current directory, a relative --config too when it is there
# (else from the checkout, as configs/dataset/toy.yaml); paths inside the configs are the checkout's.
set -euo pipefail
source "$(dirname "$0")/_help.sh" "$@"
source "$(dirname "$0")/_setup.sh" eval
here="$PWD"
from_here() {  # from_here OPTION PATH: PATH as the Python command (run in the checkout) must see it
  case "$2" in
    /*) echo "$2" ;;
    *) if [ "$1" = --out ] || [ -e "$here/$2" ]; then echo "$here/$2"; else echo "$2"; fi ;;
  esac
}
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out|--config) args+=("$1" "$(from_here "$1" "${2:?$1 needs a path}")"); shift 2 ;;
    --out=*|--config=*) args+=("${1%%=*}" "$(from_here "${1%%=*}" "${1#*=}")"); shift ;;
    *) args+=("$1"); shift ;;
  esac
done
cd "$PAM_ROOT"
python -m sim2real.dataset generate ${args[@]+"${args[@]}"}
