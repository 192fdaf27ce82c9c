# shellcheck shell=bash
# Shared by the launch scripts: option parsing, run-or-print (--dry-run), gcloud TPU helpers.
# A script defines usage() and then sources this file, which sources env.sh.

LAUNCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(dirname "$LAUNCH_DIR")"
export LAUNCH_DIR REPO_ROOT
# shellcheck source=env.sh
source "$LAUNCH_DIR/env.sh"
DRY_RUN="${DRY_RUN:-0}"

die() { echo "error: $*" >&2; exit 1; }
note() { echo "$*" >&2; }

# One word as a shell reads it back: bare when that is safe, else single-quoted.
shell_word() {
  if [[ "$1" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

# Words joined into one command line that a shell splits back into the same words.
shell_join() {
  local line="" word
  for word in "$@"; do
    line+="${line:+ }$(shell_word "$word")"
  done
  printf '%s' "$line"
}

# Runs a command; under --dry-run (DRY_RUN=1) prints it, one copy-pasteable line, instead.
run() {
  if [[ "$DRY_RUN" == 1 ]]; then
    shell_join "$@"
    echo
  else
    "$@"
  fi
}

# Runs (or prints) a shell pipeline given as one string.
run_pipeline() {
  if [[ "$DRY_RUN" == 1 ]]; then
    printf '%s\n' "$1"
  else
    bash -c "set -euo pipefail; $1"
  fi
}

# Handles the options every script takes; returns 1 for any other argument.
parse_common_option() {
  case "$1" in
    -n | --dry-run) DRY_RUN=1 ;;
    -h | --help) usage; exit 0 ;;
    *) return 1 ;;
  esac
}

# ARGS = the arguments with `--opt=value` split into `--opt value`, except config overrides
# (`--config.a.b=v`) and anything after a lone `--`.
normalize_args() {
  ARGS=()
  local rest=0 arg
  for arg in "$@"; do
    if ((rest)) || [[ "$arg" != --*=* || "$arg" == --config.* ]]; then
      ARGS+=("$arg")
      if [[ "$arg" == -- ]]; then rest=1; fi
    else
      ARGS+=("${arg%%=*}" "${arg#*=}")
    fi
  done
}

# The value after option $1, or a clear error when it is missing.
option_value() {
  [[ $# -ge 2 && "$2" != --* ]] || die "$1 needs a value (see --help)"
  printf '%s' "$2"
}

# --zone (and --project when set) for every gcloud TPU command.
location_flags() {
  LOCATION_FLAGS=(--zone="$TPU_ZONE")
  if [[ -n "$TPU_PROJECT" ]]; then
    LOCATION_FLAGS+=(--project="$TPU_PROJECT")
  fi
}

# The queued-resource id: TPU_QUEUED_ID, or derived from the TPU name.
queued_id() {
  printf '%s' "${TPU_QUEUED_ID:-${TPU_NAME}-request}"
}

# Runs (or prints) shell command line $1 on every worker of the TPU, from the worker's home.
on_all_workers() {
  location_flags
  run gcloud compute tpus tpu-vm ssh "$TPU_NAME" "${LOCATION_FLAGS[@]}" --worker=all --command "$1"
}

# A word for a command line that runs on the workers: bare when safe, double-quoted when that
# is enough (it stays readable inside the single-quoted --command), else single-quoted.
remote_word() {
  if [[ "$1" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
    printf '%s' "$1"
  elif [[ "$1" != *[\$\`\"\\!]* ]]; then
    printf '"%s"' "$1"
  else
    shell_word "$1"
  fi
}

# Words joined with remote_word.
remote_join() {
  local line="" word
  for word in "$@"; do
    line+="${line:+ }$(remote_word "$word")"
  done
  printf '%s' "$line"
}

# `export NAME=value ...` for the variables train.sh sets on the workers (empty ones left out).
worker_exports() {
  local line="" name value
  local -A sources=([LIBTPU_INIT_ARGS]=LIBTPU_INIT_ARGS [XLA_FLAGS]=TPU_XLA_FLAGS
                    [JAX_COMPILATION_CACHE_DIR]=TPU_JAX_CACHE_DIR [LUMIERE_DATA_DIR]=TPU_DATA_DIR)
  for name in LIBTPU_INIT_ARGS XLA_FLAGS JAX_COMPILATION_CACHE_DIR LUMIERE_DATA_DIR; do
    value="${!sources[$name]}"
    if [[ -n "$value" ]]; then
      line+=" $name=$(remote_word "$value")"
    fi
  done
  if [[ -n "$line" ]]; then
    printf 'export%s' "$line"
  else
    printf 'true'
  fi
}

# Refuses the placeholder bucket of env.sh outside a dry run.
require_workdir() {
  if [[ "$DRY_RUN" != 1 && "$1" == *YOUR_BUCKET* ]]; then
    die "set the workdir: --workdir gs://your-bucket/... or WORKDIR_ROOT=gs://your-bucket/lumiere"
  fi
}
