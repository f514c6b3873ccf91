#!/usr/bin/env bash
# Re-measure the tests' learned quantities (tests/margins.py) over seeds and thread counts: one JSON line per
# quantity with its min, max, floor and margin. Arguments pass through (--seeds N, --threads 1,2, --only NAME).
set -euo pipefail
source "$(dirname "$0")/_help.sh" "$@"
source "$(dirname "$0")/_setup.sh" dev
cd "$PAM_ROOT"
python tests/margins.py "$@"
