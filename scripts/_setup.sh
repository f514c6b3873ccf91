# Sourced by the entry scripts: choose the Python environment and make sure the project's requirements are there.
# Usage: source scripts/_setup.sh [extra]   (extra: dev, gpu, eval or a comma list, e.g. "dev,eval"; PAM_EXTRA in
# the environment also works). eval also installs mediapipe without its dependencies (see pyproject.toml).
# A bare `source` sees the calling script's own arguments as $1, so only the known extras are taken from it.
#
# Which environment:
#   - an active one: a virtualenv (VIRTUAL_ENV), a conda env other than base (CONDA_PREFIX), or any `python` on PATH
#     with PAM_VENV=none. Nothing is created or installed there (unless PAM_INSTALL=1); what is missing is listed
#     in one message and the script stops.
#   - otherwise PAM_VENV (default: .venv in the checkout), created and installed on first use. A lock keeps
#     parallel first runs (e.g. four evaluation shards) from installing at the same time.
# Which torch (managed venv, or PAM_INSTALL=1): PAM_TORCH_VERSION if set; else 2.10.0 (CUDA 12.8 build, runs on
# CUDA 12.x drivers) when nvidia-smi reports a driver older than 580; else 2.13.0 (CPU machines, CUDA 13 drivers).
# PAM_TORCH_INDEX_URL installs torch from another wheel index (e.g. a CUDA 12.1 build).
set -euo pipefail
PAM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ "${1:-}" =~ ^(dev|gpu|eval)(,(dev|gpu|eval))*$ ]]; then PAM_EXTRA="$1"; else PAM_EXTRA="${PAM_EXTRA:-}"; fi
PAM_NO_DEPS=()  # installed with --no-deps after the project, and checked like its requirements
if [[ ",$PAM_EXTRA," == *,eval,* ]]; then PAM_NO_DEPS+=("mediapipe==0.10.14"); fi
export PYTHONPATH="$PAM_ROOT${PYTHONPATH:+:$PYTHONPATH}"

pam_torch_version() {
  if [ -n "${PAM_TORCH_VERSION:-}" ]; then echo "$PAM_TORCH_VERSION"; return; fi
  local driver
  driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n1 || true)"
  if [ -n "$driver" ] && [ "${driver%%.*}" -lt 580 ] 2>/dev/null; then echo 2.10.0; else echo 2.13.0; fi
}

pam_install() {  # install torch, then the project with its extras, into the environment of `python`
  local torch target
  torch="$(pam_torch_version)"
  if [ -n "$PAM_EXTRA" ]; then target=".[$PAM_EXTRA]"; else target="."; fi
  echo "[setup] installing torch==$torch first${PAM_TORCH_INDEX_URL:+ from $PAM_TORCH_INDEX_URL}, then the project $target"
  python -m pip install --quiet --upgrade pip
  python -m pip install --quiet ${PAM_TORCH_INDEX_URL:+--index-url "$PAM_TORCH_INDEX_URL"} "torch==$torch"
  (cd "$PAM_ROOT" && DS_BUILD_OPS=0 python -m pip install --quiet -e "$target")
  if [ ${#PAM_NO_DEPS[@]} -gt 0 ]; then python -m pip install --quiet --no-deps "${PAM_NO_DEPS[@]}"; fi
}

pam_locked() {  # run "$@" holding the lock file $PAM_LOCK (flock where available, else a lock directory)
  if command -v flock >/dev/null 2>&1; then
    (flock 9; "$@") 9>"$PAM_LOCK"
  else
    until mkdir "$PAM_LOCK.d" 2>/dev/null; do sleep 1; done
    local rc=0
    "$@" || rc=$?
    rmdir "$PAM_LOCK.d"
    return $rc
  fi
}

pam_active_env() {
  if [ "${PAM_VENV:-}" = none ]; then return 0; fi
  if [ -n "${PAM_VENV:-}" ]; then return 1; fi  # an explicit venv path wins
  if [ -n "${VIRTUAL_ENV:-}" ] && [ "$VIRTUAL_ENV" != "$PAM_ROOT/.venv" ]; then return 0; fi
  if [ -n "${CONDA_PREFIX:-}" ] && [ "${CONDA_DEFAULT_ENV:-}" != base ]; then return 0; fi
  return 1
}

pam_installed() {  # a stamp of this torch, newer than pyproject.toml, whose extras include every requested one
  local stamp extras want
  for stamp in "$PAM_VENV"/.pam-install-*-torch"$1"; do
    if [ ! -f "$stamp" ] || [ "$PAM_ROOT/pyproject.toml" -nt "$stamp" ]; then continue; fi
    extras="${stamp##*/.pam-install-}"
    extras=",${extras%-torch*},"
    for want in ${PAM_EXTRA//,/ }; do [[ "$extras" == *",$want,"* ]] || continue 2; done
    return 0
  done
  return 1
}

pam_managed_setup() {  # inside the lock: create the venv and install unless an install covers the extras
  if [ ! -x "$PAM_VENV/bin/python" ]; then
    echo "[setup] creating virtual environment in $PAM_VENV"
    "${PYTHON:-python3}" -m venv "$PAM_VENV"
  fi
  # shellcheck disable=SC1091
  source "$PAM_VENV/bin/activate"
  local torch
  torch="$(pam_torch_version)"
  if ! pam_installed "$torch"; then  # e.g. scripts/gpu_checks.sh's "gpu" install serves a later "" (base) one
    pam_install
    touch "$PAM_VENV/.pam-install-${PAM_EXTRA:-base}-torch$torch"
  fi
}

if pam_active_env; then
  command -v python >/dev/null 2>&1 || { echo "[setup] no 'python' on PATH in the active environment" >&2; exit 1; }
  if [ "${PAM_INSTALL:-0}" = 1 ]; then
    PAM_LOCK="$(python -c 'import sys; print(sys.prefix)')/.pam-install.lock"
    pam_locked pam_install
  fi
  python -m data_tools.runtime.environment --extras "$PAM_EXTRA" ${PAM_NO_DEPS[@]/#/--also=}
else
  PAM_VENV="${PAM_VENV:-$PAM_ROOT/.venv}"
  mkdir -p "$(dirname "$PAM_VENV")"
  PAM_LOCK="$PAM_VENV.lock"
  pam_locked pam_managed_setup
  # shellcheck disable=SC1091
  source "$PAM_VENV/bin/activate"
fi
