#!/usr/bin/env bash
# Starts training on every worker of the TPU: `python -m lumiere_jax.main ... --distributed`
# under nohup, one log per worker (REMOTE_DIR/logs/worker-<hostname>.log).
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: launch/train.sh [--name NAME] [--config PATH[:ARG]] [--workdir gs://...] [--wait]
                       [--config.a.b=value ...] [--dry-run] [--help] [-- EXTRA MAIN FLAGS]

Starts `python -m lumiere_jax.main --config CONFIG --workdir WORKDIR --distributed` on all
workers at once, in the background (it keeps running when you disconnect), and returns.
A workdir that already has checkpoints resumes from its latest one (see launch/resume.sh).
  --name       TPU name (TPU_NAME)
  --config     config file, relative to the repository (LUMIERE_CONFIG, default configs/stunet_paper.py)
  --workdir    gs:// folder for checkpoints and metrics (LUMIERE_WORKDIR = WORKDIR_ROOT/LUMIERE_RUN)
  --config.*   config overrides, passed on as they are, e.g. --config.optim.learning_rate=1e-4
  --wait       stay attached until training ends; exit with its status (for sweeps)
  --dry-run    print the gcloud command instead of running it (also DRY_RUN=1)
The workers get LIBTPU_INIT_ARGS, XLA_FLAGS (TPU_XLA_FLAGS), JAX_COMPILATION_CACHE_DIR and
LUMIERE_DATA_DIR from launch/env.sh. Refuses to start where training already runs.
USAGE
}

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

wait_for_end=0
main_args=()
normalize_args "$@"
set -- "${ARGS[@]+"${ARGS[@]}"}"
while (($#)); do
  case "$1" in
    --name) TPU_NAME="$(option_value "$@")"; shift ;;
    --config) LUMIERE_CONFIG="$(option_value "$@")"; shift ;;
    --workdir) LUMIERE_WORKDIR="$(option_value "$@")"; shift ;;
    --config.*) main_args+=("$1") ;;
    --wait) wait_for_end=1 ;;
    --) shift; main_args+=("$@"); break ;;
    *) parse_common_option "$1" || die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
require_workdir "$LUMIERE_WORKDIR"

main="$(remote_join .venv/bin/python -m lumiere_jax.main --config "$LUMIERE_CONFIG" \
  --workdir "$LUMIERE_WORKDIR" --distributed "${main_args[@]+"${main_args[@]}"}")"
log='"logs/worker-$(hostname).log"'
running='[ -f logs/train.pid ] && kill -0 "$(cat logs/train.pid)" 2>/dev/null'
# `set -m` gives the background job its own process group (= its pid), which stop.sh kills.
remote="cd $(remote_word "$REMOTE_DIR") || exit 1; mkdir -p logs; \
if $running; then echo \"\$(hostname): training already runs (pid \$(cat logs/train.pid)); launch/stop.sh first\" >&2; exit 1; fi; \
rm -f logs/train.rc; $(worker_exports); set -m; \
(nohup $main; rc=\$?; echo \$rc > logs/train.rc; exit \$rc) > $log 2>&1 < /dev/null & \
echo \$! > logs/train.pid; echo \"\$(hostname): started pid \$!, log in $REMOTE_DIR/logs\""
if ((wait_for_end)); then
  remote+="; wait \$!"
fi
on_all_workers "$remote"
