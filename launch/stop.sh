#!/usr/bin/env bash
# Stops training on every worker: SIGTERM to the run's process group, SIGKILL after a grace period.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: launch/stop.sh [--name NAME] [--grace SECONDS] [--dry-run] [--help]

Stops the run that launch/train.sh started on each worker (its pid is in
REMOTE_DIR/logs/train.pid): SIGTERM, then SIGKILL after --grace seconds (default 30), which
frees the TPU for the next run. Checkpoints in the workdir stay: launch/resume.sh goes on.
  --name     TPU name (TPU_NAME)
  --dry-run  print the gcloud command instead of running it (also DRY_RUN=1)
USAGE
}

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

grace=30
normalize_args "$@"
set -- "${ARGS[@]+"${ARGS[@]}"}"
while (($#)); do
  case "$1" in
    --name) TPU_NAME="$(option_value "$@")"; shift ;;
    --grace) grace="$(option_value "$@")"; shift ;;
    *) parse_common_option "$1" || die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
[[ "$grace" =~ ^[0-9]+$ ]] || die "--grace takes whole seconds, got $grace"

# The pid is the process group of the run (train.sh starts it under `set -m`).
on_all_workers "cd $(remote_word "$REMOTE_DIR") 2>/dev/null || exit 0; \
if [ -f logs/train.pid ] && kill -0 \"\$(cat logs/train.pid)\" 2>/dev/null; then \
pid=\$(cat logs/train.pid); kill -TERM -- -\$pid; \
for _ in \$(seq $grace); do kill -0 \$pid 2>/dev/null || break; sleep 1; done; \
kill -KILL -- -\$pid 2>/dev/null || true; echo \"\$(hostname): stopped pid \$pid\"; \
else echo \"\$(hostname): no training running\"; fi; rm -f logs/train.pid"
