"""STUNet through the shared trainer: only temporal weights move; exports round-trip."""
import dataclasses

import chex
import jax
import numpy as np
import pytest
from absl import flags
from flax import nnx
from ml_collections import config_flags

from configs import stunet_shapes, t2i_shapes
from lumiere_jax.checkpoints.exported import (CheckpointError, load_exported, read_exported_config,
                                              save_exported)
from lumiere_jax.models.build import build_model
from lumiere_jax.models.settings import parse_model_config
from lumiere_jax.nn.temporal import TemporalParam
from lumiere_jax.settings import ConfigError
from lumiere_jax.train.settings import parse_run_config
from lumiere_jax.train.setup import setup


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    """A tiny exported T2I whose zero-initialised output layers are randomised (as after training:
    with a zero output conv no gradient would reach any layer)."""
    t2i_config = t2i_shapes.get_config("variant=tiny")
    model = build_model(parse_model_config(t2i_config.model), seed=5)
    params = nnx.state(model, nnx.Param)
    keys = iter(jax.random.split(jax.random.key(0), 1000))
    params = jax.tree.map(
        lambda x: jax.random.normal(next(keys), x.shape) * 0.05 if not np.any(x) else x, params)
    directory = str(tmp_path_factory.mktemp("backbone") / "t2i")
    save_exported(directory, params, t2i_config.to_dict())
    return directory


@pytest.fixture()
def config(tmp_path_factory, backbone):
    config = stunet_shapes.get_config("variant=tiny")
    config.data.data_dir = str(tmp_path_factory.getbasetemp() / "stunet_datasets")
    config.model.backbone = backbone
    return config


def leaves_by_path(state):
    return {path: np.asarray(v.value if hasattr(v, "value") else v)
            for path, v in state.flat_state()}


def test_training_moves_only_temporal_weights(config, backbone):
    trainer = setup(parse_run_config(config))
    graphdef, state, step = trainer.graphdef, trainer.state, trainer.train_step
    iterator = trainer.make_iterator()
    model = nnx.merge(graphdef, state.params, state.frozen)
    backbone_model, _ = load_exported(backbone)
    chex.assert_trees_all_equal(nnx.state(model.spatial, nnx.Param),
                                nnx.state(backbone_model, nnx.Param))
    frozen_before = leaves_by_path(nnx.state(model, nnx.All(nnx.Param, nnx.Not(TemporalParam))))
    temporal_before = leaves_by_path(nnx.state(model, TemporalParam))
    assert set(leaves_by_path(state.params)) == set(temporal_before)
    for _ in range(4):
        batch = next(iterator)
        assert batch["frames"].ndim == 5  # whole clips
        state, metrics = step(state, {"frames": batch["frames"], "tokens": batch["tokens"]})
    model = nnx.merge(graphdef, state.params, state.frozen)
    frozen_after = leaves_by_path(nnx.state(model, nnx.All(nnx.Param, nnx.Not(TemporalParam))))
    temporal_after = leaves_by_path(nnx.state(model, TemporalParam))
    assert frozen_after.keys() == frozen_before.keys()
    for path, value in frozen_before.items():
        np.testing.assert_array_equal(frozen_after[path], value, err_msg=str(path))
    changed = [p for p, v in temporal_before.items() if not np.array_equal(temporal_after[p], v)]
    assert len(changed) > len(temporal_before) // 2, changed


def test_video_model_needs_clips_of_a_valid_length(config):
    config.data.num_frames = 3
    with pytest.raises(ValueError, match="multiple of 2"):
        setup(parse_run_config(config))
    config.data.update(num_frames=4, mode="frames")
    with pytest.raises(ConfigError, match="clips"):
        setup(parse_run_config(config))


def test_stunet_export_round_trip_needs_no_backbone_path(config, tmp_path):
    model = build_model(parse_model_config(config.model), seed=1)
    params = nnx.state(model, nnx.Param)
    exported = config.to_dict()
    exported["model"]["backbone"] = str(tmp_path / "moved_away")
    save_exported(str(tmp_path / "export"), params, exported)
    loaded, _ = load_exported(str(tmp_path / "export"))
    chex.assert_trees_all_equal(nnx.state(loaded, nnx.Param), params)


def test_base_config_inflates_the_backbone_it_is_given(backbone):
    """`:backbone=DIR` reads the spatial model and the schedule from that export, not from the
    shipped T2I; the tiny variant (a random backbone) refuses one; a missing export is named."""
    given = read_exported_config(backbone)
    config = stunet_shapes.get_config(f"backbone={backbone}")
    assert config.model.backbone == backbone
    assert config.model.unet.to_dict() == given.model.unet.to_dict()
    assert config.model.unet.to_dict() != stunet_shapes.get_config().model.unet.to_dict()
    for key in ("schedule", "schedule_shift", "prediction"):
        assert config.diffusion[key] == given.diffusion[key]
    with pytest.raises(ValueError, match="variant=tiny"):
        stunet_shapes.get_config(f"variant=tiny,backbone={backbone}")
    with pytest.raises(CheckpointError, match="does not exist"):
        stunet_shapes.get_config(f"backbone={backbone}_missing")


def test_sharded_initialisation_creates_only_shards_and_restores_the_backbone_into_them(
        config, backbone):
    """The fresh state is made under jit with its planned shardings and the backbone restored into
    them: nothing is copied back to the host, no new live array is a whole copy of an
    fsdp-sharded weight, each device holds about 1/fsdp of the state, and the backbone's values
    are the export's."""
    fsdp = 4
    config.mesh.update(data=2, fsdp=fsdp, time=1)
    config.data.batch_size = 2
    before = jax.live_arrays()  # held, so no new array can reuse an old one's id
    with jax.transfer_guard_device_to_host("disallow_explicit"):
        trainer = setup(parse_run_config(config))
    known = {id(x) for x in before}
    created = [x for x in jax.live_arrays() if id(x) not in known]
    state = trainer.state
    planned = jax.tree.leaves(trainer.state_shardings)
    leaves = jax.tree.leaves(state)
    assert len(planned) == len(leaves)
    for leaf, sharding in zip(leaves, planned):
        assert leaf.sharding.is_equivalent_to(sharding, leaf.ndim)
    model = nnx.merge(trainer.graphdef, state.params, state.frozen)
    split = [x for x in jax.tree.leaves(nnx.state(model.spatial, nnx.Param))
             if "fsdp" in x.sharding.spec]
    assert split, "no backbone weight is fsdp-sharded"
    for weight in split:
        assert all(s.data.size * fsdp == weight.size for s in weight.addressable_shards)
    sharded_shapes = {weight.shape for weight in split}
    whole_copies = [x.shape for x in created if x.shape in sharded_shapes
                    and any(s.data.size == x.size for s in x.addressable_shards)]
    assert not whole_copies, whole_copies
    device = jax.devices()[0]
    held = sum(s.data.nbytes for x in leaves for s in x.addressable_shards if s.device == device)
    assert held <= 1.25 * sum(x.nbytes for x in leaves) / fsdp, held
    backbone_model, _ = load_exported(backbone)
    chex.assert_trees_all_equal(nnx.state(model.spatial, nnx.Param),
                                nnx.state(backbone_model, nnx.Param))


def test_a_bf16_frozen_backbone_is_restored_rounded_and_trains_only_temporal_weights(
        config, backbone):
    """compute.frozen_dtype=bfloat16: the backbone is restored from its fp32 export straight into
    bf16 targets (its values rounded once), the temporal weights and their optimizer state stay
    fp32, and a step moves only them."""
    config.compute.frozen_dtype = "bfloat16"
    trainer = setup(parse_run_config(config))
    state = trainer.state
    model = nnx.merge(trainer.graphdef, state.params, state.frozen)
    exported = nnx.state(load_exported(backbone)[0], nnx.Param)
    restored = nnx.state(model.spatial, nnx.Param)
    assert {x.dtype for x in jax.tree.leaves(restored)} == {np.dtype(jax.numpy.bfloat16)}
    chex.assert_trees_all_equal(restored, jax.tree.map(lambda x: x.astype(jax.numpy.bfloat16),
                                                       exported))
    assert {x.dtype for x in jax.tree.leaves((state.params, state.ema_params))} == {
        np.dtype(np.float32)}
    frozen, params = jax.tree.map(np.asarray, (state.frozen, state.params))  # the step donates
    iterator = trainer.make_iterator()
    new_state = state
    for _ in range(2):  # the warm-up's first learning rate is 0
        batch = next(iterator)
        new_state, metrics = trainer.train_step(new_state, {"frames": batch["frames"],
                                                            "tokens": batch["tokens"]})
        assert np.isfinite(float(metrics["loss"]))
    chex.assert_trees_all_equal(jax.tree.map(np.asarray, new_state.frozen), frozen)
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(new_state.params),
                                                         jax.tree.leaves(params)))


@pytest.mark.parametrize("arg", ["variant=base", "variant=tiny"])
def test_the_config_spells_out_the_papers_temporal_levels_and_a_flag_can_drop_them(arg):
    """The shapes config names every level that downsamples in space (what None resolves to),
    so that `--config.model.temporal.temporal_down_levels=()` can turn the resampling off."""
    config = stunet_shapes.get_config(arg)
    model = parse_run_config(config).model
    resolved_default = dataclasses.replace(model.temporal, temporal_down_levels=None).resolve(
        model.unet)
    assert model.temporal.temporal_down_levels == resolved_default.temporal_down_levels
    assert len(model.temporal.temporal_down_levels) == len(model.unet.channel_mult) - 1 > 0
    argv = ["prog", f"--config=configs/stunet_shapes.py:{arg}",
            "--config.model.temporal.temporal_down_levels=()"]
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", flag_values=values, sys_argv=argv)  # as main.py
    values(argv)
    assert parse_run_config(values.config).model.temporal.temporal_down_levels == ()


def test_a_partial_start_restores_shared_weights_keeps_new_layers_fresh_and_refuses_clashes(
        config, backbone, tmp_path, capsys):
    """`checkpoint.init_from_partial`: a STUNet given layers its start export lacks (cross-
    attention to the text after the level-0 conv blocks) starts from every weight the export
    has, and its new layers keep the fresh initialisation; the reverse start leaves those
    weights out and says so. Without the switch the same start is refused, and so is a layer
    whose shape changed."""
    model = build_model(parse_model_config(config.model), seed=1)
    params = jax.tree.map(lambda x: x + 0.01, nnx.state(model, nnx.Param))  # no init equals it
    export = str(tmp_path / "export")
    save_exported(export, params, config.to_dict())
    saved = leaves_by_path(params)

    config.model.temporal.text_attention_levels = (0,)
    config.checkpoint.init_from = export
    with pytest.raises(CheckpointError, match=r"params/\) could not be read"):
        setup(parse_run_config(config))
    config.checkpoint.init_from_partial = True
    trainer = setup(parse_run_config(config))
    started = leaves_by_path(nnx.state(
        nnx.merge(trainer.graphdef, trainer.state.params, trainer.state.frozen), nnx.Param))
    new = set(started) - set(saved)
    assert new and set(saved) <= set(started)
    for path, value in saved.items():
        np.testing.assert_array_equal(started[path], value, err_msg=str(path))
    fresh = leaves_by_path(nnx.state(build_model(parse_model_config(config.model),
                                                 seed=config.seed), nnx.Param))
    for path in new:
        np.testing.assert_array_equal(started[path], fresh[path], err_msg=str(path))
    printed = capsys.readouterr().out
    assert f"{len(new)} weight(s) the export lacks keep their initialisation" in printed
    assert printed.count("  kept fresh: ") == len(new)

    with_text = str(tmp_path / "with_text")
    save_exported(with_text, nnx.state(nnx.merge(trainer.graphdef, trainer.state.params,
                                                 trainer.state.frozen), nnx.Param),
                  config.to_dict())
    config.model.temporal.text_attention_levels = ()
    config.checkpoint.init_from = with_text
    setup(parse_run_config(config))
    assert f"{len(new)} of its weight(s) the model lacks are left out" in capsys.readouterr().out

    config.model.temporal.temporal_conv_kernel = 5
    config.checkpoint.init_from = export
    with pytest.raises(CheckpointError, match="other shapes than the model's"):
        setup(parse_run_config(config))
    config.model.temporal.temporal_conv_kernel = 3
    config.checkpoint.init_from = backbone  # a T2I export: none of a STUNet's weight names
    with pytest.raises(CheckpointError, match="has none of the model's weights"):
        setup(parse_run_config(config))
