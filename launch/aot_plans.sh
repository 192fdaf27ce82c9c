#!/usr/bin/env bash
# The ahead-of-time plans behind docs/scaling.md: the paper-scale STUNet train step compiled for
# TPU topologies on this machine (no TPU needed; `pip install -e ".[tpu]"` gives libtpu).
# One clip per (data x fsdp) row: global batch = chips / time, so each chip holds 1/time of a clip.
# Usage: launch/aot_plans.sh OUT_DIR   (one JSON per plan; then python -m launch.aot_table OUT_DIR)
set -euo pipefail
out=${1:?usage: launch/aot_plans.sh OUT_DIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."

plan() {  # plan NAME TOPOLOGY CHIPS TIME [config overrides...]
  local name=$1 topology=$2 chips=$3 time=$4
  shift 4
  if [[ -f "$out/$name.json" ]]; then return; fi
  python -m launch.aot_compile --config configs/stunet_paper.py --topology "$topology" \
    --mesh "data=1,fsdp=$((chips / time)),time=$time" --batch $((chips / time)) \
    --json "$out/$name.json" "$@" 2>"$out/$name.log" || echo "$name: refused or failed (see $out/$name.log)"
}

# Most telling first. The paper's 80-frame clip runs 80 -> 40 -> 20 -> 10 frames down the U-Net,
# so 4 and 8 time shards are refused (odd frame counts per shard where time is halved); a
# 128-frame clip (8 s at 16 fps) splits evenly over up to 8 time shards.
plan paper80_v5p_t2 v5p:2x2x4 16 2
plan clip128_v5p_t8 v5p:2x2x4 16 8 --config.data.num_frames=128
plan clip128_v5p_t4 v5p:2x2x4 16 4 --config.data.num_frames=128
plan paper80_v5e_t2 v5e:4x4 16 2
plan paper80_v5p_t1 v5p:2x2x4 16 1
plan paper80_v5p_t4 v5p:2x2x4 16 4
plan paper80_v5p_t8 v5p:2x2x4 16 8
plan clip128_v5p_t2 v5p:2x2x4 16 2 --config.data.num_frames=128
plan paper80_v5e_t1 v5e:4x4 16 1
plan clip128_v5p_t1 v5p:2x2x4 16 1 --config.data.num_frames=128
