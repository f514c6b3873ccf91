#!/usr/bin/env bash
# Render a trajectory (.npz/.json, see docs/pose.md) into a sim folder (rendered_{map}_{i}.png) and condition mp4s.
# Usage: bash scripts/render_trajectory.sh TRAJECTORY --out DIR [--config configs/pose/render.yaml] [--mano MANO_RIGHT.pkl]
#        (make a trajectory first with: python -m data_tools.pose.trajectory generate --out traj.npz)
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
cd "$PAM_ROOT"
python -m data_tools.pose.render "$@"
