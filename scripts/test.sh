#!/usr/bin/env bash
# Install the project with the dev and eval extras and run the test suite (pytest arguments pass through).
set -euo pipefail
source "$(dirname "$0")/_setup.sh" dev,eval
cd "$PAM_ROOT"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
python -m pytest "$@"
