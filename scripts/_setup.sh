# Sourced by the entry scripts: create .venv if missing and install the project (fast when nothing changed).
# Usage: source scripts/_setup.sh [extra]   (extra: dev, gpu, eval or a comma list, e.g. "dev,eval"; PAM_EXTRA in
# the environment also works). eval also installs mediapipe without its dependencies (see pyproject.toml).
# A bare `source` sees the calling script's own arguments as $1, so only the known extras are taken from it.
set -euo pipefail
PAM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PAM_VENV="${PAM_VENV:-$PAM_ROOT/.venv}"
if [[ "${1:-}" =~ ^(dev|gpu|eval)(,(dev|gpu|eval))*$ ]]; then PAM_EXTRA="$1"; else PAM_EXTRA="${PAM_EXTRA:-}"; fi
PYTHON="${PYTHON:-python3}"
if [ ! -x "$PAM_VENV/bin/python" ]; then
  echo "[setup] creating virtual environment in $PAM_VENV"
  "$PYTHON" -m venv "$PAM_VENV"
fi
# shellcheck disable=SC1091
source "$PAM_VENV/bin/activate"
stamp="$PAM_VENV/.pam-install-${PAM_EXTRA:-base}"
if [ ! -f "$stamp" ] || [ "$PAM_ROOT/pyproject.toml" -nt "$stamp" ]; then
  echo "[setup] installing torch==2.13.0 first (CPU build on machines without CUDA), then the project${PAM_EXTRA:+ [$PAM_EXTRA]}"
  python -m pip install --quiet --upgrade pip
  python -m pip install --quiet "torch==2.13.0"
  if [ -n "$PAM_EXTRA" ]; then target=".[$PAM_EXTRA]"; else target="."; fi
  (cd "$PAM_ROOT" && DS_BUILD_OPS=0 python -m pip install --quiet -e "$target")
  if [[ ",$PAM_EXTRA," == *,eval,* ]]; then python -m pip install --quiet --no-deps "mediapipe==0.10.14"; fi
  touch "$stamp"
fi
export PYTHONPATH="$PAM_ROOT${PYTHONPATH:+:$PYTHONPATH}"
