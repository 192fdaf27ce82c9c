#!/usr/bin/env bash
# The side venv of the peer race (benchmarks/peer_race.py): CPU torch, the PyTorch peers and this
# project, apart from the project's own environment (torch is no dependency of lumiere-jax).
#
#     bash benchmarks/peer_venv.sh [VENV]        # default /work/peer_venv; safe to rerun
#     VENV/bin/python benchmarks/peer_race.py --size tiny
#
# torch is pinned by a constraints file, so the peers cannot move it. The peers pull in a
# CUDA-linked torchvision that the race never imports (it loads only their model modules, see
# benchmarks/peer_torch.py): it is removed last, after every install that could bring it back.
set -euo pipefail

VENV="${1:-/work/peer_venv}"
TORCH_VERSION="2.13.0"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
$PIP install --upgrade pip

# The CPU build: where the package index offers only CUDA builds, add
# --index-url https://download.pytorch.org/whl/cpu to this line.
$PIP install "torch==$TORCH_VERSION"

CONSTRAINTS="$VENV/peer-constraints.txt"
echo "torch==$TORCH_VERSION" > "$CONSTRAINTS"

# imagen-pytorch: Unet3D; lumiere-pytorch: Lumiere, which inflates
# denoising-diffusion-pytorch's KarrasUnet (not a dependency of lumiere-pytorch).
$PIP install -c "$CONSTRAINTS" imagen-pytorch lumiere-pytorch denoising-diffusion-pytorch

# This project (jax on the CPU), so that the race builds and steps our model in the same run;
# pytest for tests/test_peer_models.py (skipped where the peers are not installed).
$PIP install -c "$CONSTRAINTS" -e "$REPO" pytest pytest-xdist

$PIP uninstall -y torchvision

"$VENV/bin/python" - <<'EOF'
import torch, jax
print(f"peer venv ready: torch {torch.__version__} ({torch.get_num_threads()} threads), "
      f"jax {jax.__version__}")
EOF
