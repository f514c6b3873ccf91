# Sourced by scripts that run several independent steps and report each (scripts/gpu_checks.sh), after _setup.sh.
# Turns `set -e` off (_setup.sh turns it on), so a failing step never stops the later ones.
#   steps_begin OUT; step NAME COMMAND...; ...; steps_end   (exit status: the number of failed steps)
set +e
steps_begin() {  # OUT: folder for one log per step and summary.md
  STEPS_OUT="$1"; STEPS_FAILED=0
  mkdir -p "$STEPS_OUT"
  printf '| step | command | exit | wall s |\n|---|---|---|---|\n' > "$STEPS_OUT/summary.md"
}
step() {  # step NAME COMMAND...: run it, log to OUT/NAME.log, one summary row
  local name="$1" start=$SECONDS rc
  shift
  echo "[steps] $name: $*"
  "$@" > "$STEPS_OUT/$name.log" 2>&1
  rc=$?
  echo "| $name | \`$*\` | $rc | $((SECONDS - start)) |" >> "$STEPS_OUT/summary.md"
  if [ $rc -ne 0 ]; then STEPS_FAILED=$((STEPS_FAILED + 1)); tail -n 5 "$STEPS_OUT/$name.log"; fi
  return 0
}
steps_end() {
  echo "[steps] $STEPS_FAILED failed step(s); summary: $STEPS_OUT/summary.md"
  exit "$STEPS_FAILED"
}
