#!/usr/bin/env bash
# Deletes the TPU VM or pod slice (or its queued resource) named in env.sh.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: launch/delete_tpu.sh [--name NAME] [--zone ZONE] [--queued] [--dry-run] [--help]

Deletes the TPU (and everything on its workers' disks; the gs:// workdir stays).
  --name     TPU name (TPU_NAME)      --zone   zone (TPU_ZONE)
  --queued   it was created with --queued: delete the queued resource TPU_QUEUED_ID and its TPU
  --dry-run  print the gcloud command instead of running it (also DRY_RUN=1)
USAGE
}

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

normalize_args "$@"
set -- "${ARGS[@]+"${ARGS[@]}"}"
while (($#)); do
  case "$1" in
    --name) TPU_NAME="$(option_value "$@")"; shift ;;
    --zone) TPU_ZONE="$(option_value "$@")"; shift ;;
    --queued) TPU_QUEUED=1 ;;
    *) parse_common_option "$1" || die "unknown argument $1 (see --help)" ;;
  esac
  shift
done

location_flags
if [[ "$TPU_QUEUED" == 1 ]]; then
  run gcloud compute tpus queued-resources delete "$(queued_id)" "${LOCATION_FLAGS[@]}" --force --quiet
else
  run gcloud compute tpus tpu-vm delete "$TPU_NAME" "${LOCATION_FLAGS[@]}" --quiet
fi
