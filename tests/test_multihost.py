"""Two CPU processes (jax.distributed on localhost, gloo collectives) train like one process.

Each process runs `python -m lumiere_jax.main --distributed` with 2 CPU devices, on one of two
meshes: one splits the weights (fsdp) and the batch across the processes and the frames (time)
within each; the other splits every clip's frames across both processes, which then load the
same clips (one row group). One process then replays the same global batches (each row group's
grain shard, in group order) and must reach the same losses and the same checkpointed train
state.
"""
import json
import os
import socket
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from configs import stunet_shapes, t2i_shapes
from lumiere_jax.checkpoints.exported import save_exported
from lumiere_jax.models.build import build_model
from lumiere_jax.models.settings import parse_model_config
from lumiere_jax.train.checkpointing import RunCheckpoints
from lumiere_jax.train.settings import parse_run_config
from lumiere_jax.train.setup import make_train_iterator, prepare_dataset, setup
from lumiere_jax.train.state import learning_rate_schedule
from limits import FAST_COMPILE
from state_checks import assert_train_states_close

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 3
PROCESSES = 2
# Seconds a multi-process run may take before it counts as hung.
SAFETY_LIMIT_S = 1800
# mesh, clip length, row groups (sets of processes that load the same clips)
LAYOUTS = {"rows_over_processes": (dict(data=1, fsdp=2, time=2), 4, 2),
           "clip_over_processes": (dict(data=1, fsdp=1, time=4), 8, 1)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def base_config(tmp_path_factory):
    """The tiny STUNet config on a random backbone whose zero-initialised outputs are randomised
    (so gradients reach the temporal layers), logging and checkpointing at the last step."""
    t2i_config = t2i_shapes.get_config("variant=tiny")
    backbone = build_model(parse_model_config(t2i_config.model), seed=5)
    params = nnx.state(backbone, nnx.Param)
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda x: np.float32(0.05) * rng.standard_normal(x.shape, np.float32)
                          if not np.any(x) else x, params)
    backbone_dir = str(tmp_path_factory.mktemp("backbone") / "t2i")
    save_exported(backbone_dir, params, t2i_config.to_dict())

    config = stunet_shapes.get_config("variant=tiny")
    config.model.backbone = backbone_dir
    config.data.data_dir = str(tmp_path_factory.mktemp("datasets"))
    config.optim.update(total_steps=STEPS, warmup_steps=1)
    config.log.every_steps = 1
    config.checkpoint.every_steps = STEPS
    return config


def overrides(config) -> list[str]:
    values = {"model.backbone": config.model.backbone, "data.data_dir": config.data.data_dir,
              "data.num_frames": config.data.num_frames,
              "optim.total_steps": STEPS, "optim.warmup_steps": 1, "log.every_steps": 1,
              "checkpoint.every_steps": STEPS,
              **{f"mesh.{k}": v for k, v in config.mesh.items() if k in ("data", "fsdp", "time")}}
    return [f"--config.{key}={value}" for key, value in values.items()]


def run_processes(config, workdir) -> list[str]:
    """Starts the processes, waits for them (killing all on failure or timeout); their outputs."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count=2 {FAST_COMPILE}")
    processes = [subprocess.Popen(
        [sys.executable, "-m", "lumiere_jax.main",
         "--config", os.path.join(REPO, "configs", "stunet_shapes.py") + ":variant=tiny",
         "--workdir", str(workdir), "--distributed", f"--coordinator_address=localhost:{port}",
         f"--num_processes={PROCESSES}", f"--process_id={index}", *overrides(config)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for index in range(PROCESSES)]
    try:
        # A safety limit for a hung run (e.g. a process that never joins), not a speed test:
        # both processes wait for each other, so a busy machine only makes them slower.
        outputs = [process.communicate(timeout=SAFETY_LIMIT_S)[0] for process in processes]
    except subprocess.TimeoutExpired:
        pytest.fail(f"The {PROCESSES} processes did not finish within the {SAFETY_LIMIT_S} s "
                    f"safety limit (hung, or the machine is far slower than expected).")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-5000:]
    return outputs


def single_process_run(config, groups: int):
    """(metrics per step, final state) of one process fed the same global batches: row group
    0's batch, then group 1's, ..., along the batch."""
    shares = parse_run_config(config)
    config = ml_collections.ConfigDict(config.to_dict())
    config.mesh.update(data=-1, fsdp=1, time=1)  # this process's 8 devices
    config.data.batch_size *= groups
    trainer = setup(parse_run_config(config))
    state, step = trainer.state, trainer.train_step
    iterators = [make_train_iterator(shares.data, config.model.text_encoder.max_length,
                                     shares.seed, index, groups)
                 for index in range(groups)]
    records = []
    for _ in range(STEPS):
        batches = [next(iterator) for iterator in iterators]
        batch = {key: np.concatenate([b[key] for b in batches]) for key in ("frames", "tokens")}
        state, metrics = step(state, batch)
        records.append(jax.device_get(metrics))
    return records, state


# The reference replicates its global batch over this process's 8 devices, on purpose.
@pytest.mark.filterwarnings("ignore:A global batch of")
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_two_processes_train_like_one(base_config, layout, tmp_path):
    mesh, frames, groups = LAYOUTS[layout]
    config = ml_collections.ConfigDict(base_config.to_dict())
    config.mesh.update(mesh)
    config.data.num_frames = frames
    prepare_dataset(parse_run_config(config).data)  # built once, before they start
    outputs = run_processes(config, tmp_path)
    assert "Exported EMA weights" in outputs[0]

    expected_records, expected_state = single_process_run(config, groups)
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))
    for record, expected in zip(records, expected_records):
        for key in ("loss", "grad_norm", "param_norm"):
            np.testing.assert_allclose(record[key], expected[key], rtol=1e-5, err_msg=key)
    assert len({r["loss"] for r in records}) == STEPS  # it trains: every step sees new data

    checkpoints = RunCheckpoints(str(tmp_path), every_steps=1, max_to_keep=1)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, expected_state)
    restored = checkpoints.restore_state(STEPS, abstract)
    checkpoints.close()
    assert int(restored.step) == STEPS
    schedule = learning_rate_schedule(parse_run_config(config).optim)
    assert_train_states_close(restored, expected_state, [schedule(i) for i in range(STEPS)])
