# Sourced first by the scripts that run several commands: `source "$(dirname "$0")/_help.sh" "$@"`.
# On -h/--help it prints the calling script's header comment and exits before anything is installed or run.
case "${1:-}" in
  -h|--help)
    sed -n '2,/^[^#]/{s/^# \{0,1\}//p}' "$0"
    exit 0 ;;
esac
