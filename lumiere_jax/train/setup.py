"""One setup for the trainer and the ahead-of-time plans: `setup(run)` -> `TrainSetup`.

The trainer gets the train state on the mesh and a data iterator factory; a plan
(`launch/aot_compile.py`) gets the same setup built abstractly, with `abstract=True`: the state as
ShapeDtypeStructs with their shardings, no weights allocated, no data read, on any devices (a TPU
topology's included). Both lower the same jitted step, so a plan compiles what the trainer runs.

The state is never built whole on one device or in host memory: the model is traced
(`jax.eval_shape`) to plan the shardings, then the fresh state is created under `jax.jit` with
those `out_shardings` (each process computes only its own shards), and the pretrained parts
(frozen backbone, text encoder, `checkpoint.init_from`) are restored by Orbax straight into
targets that carry the same shardings.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from lumiere_jax import settings as S
from lumiere_jax.checkpoints.exported import restore_matching_params, restore_params
from lumiere_jax.checkpoints.pretrained import load_pretrained
from lumiere_jax.data import pipeline, tfds_shapes, video_folder
from lumiere_jax.models.build import build_model
from lumiere_jax.models.memory import set_memory_switches
from lumiere_jax.models.protocol import DiffusionModel
from lumiere_jax.names import TIME
from lumiere_jax.nn.frame_sharding import FrameSharding
from lumiere_jax.parallel import batch as batching
from lumiere_jax.parallel.mesh import make_mesh
from lumiere_jax.parallel.partition import state_shardings
from lumiere_jax.train.settings import RunSettings
from lumiere_jax.train.state import TrainState, create_train_state, make_optimizer
from lumiere_jax.train.step import jit_sharded_train_step, make_train_step


@dataclasses.dataclass(frozen=True)
class TrainSetup:
    """Everything a training run needs, built once from its config.

    `state` is the fresh train state on the mesh, or (abstract setups, and setups built with
    initialize=False) ShapeDtypeStructs carrying their shardings. `initialize()` creates the
    fresh state on the mesh (None in an abstract setup): random init, then the pretrained parts
    and `checkpoint.init_from`. `step(state, global_batch)` is the jitted, sharded train step;
    `make_iterator()` opens this process's train data (None in an abstract setup): the records
    of its `row_group`, the processes that hold the same rows of the global batch.
    """
    run: RunSettings
    mesh: Mesh
    graphdef: nnx.GraphDef
    state: TrainState
    state_shardings: Any
    batch_shardings: dict
    global_batch: int
    step: Callable
    make_iterator: Callable[[], Any] | None
    initialize: Callable[[], TrainState] | None = None
    row_group: batching.RowGroup = batching.RowGroup()

    def abstract_batch(self) -> dict:
        """The step's global batch as ShapeDtypeStructs with their shardings."""
        data = self.run.data
        frames = ((self.global_batch,) + ((data.num_frames,) if data.mode == "clips" else ())
                  + (data.resolution, data.resolution, 3))
        tokens = (self.global_batch, self.run.model.text_encoder.max_length)
        return {"frames": jax.ShapeDtypeStruct(frames, jnp.uint8,
                                               sharding=self.batch_shardings["frames"]),
                "tokens": jax.ShapeDtypeStruct(tokens, jnp.int32,
                                               sharding=self.batch_shardings["tokens"])}

    def abstract_state(self) -> TrainState:
        """The train state as ShapeDtypeStructs with their shardings."""
        return with_shardings(self.state, self.state_shardings)

    def lower(self) -> jax.stages.Lowered:
        """The train step lowered for this setup's state and batch (nothing runs)."""
        return self.step.lower(self.abstract_state(), self.abstract_batch())

    def train_step(self, state: TrainState, local_batch: dict):
        """One step on this process's batch (numpy `frames` and `tokens`): the global batch is
        assembled on the mesh, then `step` runs."""
        return self.step(state, batching.global_batch(local_batch, self.batch_shardings,
                                                      self.row_group))


def default_data_dir() -> str:
    return os.environ.get("LUMIERE_DATA_DIR",
                          os.path.join(os.path.expanduser("~"), ".cache", "lumiere_jax", "datasets"))


def build_dataset(data: S.DataSettings):
    """The builder of the dataset `data.source` names, built under data.data_dir unless there."""
    data_dir = data.data_dir or default_data_dir()
    if data.source == "video_folder":
        return video_folder.prepare_video_folder_dataset(
            data_dir, data.video_dir, data.captions, data.resolution, data.num_frames, data.fps,
            data.clip_stride or None, data.validation_fraction)
    return tfds_shapes.prepare_shapes_dataset(
        data_dir, data.resolution, data.num_frames, data.num_train, data.num_validation,
        data.num_heldout, data.style)


def prepare_dataset(data: S.DataSettings):
    """The training dataset's builder (`build_dataset`). With several processes, process 0
    builds it first while the others wait; each then opens it (and builds it too where its
    data_dir is a local disk)."""
    if jax.process_count() == 1:
        return build_dataset(data)
    if jax.process_index() == 0:
        build_dataset(data)
    multihost_utils.sync_global_devices("lumiere_jax: dataset prepared")
    return build_dataset(data)


def make_train_iterator(data: S.DataSettings, text_length: int, seed: int,
                        process_index: int | None = None, process_count: int | None = None):
    """Builds (if needed) the dataset and returns a checkpointable iterator over one process's
    share of its train split (default: this process's), only the clips of `data.motions` where
    it names some."""
    source = pipeline.make_data_source(prepare_dataset(data), "train")
    if data.motions:
        source = pipeline.keep_records(source, "motion", data.motions)
    return pipeline.make_iterator(
        source, mode=data.mode, batch_size=data.batch_size, seed=data.seed + seed,
        text_length=text_length, worker_count=data.worker_count, process_index=process_index,
        process_count=process_count)


def check_data_fits_model(data: S.DataSettings, model: DiffusionModel, time_shards: int = 1) -> None:
    """Video models need whole clips of a length their temporal strides (and time shards) divide."""
    if model.is_video:
        if data.mode != "clips":
            raise S.ConfigError("A video model trains on whole clips: set config.data.mode='clips'.")
        model.check_frame_count(data.num_frames, time_shards)
    elif data.mode != "frames":
        raise S.ConfigError("An image model trains on single frames: set config.data.mode='frames'.")


def check_accumulation_fits_batch(steps: int, global_batch: int) -> None:
    """Micro-batches must be whole: the global batch divides into `steps` equal parts."""
    if global_batch % steps:
        raise S.ConfigError(f"compute.grad_accum_steps={steps} does not divide the global batch "
                            f"of {global_batch}: use a divisor of it.")


def check_evaluation_fits_data(run: RunSettings) -> None:
    """The in-training evaluation samples shapes-world prompts and reads them back with the
    shapes evaluator: it says nothing about a model trained on other videos."""
    if run.log.eval_every_steps and run.data.source != "shapes":
        raise S.ConfigError(f"config.log.eval_every_steps={run.log.eval_every_steps} scores "
                            f"shapes-world prompts, which says nothing about a model trained on "
                            f"data.source={run.data.source!r}: set config.log.eval_every_steps=0.")


def check_mesh_fits_data(data: S.DataSettings, mesh: Mesh) -> None:
    """Only clips have frames to split over the mesh's time axis."""
    if mesh.shape[TIME] > 1 and data.mode != "clips":
        raise S.ConfigError(f"config.mesh.time={mesh.shape[TIME]} splits clips over devices, but "
                            f"single frames (an image model's data) have no time axis: set "
                            f"config.mesh.time=1.")


def with_shardings(tree: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs of `tree`'s leaves carrying `shardings` (a tree of the same structure)."""
    return jax.tree.map(lambda x, sharding: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                                                sharding=sharding),
                        tree, shardings)


def initialize_state(fresh_state: Callable[[], TrainState], graphdef: nnx.GraphDef,
                     shardings: Any, run: RunSettings) -> TrainState:
    """The fresh train state created sharded on the mesh, with the pretrained parts restored.

    `fresh_state` (random initialisation) runs under `jax.jit` with `out_shardings`, so no
    device or host ever holds more than its shards (eagerly where every device holds it whole). The
    backbone / text encoder the model settings name, then `checkpoint.init_from`, are restored
    into targets with the same shardings (and dtypes: `compute.frozen_dtype`); the EMA starts as a
    copy of the resulting parameters.
    """
    replicated = jax.process_count() == 1 and all(
        s.is_fully_replicated for s in jax.tree.leaves(shardings))
    # Where every device holds the whole state anyway (one device, or data parallelism only),
    # the eager build is copied device to device (and skips a long compile); otherwise the
    # build runs under jit, so each device computes only its own shards.
    state = (jax.device_put(fresh_state(), shardings) if replicated else
             jax.jit(fresh_state, out_shardings=shardings)())
    settings, init_from = run.model, run.checkpoint.init_from
    if not (settings.backbone or settings.text_checkpoint or init_from):
        return state
    model = nnx.merge(graphdef, state.params, state.frozen)
    load_pretrained(model, settings)
    if init_from:  # an export holds the whole model: its trained and its frozen parts
        everything = nnx.state(model, nnx.Param)
        if run.checkpoint.init_from_partial:
            partial = restore_matching_params(init_from, everything)
            nnx.update(model, partial.params)
            print(f"Initialised from {init_from}, in part: {len(partial.kept_fresh)} weight(s) "
                  f"the export lacks keep their initialisation, {len(partial.left_out)} of its "
                  f"weight(s) the model lacks are left out.", flush=True)
            for heading, names in (("kept fresh", partial.kept_fresh),
                                   ("left out", partial.left_out)):
                for name in names:
                    print(f"  {heading}: {name}", flush=True)
        else:
            nnx.update(model, restore_params(
                init_from, jax.tree.map(ocp.utils.to_shape_dtype_struct, everything)))
            print(f"Initialised from {init_from}.", flush=True)
    _, params, frozen = nnx.split(model, model.trainable, ...)
    return state.replace(params=params, frozen=frozen, ema_params=jax.tree.map(jnp.copy, params))


def setup(run: RunSettings, *, abstract: bool = False, initialize: bool = True, devices=None,
          global_batch: int | None = None) -> TrainSetup:
    """The run on a mesh of `devices` (default: every device of every process).

    `run` is the parsed config (`train.settings.parse_run_config`). `global_batch` defaults to
    data.batch_size rows per row group (`parallel.batch.row_group`: every process, unless a
    clip's time shards span processes, which then load the same clips). abstract=True traces the model instead of building it (no
    pretrained weights are read, nothing is allocated) and opens no data. initialize=False
    leaves `state` abstract too (e.g. to restore a run's checkpoint into it) while keeping
    `initialize` and the data.
    """
    mesh = make_mesh(run.mesh, devices)
    check_mesh_fits_data(run.data, mesh)
    check_evaluation_fits_data(run)
    row_group = None if abstract else batching.row_group(mesh)
    optimizer = make_optimizer(run.optim)
    time_shards = mesh.shape[TIME]
    built = {}

    def fresh_state():
        model = build_model(run.model, seed=run.seed)
        set_memory_switches(model, remat=run.compute.remat,
                            temporal_attention_chunk=run.compute.temporal_attention_chunk,
                            attention=run.compute.attention)
        check_data_fits_model(run.data, model, time_shards)
        if time_shards > 1:
            model.shard_frames(FrameSharding(mesh))
        built["graphdef"], state = create_train_state(model, optimizer, run.seed, model.trainable,
                                                      run.compute.frozen_dtype)
        return state

    planned = jax.eval_shape(fresh_state)
    graphdef = built["graphdef"]
    shardings = state_shardings(planned, mesh, run.mesh.rules)
    initialize_ = None if abstract else (
        lambda: initialize_state(fresh_state, graphdef, shardings, run))
    state = initialize_() if initialize_ and initialize else with_shardings(planned, shardings)
    global_batch = global_batch or run.data.batch_size * (
        row_group.count if row_group else jax.process_count())
    batch_shardings = batching.train_batch_shardings(mesh, global_batch,
                                                     clips=run.data.mode == "clips")
    check_accumulation_fits_batch(run.compute.grad_accum_steps, global_batch)
    step = jit_sharded_train_step(
        make_train_step(graphdef, run.diffusion, run.optim, optimizer, run.compute),
        mesh, shardings, batch_shardings)
    make_iterator = None if abstract else (
        lambda: make_train_iterator(run.data, run.model.text_encoder.max_length, run.seed,
                                    row_group.index, row_group.count))
    return TrainSetup(run=run, mesh=mesh, graphdef=graphdef, state=state,
                      state_shardings=shardings, batch_shardings=batch_shardings,
                      global_batch=global_batch, step=step, make_iterator=make_iterator,
                      initialize=initialize_,
                      row_group=row_group or batching.RowGroup())
