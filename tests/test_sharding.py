"""Meshes, weight shardings and time (context) parallelism: sharded == unsharded."""
import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from configs import t2i_shapes
from lumiere_jax.diffusion.settings import DiffusionSettings
from lumiere_jax.models.stunet import STUNet, STUNetConfig
from lumiere_jax.models.text_encoder import TextEncoderConfig
from lumiere_jax.models.unet2d import UNetConfig
from lumiere_jax.nn.frame_sharding import UNSHARDED, FrameSharding, split_problem
from lumiere_jax.nn.sharding import logical_axes
from lumiere_jax.nn.temporal import TemporalParam, conv_over_time, space_time_conv, temporal_conv
from lumiere_jax.parallel.batch import (RowGroup, global_batch, row_group, row_group_of,
                                        train_batch_shardings)
from lumiere_jax.parallel.mesh import make_mesh
from lumiere_jax.parallel.partition import (shard_train_state, split_axes, state_shardings,
                                           weight_spec)
from lumiere_jax.settings import ConfigError, MeshSettings, OptimSettings
from lumiere_jax.train.settings import parse_run_config
from lumiere_jax.train.setup import setup
from lumiere_jax.train.state import create_train_state, make_optimizer
from lumiere_jax.train.step import jit_sharded_train_step, make_train_step
from state_checks import adam_moments, assert_train_states_close, assert_trees_close

TEXT = TextEncoderConfig(width=16, num_layers=1, num_heads=2, max_length=8)
UNET = UNetConfig(resolution=8, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                  attention_resolutions=(), num_heads=2, context_features=16)
TEMPORAL = STUNetConfig(num_heads=2)  # one temporal downsampling (level 0)
BATCH, FRAMES = 8, 16  # per time shard at time=8: 2 frames at level 0, 1 at level 1
MESHES = [(8, 1, 1), (2, 1, 4), (1, 2, 4), (1, 1, 8)]
NO_RULES = {}


def mesh_of(shape):
    data, fsdp, time = shape
    return make_mesh(MeshSettings(data=data, fsdp=fsdp, time=time))


def randomise_zero_weights(model, seed):
    """Zero-initialised matrices (output projections) get random values, so every temporal layer
    acts and every weight gets a gradient."""
    rng = np.random.default_rng(seed)  # numpy: nothing to compile per shape
    state = nnx.state(model, nnx.Param)
    leaves, treedef = jax.tree.flatten(state)
    leaves = [np.float32(0.2) * rng.standard_normal(x.shape, np.float32)
              if x.ndim >= 2 and not np.any(x) else x for x in leaves]
    nnx.update(model, jax.tree.unflatten(treedef, leaves))


@pytest.fixture(scope="module")
def model():
    model = STUNet(TEXT, UNET, TEMPORAL, rngs=nnx.Rngs(0))
    randomise_zero_weights(model, seed=1)
    return model


@pytest.fixture(scope="module")
def inputs(model):
    keys = jax.random.split(jax.random.key(2), 3)
    video = jax.random.normal(keys[0], (BATCH, FRAMES, UNET.resolution, UNET.resolution, 3))
    t = jax.random.uniform(keys[1], (BATCH,))
    tokens = jax.random.randint(keys[2], (BATCH, TEXT.max_length), 3, 200)
    return video, t, model.encode_text(tokens)


def compiled_forward(model, video, t, cond):
    """(denoised clips, compiled program text); it runs wherever its inputs live."""
    graphdef, state = nnx.split(model)
    forward = lambda state, *args: nnx.merge(graphdef, state).denoise(*args)
    compiled = jax.jit(forward).lower(state, video, t, cond).compile()
    return compiled(state, video, t, cond), compiled.as_text()


@pytest.fixture(scope="module")
def unsharded_output(model, inputs):
    return jax.device_get(compiled_forward(model, *inputs)[0])


def time_sharded_copy(model, mesh):
    sharded = nnx.clone(model)
    sharded.shard_frames(FrameSharding(mesh))
    return sharded


def put_on_mesh(model, inputs, mesh):
    """The model's weights (FSDP over 'fsdp') and the inputs (batch over data x fsdp, frames over
    time) on the mesh."""
    graphdef, state = nnx.split(model)
    model = nnx.merge(graphdef, shard_train_state(state, mesh, NO_RULES))
    video, t, cond = inputs
    rows = NamedSharding(mesh, P(("data", "fsdp")))
    return model, (jax.device_put(video, NamedSharding(mesh, P(("data", "fsdp"), "time"))),
                   jax.device_put(t, rows), jax.device_put(cond, rows))


def test_mesh_from_config():
    mesh = make_mesh(MeshSettings(data=-1, fsdp=2, time=2))
    assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "time": 2}
    assert mesh.axis_types == (AxisType.Auto,) * 3
    assert dict(make_mesh(MeshSettings()).shape) == {"data": 8, "fsdp": 1, "time": 1}
    with pytest.raises(ConfigError, match=r"data=2 x fsdp=1 x time=2 does not fit the 8 device"):
        make_mesh(MeshSettings(data=2, fsdp=1, time=2))
    with pytest.raises(ConfigError, match="does not fit"):
        make_mesh(MeshSettings(data=-1, fsdp=3, time=1))
    with pytest.raises(ValueError, match="unknown logical axes"):
        MeshSettings(rules={"embedding": "fsdp"})
    with pytest.raises(ValueError, match="unknown mesh axes"):
        MeshSettings(rules={"embed": "model"})


def test_rules_then_fsdp_on_the_largest_divisible_dimension():
    mesh = mesh_of((2, 2, 2))
    names = ("conv_window", "conv_window", "conv_in", "conv_out")
    both = ("fsdp", "time")  # a clip's time shards hold the same weights: split over both
    assert weight_spec((3, 3, 16, 32), names, NO_RULES, mesh) == P(None, None, None, both)
    assert weight_spec((3, 3, 16, 32), names, {"conv_out": "data"}, mesh) == \
        P(None, None, both, "data")
    assert weight_spec((3, 3, 16, 32), names, {"conv_in": "fsdp"}, mesh) == \
        P(None, None, "fsdp", "time")
    assert weight_spec((3, 3, 16, 6), names, NO_RULES, mesh) == P(None, None, both, None)
    assert weight_spec((3, 3, 5, 6), names, NO_RULES, mesh) == P(None, None, None, "fsdp")
    assert weight_spec((3, 3, 5, 7), names, NO_RULES, mesh) == P(None, None, None, None)
    assert weight_spec((3, 3, 16, 32), names, NO_RULES, mesh_of((2, 4, 1))) == \
        P(None, None, None, "fsdp")
    assert weight_spec((3, 3, 16, 32), names, NO_RULES, mesh_of((1, 1, 8))) == \
        P(None, None, None, "time")
    assert weight_spec((), None, NO_RULES, mesh) == P()
    assert weight_spec((16,), ("norm",), NO_RULES, mesh_of((8, 1, 1))) == P(None)


def test_every_weight_has_logical_names(model):
    unnamed = [path for path, variable in nnx.state(model, nnx.Param).flat_state()
               if logical_axes(variable) is None]
    assert not unnamed


def test_train_state_and_optimizer_state_are_fsdp_sharded(model):
    mesh = mesh_of((2, 2, 2))
    optimizer = make_optimizer(OptimSettings())
    _, state = create_train_state(nnx.clone(model), optimizer, seed=0, trainable=TemporalParam)
    sharded = shard_train_state(state, mesh, NO_RULES)
    chex.assert_trees_all_equal(jax.device_get(sharded), jax.device_get(state))
    kernel = lambda tree: tree["temporal_convs"]["down_0_0"]["conv"]["kernel"].get_value()
    adam = adam_moments(sharded)
    for array in (kernel(sharded.params), kernel(adam.mu), kernel(adam.nu)):
        assert array.sharding.spec == P(None, None, ("fsdp", "time"))  # (taps 3, in 8, out 8)
    assert sharded.step.sharding.spec == P()
    specs = jax.tree.leaves(state_shardings(state, mesh, NO_RULES))
    assert sum("fsdp" in split_axes(sharding.spec) for sharding in specs) > len(specs) // 2


@pytest.mark.parametrize("mesh_shape,kernel,spatial", [((2, 1, 4), 3, 1), ((1, 1, 8), 3, 1),
                                                       ((1, 2, 4), 5, 1), ((2, 1, 4), 3, 3)])
def test_halo_exchanged_temporal_conv_equals_the_unsharded_conv_exactly(mesh_shape, kernel,
                                                                         spatial):
    mesh = mesh_of(mesh_shape)
    conv = (temporal_conv(8, kernel, nnx.Rngs(3)) if spatial == 1 else
            space_time_conv(8, kernel, spatial, nnx.Rngs(3)))
    video = jax.random.normal(jax.random.key(4), (2, 16, 3, 3, 8))

    def apply(frame_sharding, video):
        return frame_sharding.map_frames(
            lambda frames, conv: conv_over_time(conv, frames, frame_sharding), video, conv)

    expected = jax.jit(lambda v: apply(UNSHARDED, v))(video)
    clip = jax.device_put(video, NamedSharding(mesh, P(("data", "fsdp"), "time")))
    actual = jax.jit(lambda v: apply(FrameSharding(mesh), v))(clip)
    assert actual.sharding.spec == P(("data", "fsdp"), "time")
    # Each output frame is the same sum over the same frames (neighbours' or zeros): bit-equal.
    np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected))


def mesh_ids(meshes):
    return ["x".join(map(str, shape)) for shape in meshes]


MESH_IDS = mesh_ids(MESHES)


@pytest.mark.parametrize("mesh_shape", MESHES, ids=MESH_IDS)
def test_stunet_output_matches_unsharded(model, inputs, unsharded_output, mesh_shape):
    mesh = mesh_of(mesh_shape)
    sharded_model, sharded_inputs = put_on_mesh(time_sharded_copy(model, mesh), inputs, mesh)
    out, program = compiled_forward(sharded_model, *sharded_inputs)
    if mesh.shape["time"] > 1:  # halos move between time shards; attention gathers frames
        assert "collective-permute" in program and "all-gather" in program
    assert_trees_close(out, unsharded_output)


LEARNING_RATE = 1e-3


def tiny_train_step(model, mesh=None):
    """(state, step) of the shared trainer's step for `model`, sharded on `mesh` if given."""
    diffusion = DiffusionSettings(schedule="cosine", prediction="v", cond_drop_prob=0.25)
    optim = OptimSettings(learning_rate=LEARNING_RATE, warmup_steps=0, total_steps=10,
                          ema_decay=0.9)
    optimizer = make_optimizer(optim)
    graphdef, state = create_train_state(model, optimizer, seed=0, trainable=TemporalParam)
    step = make_train_step(graphdef, diffusion, optim, optimizer)
    if mesh is None:
        return state, jax.jit(step)
    shardings = state_shardings(state, mesh, NO_RULES)
    batch = train_batch_shardings(mesh, BATCH, clips=True)
    return (shard_train_state(state, mesh, NO_RULES),
            jit_sharded_train_step(step, mesh, shardings, batch))


@pytest.fixture(scope="module")
def train_batch():
    keys = jax.random.split(jax.random.key(5))
    shape = (BATCH, FRAMES, UNET.resolution, UNET.resolution, 3)
    return {"frames": np.asarray(jax.random.randint(keys[0], shape, 0, 256), np.uint8),
            "tokens": np.asarray(jax.random.randint(keys[1], (BATCH, TEXT.max_length), 3, 200))}


@pytest.fixture(scope="module")
def unsharded_step_result(model, train_batch):
    state, step = tiny_train_step(nnx.clone(model))
    return jax.device_get(step(state, train_batch))


# The train step on the two meshes that split the most: weights over fsdp with frames over time,
# and frames alone over all 8 devices (1 frame a shard at the coarsest level). Data parallelism
# is checked by the forward test above and by the trainer's own runs (tests/test_multihost.py).
TRAIN_MESHES = [(1, 2, 4), (1, 1, 8)]
TRAIN_MESH_IDS = mesh_ids(TRAIN_MESHES)


@pytest.mark.parametrize("mesh_shape", TRAIN_MESHES, ids=TRAIN_MESH_IDS)
def test_train_step_and_temporal_grads_match_unsharded(model, train_batch, unsharded_step_result,
                                                        mesh_shape):
    mesh = mesh_of(mesh_shape)
    state, step = tiny_train_step(time_sharded_copy(model, mesh), mesh)
    new_state, metrics = step(state, train_batch)
    expected_state, expected_metrics = unsharded_step_result
    assert int(new_state.step) == 1
    assert_trees_close(metrics, expected_metrics)
    # After one unclipped step Adam's first moment is (1 - b1) * the gradient of the loss with
    # respect to the temporal weights: the gradients agree.
    assert expected_metrics["grad_norm"] < OptimSettings().clip_norm
    assert_trees_close(adam_moments(new_state).mu, adam_moments(expected_state).mu)
    assert_train_states_close(new_state, expected_state, [LEARNING_RATE])


def test_clips_that_do_not_split_into_whole_blocks_are_refused(model):
    with pytest.raises(ValueError) as error:
        model.check_frame_count(6, shards=4)
    message = str(error.value)
    for part in ("6-frame clip", "time axis of 4 shards", "U-Net level 0",
                 "6 / 4 = 1.5 frames per shard", "not a whole number", "4, 8, 12"):
        assert part in message, message
    model.check_frame_count(8, shards=8)  # 1 frame per shard: its halving runs gathered
    sharded = time_sharded_copy(model, mesh_of((1, 1, 8)))
    video = jnp.zeros((1, 12, UNET.resolution, UNET.resolution, 3))
    cond = {"context": jnp.zeros((1, 2, TEXT.width)), "mask": jnp.ones((1, 2), bool)}
    with pytest.raises(ValueError, match="U-Net level 0 would hold 12 / 8 = 1.5 frames"):
        jax.eval_shape(lambda v: sharded.denoise(v, jnp.zeros((1,)), cond), video)


def test_split_problem_names_each_reason_and_accepts_whole_blocks():
    """The one rule behind both the clip's refusal and the gathered levels."""
    assert split_problem(16, 8, halo=1, halving=True) is None
    assert "not a whole number" in split_problem(12, 8)
    assert "fewer than the 2 frame(s)" in split_problem(8, 8, halo=2)
    assert "odd block" in split_problem(24, 8, halving=True)
    assert split_problem(24, 8) is None  # the same 3-frame blocks, without halving


def test_levels_whose_frames_do_not_split_run_gathered(model):
    """16 frames over 8 shards: 2 a shard at level 0 (halved locally), 8 at level 1 (1 a shard);
    8 frames: 1 a shard at level 0, whose halving (and the 4-frame level 1) runs gathered."""
    layouts = lambda frames, mesh: time_sharded_copy(model, mesh_of(mesh)).gathered_sites(frames)
    assert layouts(16, (1, 1, 8)) == ()
    assert layouts(8, (1, 1, 8)) == ("down.0.downsample", "down.1.0", "middle.0", "middle.1",
                                     "up.1.0", "up.1.1", "up.1.upsample")
    assert layouts(12, (2, 1, 4)) == layouts(8, (1, 1, 8))  # 3 a shard: odd, then 6 / 4
    assert time_sharded_copy(model, mesh_of((8, 1, 1))).gathered_sites(8) == ()


@pytest.mark.parametrize("mesh_shape,frames", [((1, 1, 8), 8), ((2, 1, 4), 12)],
                         ids=["8frames_1x1x8", "12frames_2x1x4"])
def test_mixed_sharded_and_gathered_levels_match_unsharded(model, inputs, mesh_shape, frames):
    """Level 0 split over time, the coarser level gathered, level 0 split again on the way up."""
    video, t, cond = inputs
    clip_inputs = (video[:, :frames], t, cond)
    expected = jax.device_get(compiled_forward(model, *clip_inputs)[0])
    mesh = mesh_of(mesh_shape)
    sharded_model, sharded_inputs = put_on_mesh(time_sharded_copy(model, mesh), clip_inputs, mesh)
    out, program = compiled_forward(sharded_model, *sharded_inputs)
    assert "collective-permute" in program  # level 0's halos still move between shards
    assert_trees_close(out, expected)


def test_time_sharding_of_an_image_model_is_refused():
    config = t2i_shapes.get_config("variant=tiny")
    config.mesh.update(data=4, time=2)
    with pytest.raises(ConfigError, match="single frames.*have no time axis"):
        setup(parse_run_config(config))


def processes_of(mesh_shape, devices_per_process):
    """Process index of each device of a mesh laid out in device order (jax.make_mesh on CPU)."""
    return np.arange(np.prod(mesh_shape)).reshape(mesh_shape) // devices_per_process


@pytest.mark.parametrize("mesh_shape, per_process, expected", [
    ((1, 4, 1), 1, [RowGroup(p, 4, (p,), 4) for p in range(4)]),  # a batch shard per process
    ((2, 2, 2), 4, [RowGroup(0, 2, (0, 1), 4), RowGroup(1, 2, (2, 3), 4)]),
    ((1, 2, 8), 4, [RowGroup(0, 2, (0,), 2)] * 2 + [RowGroup(1, 2, (1,), 2)] * 2),  # v5e-16
    ((1, 1, 8), 2, [RowGroup(0, 1, (0,), 1)] * 4),  # every process holds the one shard
])
def test_row_groups_are_the_processes_that_hold_the_same_rows(mesh_shape, per_process, expected):
    processes = processes_of(mesh_shape, per_process)
    axis_names = ("data", "fsdp", "time")
    assert [row_group_of(processes, axis_names, p) for p in range(len(expected))] == expected


def test_row_groups_of_interleaved_shards_map_rows_to_their_place_in_the_local_batch():
    # v5p-16 with mesh (1, 8, 2): each host's chips hold fsdp rows i and i + 4.
    processes = np.array([[0, 0], [1, 1], [2, 2], [3, 3]] * 2).reshape(1, 8, 2)
    group = row_group_of(processes, ("data", "fsdp", "time"), 1)
    assert group == RowGroup(1, 4, (1, 5), 8)
    # A global batch of 16: 2 rows per shard; shard 5 is the second block of the local batch.
    assert group.local_rows(10, 12, 16) == slice(2, 4)
    assert group.local_rows(2, 4, 16) == slice(0, 2)
    with pytest.raises(ValueError, match=r"batch shards \[0\]"):
        group.local_rows(0, 2, 16)


def test_processes_sharing_some_but_not_all_rows_are_refused():
    processes = np.array([[0, 1], [0, 0]]).reshape(1, 2, 2)  # process 0 holds shards 0 and 1
    with pytest.raises(ValueError, match="must hold the same shards"):
        row_group_of(processes, ("data", "fsdp", "time"), 0)


def test_global_batch_places_each_devices_rows_and_frames():
    mesh = mesh_of((1, 2, 4))
    shardings = train_batch_shardings(mesh, 4, clips=True)
    frames = np.arange(4 * 8 * 2 * 2 * 3, dtype=np.int32).reshape(4, 8, 2, 2, 3)
    tokens = np.arange(4 * 5, dtype=np.int32).reshape(4, 5)
    placed = global_batch({"frames": frames, "tokens": tokens}, shardings, row_group(mesh))
    np.testing.assert_array_equal(np.asarray(placed["frames"]), frames)
    np.testing.assert_array_equal(np.asarray(placed["tokens"]), tokens)
    for shard in placed["frames"].addressable_shards:  # 2 clips x 2 frames on every device
        assert shard.data.shape == (2, 2, 2, 2, 3)
        np.testing.assert_array_equal(np.asarray(shard.data), frames[shard.index])
    # A process that loaded another group's rows cannot fill this process's devices.
    with pytest.raises(ValueError, match=r"this process loaded shards \[1\]"):
        global_batch({"tokens": tokens[:2]}, shardings, RowGroup(1, 2, (1,), 2))


def test_space_time_attention_sharded_over_time_matches_unsharded(inputs):
    """Each time shard's (frame, pixel) queries attend to the gathered clip, with the position
    bias rows of its own frames."""
    model = STUNet(TEXT, UNET, dataclasses.replace(TEMPORAL, temporal_attention_span="space_time"),
                   rngs=nnx.Rngs(0))
    randomise_zero_weights(model, seed=1)
    for table in model.temporal_attention["middle_0"][0].position_bias.tables:
        table[...] = jax.random.normal(jax.random.key(table.shape[0]), table.shape)
    expected = jax.device_get(compiled_forward(model, *inputs)[0])
    mesh = mesh_of((1, 1, 8))
    sharded_model, sharded_inputs = put_on_mesh(time_sharded_copy(model, mesh), inputs, mesh)
    assert sharded_model.gathered_sites(FRAMES) == ()  # the coarsest level is split, 1 frame a shard
    out, program = compiled_forward(sharded_model, *sharded_inputs)
    assert "all-gather" in program
    assert_trees_close(out, expected)


def test_space_time_position_sharded_over_time_matches_unsharded(inputs):
    """Each time shard's frames get the position features of their place in the whole clip
    (in the gated conv blocks and in the text attention that follows them)."""
    model = STUNet(TEXT, UNET, dataclasses.replace(TEMPORAL, space_time_position=True,
                                                   text_attention_levels=(0,),
                                                   temporal_conv_gate=True),
                   rngs=nnx.Rngs(0))
    assert model.temporal_text_attention
    randomise_zero_weights(model, seed=1)
    expected = jax.device_get(compiled_forward(model, *inputs)[0])
    mesh = mesh_of((1, 1, 8))
    sharded_model, sharded_inputs = put_on_mesh(time_sharded_copy(model, mesh), inputs, mesh)
    out, _ = compiled_forward(sharded_model, *sharded_inputs)
    assert_trees_close(out, expected)
