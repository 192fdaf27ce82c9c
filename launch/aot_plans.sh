#!/usr/bin/env bash
# The ahead-of-time plans behind docs/scaling.md (see usage).
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: launch/aot_plans.sh --out DIR [--dry-run] [--help]

Compiles the paper-scale STUNet and SSR train steps (configs/stunet_paper.py, configs/ssr_paper.py)
for v5e, v5p and v6e topologies of 16, 64 and 256 chips and 1, 2, 4 and 8 time shards, on this
machine, no TPU needed (pip install -e ".[tpu]" gives libtpu); one JSON per plan in DIR (plans
already there are skipped); then `python -m launch.aot_table DIR` prints the table. One clip per
(data x fsdp) row unless named _b2: each chip holds 1/time of a clip. A paper-scale compile takes
7-25 minutes on 2 CPU cores (longest when the compiler has to fight to fit the chip).
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

plan() {  # plan NAME CONFIG TOPOLOGY CHIPS TIME CLIPS_PER_ROW [config overrides...]
  local name=$1 config=$2 topology=$3 chips=$4 time=$5 per_row=$6
  shift 6
  if [[ -f "$out/$name.json" ]]; then return; fi
  local fsdp=$((16 / time)) data=$((chips / 16))  # 16-chip groups: fsdp x time = 16, data = groups
  local command=(python -m launch.aot_compile --config "$config" --topology "$topology"
                 --mesh "data=$data,fsdp=$fsdp,time=$time" --batch $((data * fsdp * per_row))
                 --json "$out/$name.json" "$@")
  if [[ "$DRY_RUN" == 1 ]]; then
    run "${command[@]}"
  else
    "${command[@]}" 2>"$out/$name.log" || note "$name: refused or failed (see $out/$name.log)"
  fi
}

# Every plan uses the memory switches the paper configs need and default to (rematerialised
# blocks, bf16 compute, bf16 storage of the frozen weights; trained weights and optimizer state
# stay f32); weights and optimizer state are split over the 16 chips of a group (fsdp x time = 16), groups hold different clips (data). An 80-frame clip splits over
# up to 8 time shards: levels whose frames do not split (20 / 4 = 5 at 32 px) run gathered.
SWITCHES=(--config.compute.remat=block --config.compute.dtype=bfloat16
          --config.compute.frozen_dtype=bfloat16)
declare -A TOPOLOGIES=(
  [v5e]="v5e:4x4 v5e:8x8 v5e:16x16"
  [v5p]="v5p:2x2x4 v5p:4x4x4 v5p:4x8x8"
  [v6e]="v6e:4x4 v6e:8x8 v6e:16x16"
)
for generation in v5e v5p v6e; do
  for topology in ${TOPOLOGIES[$generation]}; do
    shape=${topology#*:}
    chips=$(( $(tr x '*' <<<"$shape") ))
    for time in 1 2 4 8; do
      plan "p80_${generation}${chips}_t${time}" configs/stunet_paper.py "$topology" "$chips" "$time" 1 "${SWITCHES[@]}"
    done
    # SSR: 16-frame windows of 1024 px clips (no temporal resampling): one window a chip.
    plan "ssr_${generation}${chips}_t1" configs/ssr_paper.py "$topology" "$chips" 1 1 "${SWITCHES[@]}"
  done
done
# The largest batch a row of chips holds on v5p (95 GiB): two clips a row.
plan "p80_v5p16_t2_b2" configs/stunet_paper.py v5p:2x2x4 16 2 2 "${SWITCHES[@]}"
