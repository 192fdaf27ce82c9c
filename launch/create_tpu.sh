#!/usr/bin/env bash
# Creates the TPU VM or pod slice named in env.sh, directly or as a queued resource.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: launch/create_tpu.sh [--name NAME] [--type ACCELERATOR] [--version RUNTIME] [--zone ZONE]
                            [--spot] [--queued] [--dry-run] [--help]

Creates a Cloud TPU VM (one host) or pod slice (several workers) with gcloud.
  --name       TPU name (TPU_NAME)                   --type     e.g. v5p-64, v6e-32 (TPU_ACCELERATOR_TYPE)
  --version    TPU runtime (TPU_RUNTIME_VERSION)    --zone     zone (TPU_ZONE)
  --spot       spot capacity (TPU_SPOT=1)
  --queued     request it as a queued resource and wait in line for capacity (TPU_QUEUED=1);
               `gcloud compute tpus queued-resources describe TPU_QUEUED_ID` shows its state
  --dry-run    print the gcloud command instead of running it (also DRY_RUN=1)
Defaults come from launch/env.sh.
USAGE
}

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

normalize_args "$@"
set -- "${ARGS[@]+"${ARGS[@]}"}"
while (($#)); do
  case "$1" in
    --name) TPU_NAME="$(option_value "$@")"; shift ;;
    --type) TPU_ACCELERATOR_TYPE="$(option_value "$@")"; shift ;;
    --version) TPU_RUNTIME_VERSION="$(option_value "$@")"; shift ;;
    --zone) TPU_ZONE="$(option_value "$@")"; shift ;;
    --spot) TPU_SPOT=1 ;;
    --queued) TPU_QUEUED=1 ;;
    *) parse_common_option "$1" || die "unknown argument $1 (see --help)" ;;
  esac
  shift
done

location_flags
capacity=()
if [[ "$TPU_SPOT" == 1 ]]; then
  capacity=(--spot)
fi

if [[ "$TPU_QUEUED" == 1 ]]; then
  run gcloud compute tpus queued-resources create "$(queued_id)" "${LOCATION_FLAGS[@]}" \
    --node-id="$TPU_NAME" --accelerator-type="$TPU_ACCELERATOR_TYPE" \
    --runtime-version="$TPU_RUNTIME_VERSION" "${capacity[@]+"${capacity[@]}"}"
else
  run gcloud compute tpus tpu-vm create "$TPU_NAME" "${LOCATION_FLAGS[@]}" \
    --accelerator-type="$TPU_ACCELERATOR_TYPE" --version="$TPU_RUNTIME_VERSION" \
    "${capacity[@]+"${capacity[@]}"}"
fi
