#!/usr/bin/env bash
# Converter throughput on synthetic full-resolution DexYCB (640x480, 72 frames) and OakInk2 (848x480, 49 frames)
# inputs; prints a markdown table for docs/benchmarks.md. Arguments pass through (see --help).
set -euo pipefail
source "$(dirname "$0")/_setup.sh" ""  # explicit: a sourced file would otherwise see our arguments
cd "$PAM_ROOT"
python -m data_tools.datasets.bench "$@"
