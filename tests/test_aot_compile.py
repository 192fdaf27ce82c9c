"""Ahead-of-time TPU plans (launch/aot_compile.py, launch/aot_sample.py): argument checks, the
planned steps equal to what the trainer and the sampler run, and real compiles of the tiny
STUNet for a small TPU topology when libtpu (the `tpu` extra) is installed."""
import importlib.util
import subprocess
import sys

import jax
import numpy as np
import pytest

from flax import nnx

from configs import ssr_shapes, stunet_shapes, t2i_shapes
from launch import aot_compile, aot_sample
from lumiere_jax.diffusion.model_sampling import guided_denoiser
from lumiere_jax.models.build import build_model
from lumiere_jax.models.settings import parse_model_config
from lumiere_jax.parallel.batch import global_batch
from lumiere_jax.settings import ConfigError
from lumiere_jax.train.settings import parse_run_config
from lumiere_jax.train.setup import setup
from limits import SAFETY_LIMIT_S

HAS_LIBTPU = importlib.util.find_spec("libtpu") is not None


def test_topology_names_are_parsed_or_refused():
    assert aot_compile.parse_topology("v5p:2x2x4") == ("v5p", 16)
    assert aot_compile.parse_topology("v5e:4x4") == ("v5e", 16)
    for bad in ("v9:4x4", "v5p", "v5p:4", "v5p:axb"):
        with pytest.raises(ValueError, match="GENERATION:SHAPE"):
            aot_compile.parse_topology(bad)


def test_mesh_flag_is_parsed_or_refused():
    assert aot_compile.parse_mesh("fsdp=8,time=2") == {"data": 1, "fsdp": 8, "time": 2}
    assert aot_compile.parse_mesh("data=-1") == {"data": -1, "fsdp": 1, "time": 1}
    for bad in ("model=2", "time=two", "time"):
        with pytest.raises(ValueError, match="AXIS=SIZE"):
            aot_compile.parse_mesh(bad)


def test_a_batch_the_mesh_cannot_split_is_refused():
    config = stunet_shapes.get_config("variant=tiny")
    with pytest.raises(ConfigError, match="multiple of 4"):
        aot_compile.plan(config, "v5p:2x2x1", {"data": 1, "fsdp": 4, "time": 1}, global_batch=6)
    with pytest.raises(ConfigError, match="multiply to 4"):
        aot_compile.plan(config, "v5p:2x2x1", {"data": 1, "fsdp": 3, "time": 1}, global_batch=3)


def test_the_plan_lowers_the_step_the_trainer_runs(tmp_path):
    """On the 8 CPU devices: the plan's abstract setup (nothing allocated, no data) and the
    trainer's setup (weights placed on the mesh) lower the same step, frames split over time."""
    config = stunet_shapes.get_config("variant=tiny")
    config.data.update(batch_size=4, data_dir=str(tmp_path))
    config.mesh.update(data=2, fsdp=2, time=2)
    run = parse_run_config(config)
    trainer = setup(run)
    planned = aot_compile.plan_setup(run, jax.devices(), global_batch=4)
    assert planned.make_iterator is None and not any(tmp_path.iterdir())  # no data read
    assert all(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(planned.state))
    local = {"frames": np.zeros((4, 4, 16, 16, 3), np.uint8), "tokens": np.ones((4, 32), np.int32)}
    trained = trainer.step.lower(trainer.state, global_batch(local, trainer.batch_shardings))
    plan = planned.lower()
    assert plan.as_text() == trained.as_text()
    assert plan.cost_analysis()["flops"] == trained.cost_analysis()["flops"] > 0


@pytest.fixture(scope="module")
def tiny_plans():
    if not HAS_LIBTPU:
        pytest.skip("libtpu is not installed (pip install -e '.[tpu]')")
    config = stunet_shapes.get_config("variant=tiny")
    # 16-frame clips (at the tiny 16 px), so that activations (not weights) dominate the chip's
    # memory: about 25x the arguments. (32 px clips only double the TPU compile time; with 8
    # frames the per-chip temporaries barely differ between the two meshes.)
    config.data.update(num_frames=16)
    # One clip per chip without time shards; half a clip per chip with 2 (fsdp kept at 2).
    return {1: aot_compile.plan(config, "v5p:2x2x1", {"data": 2, "fsdp": 2, "time": 1}, 4),
            2: aot_compile.plan(config, "v5p:2x2x1", {"data": 1, "fsdp": 2, "time": 2}, 2)}


def test_time_shards_cut_the_activation_memory_per_chip(tiny_plans):
    one, two = tiny_plans[1], tiny_plans[2]
    assert two["mesh"] == {"data": 1, "fsdp": 2, "time": 2}
    assert two["temp_gib"] < 0.8 * one["temp_gib"]
    assert one["fits"] and one["compiled"] and one["peak_gib"] >= one["argument_gib"]


def test_flops_per_chip_cover_the_unpartitioned_step(tiny_plans):
    for result in tiny_plans.values():
        assert result["chip_tflops_per_step"] * result["chips"] >= 0.99 * result["model_tflops_per_step"]
        assert 0 < result["mfu_at_peak"] <= 1.01
        assert result["step_s_at_peak"] == pytest.approx(
            result["chip_tflops_per_step"] / aot_compile.CHIPS["v5p"].peak_tflops)


@pytest.mark.skipif(not HAS_LIBTPU, reason="libtpu is not installed (pip install -e '.[tpu]')")
def test_command_line_refuses_an_unsplittable_clip(tmp_path):
    """20 frames over 8 time shards: 2.5 frames per shard."""
    out = tmp_path / "plan.json"
    result = subprocess.run(
        [sys.executable, "-m", "launch.aot_compile", "--config", "configs/stunet_shapes.py:variant=tiny",
         "--topology", "v5p:2x2x2", "--mesh", "data=1,fsdp=1,time=8", "--batch", "1",
         "--config.data.num_frames=20", f"--json={out}"],
        capture_output=True, text=True, timeout=SAFETY_LIMIT_S)
    assert result.returncode != 0
    assert "cannot be split over the mesh's time axis of 8 shards" in result.stderr
    assert "not a whole number of frames" in result.stderr
    assert not out.exists()


@pytest.mark.skipif(not HAS_LIBTPU, reason="libtpu is not installed (pip install -e '.[tpu]')")
def test_a_step_too_big_for_the_chip_is_reported_not_raised():
    # The tiny T2I compiles for TPU several times faster than the tiny STUNet.
    config = t2i_shapes.get_config("variant=tiny")
    result = aot_compile.plan(config, "v5e:2x2", {"data": 1, "fsdp": 4, "time": 1},
                              global_batch=262144)
    assert not result["compiled"] and not result["fits"]
    assert result["temp_gib"] > result["hbm_gib"] == aot_compile.CHIPS["v5e"].hbm_gib
    assert result["argument_gib"] > 0 and result["model_tflops_per_step"] > 0


def test_both_forms_of_the_compilers_out_of_memory_report_are_read():
    gib = 2 ** 30
    before_remat = ("RESOURCE_EXHAUSTED: XLA:TPU compile permanent error. The total memory "
                    "required for HLO temporaries (172.38G) exceeds available HBM (95.73G).")
    assert aot_compile.compiler_oom_temporaries(before_remat, gib) == 172.38 * gib
    after_remat = ("RESOURCE_EXHAUSTED: Ran out of memory in memory space hbm. Used 16.10G of "
                   "15.75G hbm. Exceeded hbm capacity by 356.62M.")
    # This form counts the whole program: the chip's arguments are taken off.
    assert aot_compile.compiler_oom_temporaries(after_remat, int(1.5 * gib)) == (
        pytest.approx((16.10 - 1.5) * gib))
    assert aot_compile.compiler_oom_temporaries("INTERNAL: something else broke", gib) is None


def test_the_sampling_plan_runs_the_samplers_windowed_step(tmp_path):
    """On the 8 CPU devices: the sampling plan's step (trainer's weight layout, clip rows over
    fsdp and frames over time) equals the sampler's own guided, windowed denoiser on one device."""
    config = ssr_shapes.get_config("variant=tiny")
    config.data.update(data_dir=str(tmp_path), num_frames=4)  # the window the model sees
    config.mesh.update(data=1, fsdp=4, time=2)
    trainer = setup(parse_run_config(config), global_batch=4)
    clips, frames, window, stride = 4, 10, 4, 2
    jitted, arguments = aot_sample.jit_sampling_step(
        trainer, clips=clips, frames=frames, window=window, stride=stride, window_chunk=3,
        guidance=2.0)
    keys = iter(jax.random.split(jax.random.key(0), 1000))
    concrete = lambda x: (jax.random.randint(next(keys), x.shape, 3, 100).astype(x.dtype)
                          if x.dtype == np.int32 else jax.random.uniform(
                              next(keys), x.shape, minval=-1).astype(x.dtype))
    inputs = jax.tree.map(concrete, arguments[2:-1])
    rng = jax.random.key_data(jax.random.key(7))
    # Randomise the zero-initialised output layers (frozen and trained) so every layer acts.
    jitter = lambda tree: jax.tree.map(
        lambda x: x + 0.05 * jax.random.normal(next(keys), x.shape, x.dtype), tree)
    params, frozen = jitter(trainer.state.params), jitter(trainer.state.frozen)
    got = jitted(params, frozen, *inputs, rng)
    assert got.sharding.spec[1] == "time"

    reference = build_model(parse_model_config(config.model))
    nnx.update(reference, jax.device_get(params), jax.device_get(frozen))
    x_t, t, tokens, conditions = jax.device_get(inputs)
    predict = guided_denoiser(reference, tokens, conditions, jax.random.wrap_key_data(rng),
                              guidance=2.0, window=window, stride=stride)
    expected = jax.jit(predict)(x_t, t)  # compiled: far faster than op by op
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=2e-5)
    assert float(np.abs(np.asarray(got)).mean()) > 1e-3


def test_a_sampling_plan_for_an_image_model_is_refused():
    with pytest.raises(ConfigError, match="for video models"):
        aot_sample.plan(t2i_shapes.get_config("variant=tiny"), "v5p:2x2x1", {"data": 4},
                        clips=4, frames=8, window=4, stride=2, window_chunk=1, guidance=1.0,
                        steps=8)


@pytest.mark.skipif(not HAS_LIBTPU, reason="libtpu is not installed (pip install -e '.[tpu]')")
def test_a_mesh_axis_that_splits_a_physical_axis_is_laid_out():
    """fsdp=8 on v5p's 4x4x4 torus is no product of whole physical axes: jax.make_mesh refuses
    it, the project's make_mesh splits one; shapes jax can lay out are left as jax lays them."""
    from jax.experimental import topologies
    from lumiere_jax.parallel.mesh import MESH_AXES, make_mesh
    from lumiere_jax.settings import MeshSettings
    devices = topologies.get_topology_desc(platform="tpu", topology_name="v5p:4x4x4").devices
    with pytest.raises(NotImplementedError):
        jax.make_mesh((4, 8, 2), MESH_AXES, devices=devices)
    mesh = make_mesh(MeshSettings(data=4, fsdp=8, time=2), devices)
    assert dict(mesh.shape) == {"data": 4, "fsdp": 8, "time": 2}
    assert sorted(device.id for device in mesh.devices.ravel()) == sorted(d.id for d in devices)
    plain = make_mesh(MeshSettings(data=4, fsdp=4, time=4), devices)
    np.testing.assert_array_equal(plain.devices, jax.make_mesh((4, 4, 4), MESH_AXES,
                                                               devices=devices).devices)
