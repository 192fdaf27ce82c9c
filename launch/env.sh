# shellcheck shell=bash
# Settings for every launch script: which TPU, which code, which run, and the XLA/libtpu flags
# the workers train with. Sourced, never run; only exports. Override any of them from the
# environment, e.g. `TPU_NAME=my-pod TPU_ACCELERATOR_TYPE=v5p-128 launch/create_tpu.sh`.

# --- The TPU VM or pod slice.
export TPU_NAME="${TPU_NAME:-lumiere}"
export TPU_ZONE="${TPU_ZONE:-us-east5-a}"
export TPU_PROJECT="${TPU_PROJECT:-}"                      # empty: gcloud's configured project
export TPU_ACCELERATOR_TYPE="${TPU_ACCELERATOR_TYPE:-v5p-64}"
export TPU_RUNTIME_VERSION="${TPU_RUNTIME_VERSION:-v2-alpha-tpuv5}"
export TPU_SPOT="${TPU_SPOT:-0}"                           # 1: spot (preemptible) capacity
export TPU_QUEUED="${TPU_QUEUED:-0}"                       # 1: request it as a queued resource
export TPU_QUEUED_ID="${TPU_QUEUED_ID:-}"                  # empty: "<TPU_NAME>-request"

# --- The code on every worker (paths relative to the worker's home directory).
export REMOTE_DIR="${REMOTE_DIR:-lumiere-jax}"             # the repository copy; its .venv/ holds Python
export REPO_URL="${REPO_URL:-}"                            # set: clone it instead of copying this tree
export REPO_REF="${REPO_REF:-main}"
export WORKER_PYTHON="${WORKER_PYTHON:-3.11}"              # Python version of the workers' venv
export UV_VERSION="${UV_VERSION:-0.13.9}"                  # installs that Python and the pinned packages

# --- The run: config and workdir (Orbax checkpoints, metrics; resumes from its latest step).
export LUMIERE_CONFIG="${LUMIERE_CONFIG:-configs/stunet_paper.py}"
export WORKDIR_ROOT="${WORKDIR_ROOT:-gs://YOUR_BUCKET/lumiere}"
export LUMIERE_RUN="${LUMIERE_RUN:-stunet_paper}"
export LUMIERE_WORKDIR="${LUMIERE_WORKDIR:-${WORKDIR_ROOT}/${LUMIERE_RUN}}"

# --- Flags set on every worker by train.sh (a local XLA_FLAGS is deliberately not forwarded).
# libtpu: overlap collectives (FSDP all-gathers, gradient reduce-scatters, the time axis'
# halo exchanges) with compute.
export LIBTPU_INIT_ARGS="${LIBTPU_INIT_ARGS:---xla_tpu_enable_async_collective_fusion=true \
--xla_tpu_enable_async_collective_fusion_fuse_all_gather=true \
--xla_tpu_enable_async_collective_fusion_multiple_steps=true \
--xla_tpu_overlap_compute_collective_tc=true \
--xla_enable_async_all_gather=true \
--xla_enable_async_collective_permute=true \
--xla_tpu_enable_data_parallel_all_reduce_opt=true}"
export TPU_XLA_FLAGS="${TPU_XLA_FLAGS:-}"                  # XLA_FLAGS on the workers, e.g. --xla_dump_to=/tmp/xla
export TPU_JAX_CACHE_DIR="${TPU_JAX_CACHE_DIR:-/tmp/jax_cache}"  # JAX_COMPILATION_CACHE_DIR on the workers
export TPU_DATA_DIR="${TPU_DATA_DIR:-}"                    # LUMIERE_DATA_DIR on the workers (empty: default)
