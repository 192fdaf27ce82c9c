#!/usr/bin/env bash
# Shows, follows or fetches the per-worker training logs (REMOTE_DIR/logs/worker-<hostname>.log).
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: launch/logs.sh [--name NAME] [--lines N] [--follow] [--status]
                      [--fetch DIR [--workdir gs://...]] [--dry-run] [--help]

  (default)  the last N lines (--lines, default 50) of every worker's log, prefixed by hostname
  --follow   keep printing new lines (Ctrl-C to stop)
  --status   per worker: running (pid) or finished (exit code)
  --fetch    copy every worker's log to WORKDIR/logs/ (gs://) and from there into DIR
  --dry-run  print the commands instead of running them (also DRY_RUN=1)
Metrics (loss, lr, examples/s) are in WORKDIR/metrics.jsonl, written by process 0.
USAGE
}

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

lines=50
mode="tail"
fetch_dir=""
normalize_args "$@"
set -- "${ARGS[@]+"${ARGS[@]}"}"
while (($#)); do
  case "$1" in
    --name) TPU_NAME="$(option_value "$@")"; shift ;;
    --lines) lines="$(option_value "$@")"; shift ;;
    --follow) mode=follow ;;
    --status) mode=status ;;
    --fetch) mode=fetch; fetch_dir="$(option_value "$@")"; shift ;;
    --workdir) LUMIERE_WORKDIR="$(option_value "$@")"; shift ;;
    *) parse_common_option "$1" || die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
[[ "$lines" =~ ^[0-9]+$ ]] || die "--lines takes a number, got $lines"

cd_logs="cd $(remote_word "$REMOTE_DIR")/logs || exit 1"
log='"worker-$(hostname).log"'
prefix='sed -u "s/^/[$(hostname)] /"'
case "$mode" in
  tail) on_all_workers "$cd_logs; tail -n $lines $log | $prefix" ;;
  follow) on_all_workers "$cd_logs; tail -n $lines -F $log | $prefix" ;;
  status)
    on_all_workers "$cd_logs; if [ -f train.pid ] && kill -0 \"\$(cat train.pid)\" 2>/dev/null; \
then echo \"\$(hostname): running (pid \$(cat train.pid))\"; \
elif [ -f train.rc ]; then echo \"\$(hostname): finished, exit code \$(cat train.rc)\"; \
else echo \"\$(hostname): stopped or never started\"; fi" ;;
  fetch)
    require_workdir "$LUMIERE_WORKDIR"
    on_all_workers "$cd_logs; gcloud storage cp $log $(remote_word "$LUMIERE_WORKDIR/logs/")"
    run mkdir -p "$fetch_dir"
    run gcloud storage cp "$LUMIERE_WORKDIR/logs/*" "${fetch_dir%/}/"
    ;;
esac
