#!/usr/bin/env bash
# The ahead-of-time plans behind docs/scaling.md (see usage).
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: launch/aot_plans.sh --out DIR [--dry-run] [--help]

Compiles the paper-scale STUNet train step (configs/stunet_paper.py) for TPU topologies on this
machine, no TPU needed (pip install -e ".[tpu]" gives libtpu), one JSON per plan in DIR (plans
already there are skipped); then `python -m launch.aot_table DIR` prints the table. One clip per
(data x fsdp) row: global batch = chips / time, so each chip holds 1/time of a clip. A
paper-scale compile takes 15-25 minutes on 2 CPU cores; a plan the compiler finds too big for
the chip stops early and is reported as such.
  --out      folder for the plans' JSON and logs
  --dry-run  print the aot_compile commands instead of running them (also DRY_RUN=1)
USAGE
}

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

out=""
normalize_args "$@"
set -- "${ARGS[@]+"${ARGS[@]}"}"
while (($#)); do
  case "$1" in
    --out) out="$(option_value "$@")"; shift ;;
    *) parse_common_option "$1" || die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
[[ -n "$out" ]] || die "--out DIR is required (see --help)"
cd "$REPO_ROOT"
[[ "$DRY_RUN" == 1 ]] || mkdir -p "$out"

plan() {  # plan NAME TOPOLOGY CHIPS TIME [config overrides...]
  local name=$1 topology=$2 chips=$3 time=$4
  shift 4
  if [[ -f "$out/$name.json" ]]; then return; fi
  local command=(python -m launch.aot_compile --config configs/stunet_paper.py
                 --topology "$topology" --mesh "data=1,fsdp=$((chips / time)),time=$time"
                 --batch $((chips / time)) --json "$out/$name.json" "$@")
  if [[ "$DRY_RUN" == 1 ]]; then
    run "${command[@]}"
  else
    "${command[@]}" 2>"$out/$name.log" || note "$name: refused or failed (see $out/$name.log)"
  fi
}

# The paper's 80-frame clip runs 80 -> 40 -> 20 -> 10 frames down the U-Net, so 4 and 8 time
# shards are refused (odd frame counts per shard where time is halved); a 128-frame clip (8 s at
# 16 fps) splits evenly over up to 8 time shards.
for topology in v5p:2x2x4 v5e:4x4; do
  generation=${topology%%:*}
  for time in 1 2 4 8; do
    plan "paper80_${generation}_t$time" "$topology" 16 "$time"
    plan "clip128_${generation}_t$time" "$topology" 16 "$time" --config.data.num_frames=128
  done
done
