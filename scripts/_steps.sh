# Sourced by scripts that run several independent steps and report each (scripts/gpu_checks.sh), after _setup.sh.
# Turns `set -e` off (_setup.sh turns it on), so a failing step never stops the later ones.
#   steps_begin OUT; step NAME COMMAND...; ...; steps_end   (exit status: the number of failed steps)
# Each step sees STEP_JSON=OUT/NAME.step.json: python -m sim2real.gpu_step writes its peak GPU memory and the
# preflight's estimate there, and the summary row shows both ("-" for a step without that file).
set +e
steps_begin() {  # OUT: folder for one log per step and summary.md
  STEPS_OUT="$1"; STEPS_FAILED=0
  mkdir -p "$STEPS_OUT"
  printf '| step | command | exit | wall s | peak GPU GiB | estimate GiB |\n|---|---|---|---|---|---|\n' \
    > "$STEPS_OUT/summary.md"
}
step_memory() {  # "peak | estimate" from a step's JSON
  python -c 'import json, sys
d = json.load(open(sys.argv[1]))
f = lambda v: "-" if v is None else f"{v:.1f}"
print(f(d.get("peak_memory_gib")), "|", f(d.get("estimate_gib")))' "$1" 2>/dev/null || echo "- | -"
}
step() {  # step NAME COMMAND...: run it, log to OUT/NAME.log, one summary row
  local name="$1" start=$SECONDS rc memory="- | -"
  shift
  echo "[steps] $name: $*"
  rm -f "$STEPS_OUT/$name.step.json"
  STEP_JSON="$STEPS_OUT/$name.step.json" "$@" > "$STEPS_OUT/$name.log" 2>&1
  rc=$?
  if [ -f "$STEPS_OUT/$name.step.json" ]; then memory="$(step_memory "$STEPS_OUT/$name.step.json")"; fi
  echo "| $name | \`$*\` | $rc | $((SECONDS - start)) | $memory |" >> "$STEPS_OUT/summary.md"
  if [ $rc -ne 0 ]; then STEPS_FAILED=$((STEPS_FAILED + 1)); tail -n 5 "$STEPS_OUT/$name.log"; fi
  return 0
}
steps_end() {
  echo "[steps] $STEPS_FAILED failed step(s); summary: $STEPS_OUT/summary.md"
  exit "$STEPS_FAILED"
}
