#!/usr/bin/env bash
# Regenerates the README's gallery (docs/gallery/) with the shipped models. Every command below
# is shown in the README next to what it made. `--quick` (what tests/test_readme.py checks)
# passes --steps 2 and writes to a temporary folder instead of docs/gallery.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=docs/gallery
EXTRA=()
if [[ "${1:-}" == "--quick" ]]; then
  OUT=$(mktemp -d)
  EXTRA=(--steps 2)
fi
mkdir -p "$OUT"
run() { echo "+ $*"; "$@" "${EXTRA[@]}"; }

# gallery: text-to-video (the STUNet, 16 frames of 32 px, in one pass) with its x-t slice
run lumiere-jax sample --prompt "a large red circle moving quickly to the left on a black background" --out "$OUT/red_circle_left.gif" --xt-slice "$OUT/red_circle_left_xt.png"
run lumiere-jax sample --prompt "a small blue square moving slowly up on a white background" --out "$OUT/blue_square_up.gif" --xt-slice "$OUT/blue_square_up_xt.png"
run lumiere-jax sample --prompt "a large yellow star orbiting quickly on a black background" --out "$OUT/yellow_star_orbit.gif" --xt-slice "$OUT/yellow_star_orbit_xt.png"
# gallery: text-to-video, then the SSR stage (MultiDiffusion over temporal windows) to 64 px
run lumiere-jax sample --prompt "a large magenta circle moving slowly to the right on a white background" --ssr --out "$OUT/magenta_circle_ssr.gif" --xt-slice "$OUT/magenta_circle_ssr_xt.png"
# gallery: text-to-image (the frozen backbone the STUNet inflates), 4 samples of one prompt
run lumiere-jax sample-image --prompt "a large green square on a black background" --num 4 --out "$OUT/green_square_t2i.png"
echo "gallery written to $OUT"
