#!/usr/bin/env bash
# Puts this repository on every TPU worker and installs its pinned dependencies there.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: launch/setup_workers.sh [--name NAME] [--git URL] [--ref REF] [--no-check] [--dry-run] [--help]

On every worker of the TPU: copies this working tree (tracked and untracked, not ignored
files) to ~/REMOTE_DIR, or with --git clones URL at REF; then installs Python WORKER_PYTHON
and `pip install -e .[tpu]` into REMOTE_DIR/.venv with uv, constrained by
launch/requirements-tpu.txt; then checks that JAX sees the TPU (all workers together).
  --name      TPU name (TPU_NAME)
  --git URL   clone URL instead of copying this tree (REPO_URL); --ref branch, tag or commit (REPO_REF)
  --no-check  skip the JAX device check
  --dry-run   print the commands instead of running them (also DRY_RUN=1)
Run it again after changing the code: it replaces the copy and keeps .venv/ and logs/.
USAGE
}

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

check=1
normalize_args "$@"
set -- "${ARGS[@]+"${ARGS[@]}"}"
while (($#)); do
  case "$1" in
    --name) TPU_NAME="$(option_value "$@")"; shift ;;
    --git) REPO_URL="$(option_value "$@")"; shift ;;
    --ref) REPO_REF="$(option_value "$@")"; shift ;;
    --no-check) check=0 ;;
    *) parse_common_option "$1" || die "unknown argument $1 (see --help)" ;;
  esac
  shift
done

dir="$(remote_word "$REMOTE_DIR")"
if [[ -n "$REPO_URL" ]]; then
  # A fetch of one ref works for branches, tags and commits, on a first or a later run.
  fetch="git init -q $dir && git -C $dir fetch -q --depth 1 $(remote_join "$REPO_URL" "$REPO_REF")"
  on_all_workers "set -e; $fetch && git -C $dir checkout -q --force FETCH_HEAD"
else
  bundle="${TMPDIR:-/tmp}/lumiere-jax-$$.tar.gz"
  run_pipeline "git -C $(shell_word "$REPO_ROOT") ls-files -z --cached --others --exclude-standard \
| tar -czf $(shell_word "$bundle") -C $(shell_word "$REPO_ROOT") --null --ignore-failed-read -T -"
  location_flags
  run gcloud compute tpus tpu-vm scp "$bundle" "$TPU_NAME:lumiere-jax.tar.gz" \
    "${LOCATION_FLAGS[@]}" --worker=all
  run rm -f "$bundle"
  # Replace the previous copy, keeping the venv and the training logs.
  on_all_workers "set -e; mkdir -p $dir && find $dir -mindepth 1 -maxdepth 1 ! -name .venv ! -name logs \
-exec rm -rf {} + && tar -xzf lumiere-jax.tar.gz -C $dir && rm lumiere-jax.tar.gz"
fi

install="set -e; cd $dir; export PATH=\"\$HOME/.local/bin:\$PATH\"; \
python3 -m pip install --user --quiet uv==$UV_VERSION; \
uv venv --allow-existing --python $WORKER_PYTHON .venv; \
uv pip install --python .venv/bin/python -e \".[tpu]\" -c launch/requirements-tpu.txt"
on_all_workers "$install"

if ((check)); then
  on_all_workers "cd $dir && .venv/bin/python -c \"import jax; \
print(jax.process_index(), jax.local_device_count(), jax.device_count(), jax.devices()[0].device_kind)\""
fi
