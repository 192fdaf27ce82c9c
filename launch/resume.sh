#!/usr/bin/env bash
# Resumes training: the same command as train.sh; the run continues from the latest checkpoint
# in its workdir (step, optimizer, EMA and data iterator position).
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: launch/resume.sh [the arguments you gave launch/train.sh] [--dry-run] [--help]

Starts training again after launch/stop.sh, a preemption or a crash. Give the same --config,
--workdir and overrides as the first launch (or the same env.sh variables): lumiere_jax.main
restores the workdir's latest checkpoint and goes on from its step.
USAGE
}

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for arg in "$@"; do
  if [[ "$arg" == -h || "$arg" == --help ]]; then
    usage
    exit 0
  fi
done
note "Resuming from the latest checkpoint in the workdir."
exec "$LAUNCH_DIR/train.sh" "$@"
