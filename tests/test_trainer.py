"""The trainer: config validation, learning, exact resume, killed runs, exports."""
import json
import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from configs import t2i_shapes
from limits import FAST_COMPILE
from launch import kill_soak
from lumiere_jax import diffusion
from lumiere_jax.checkpoints.exported import CheckpointError, load_exported, save_exported
from lumiere_jax.data import shapes, tfds_shapes, video_io
from lumiere_jax.diffusion.pixels import frames_to_model_range
from lumiere_jax.diffusion.settings import DiffusionSettings
from lumiere_jax.models.build import build_model
from lumiere_jax.models.settings import parse_model_config
from lumiere_jax.settings import ConfigError, DataSettings, from_config
from lumiere_jax.train import loop, metrics
from lumiere_jax.train.checkpointing import RunCheckpoints
from lumiere_jax.train.settings import parse_run_config
from lumiere_jax.train.setup import make_train_iterator, setup
from lumiere_jax.train.step import training_times

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("datasets"))


@pytest.fixture()
def config(data_dir):
    config = t2i_shapes.get_config("variant=tiny")
    config.data.data_dir = data_dir
    return config



@pytest.fixture(scope="module")
def trainer(data_dir):
    """One trainer (one compiled step) for the tests that train in this process; each test
    starts from its own copy of the fresh state (the step donates the state it is given)."""
    config = t2i_shapes.get_config("variant=tiny")
    config.data.data_dir = data_dir
    config.optim.update(learning_rate=2e-3, warmup_steps=0, total_steps=60)
    return setup(parse_run_config(config))


def fresh_state(trainer):
    return jax.tree.map(jnp.copy, trainer.state)


def model_batch(batch):
    return {"frames": batch["frames"], "tokens": batch["tokens"]}


@pytest.mark.parametrize("section,key", [("optim", "learning_rat"), ("data", "batchsize"),
                                         ("diffusion", "sampler")])
def test_unknown_config_key_is_named(config, section, key):
    config.unlock()
    config[section][key] = 1
    with pytest.raises(ConfigError, match=f"{key}.*allowed keys"):
        parse_run_config(config)


def test_unknown_model_and_top_level_keys_are_named(config):
    config.unlock()
    config.model.unet.channel_mults = (1, 2)
    with pytest.raises(ConfigError, match="channel_mults"):
        build_model(parse_model_config(config.model))
    config.optimizer = {}
    with pytest.raises(ConfigError, match="optimizer"):
        parse_run_config(config)


def test_bad_values_are_refused(config):
    config.diffusion.prediction = "x_start"
    with pytest.raises(ConfigError, match="prediction"):
        parse_run_config(config)
    with pytest.raises(ValueError, match="variant"):
        t2i_shapes.get_config("variant=huge")


@pytest.mark.parametrize("fields, message", [
        (dict(motions="still"), "motions must be a tuple of motion names"),
        (dict(motions=("still",), source="video_folder", video_dir="v", captions="c.csv"),
         "motions selects shapes-world clips"),
])
def test_bad_motion_selections_are_refused(config, fields, message):
    data = dict(config.data.to_dict(), **fields)
    with pytest.raises(ConfigError, match=message):
        from_config(DataSettings, data, "data")


def test_training_times_put_the_focus_fraction_in_its_window():
    settings = DiffusionSettings(focus_fraction=0.6, focus_t_min=0.2, focus_t_max=0.4)
    t = np.asarray(training_times(jax.random.key(0), 20_000, settings))
    assert t.min() >= 0.0 and t.max() < 1.0
    in_window = np.mean((t >= 0.2) & (t < 0.4))
    # 60% drawn inside the window plus the uniform draws that land there (40% x 0.2 = 8%).
    assert abs(in_window - 0.68) < 0.02
    unfocused = np.asarray(training_times(jax.random.key(0), 20_000, DiffusionSettings()))
    assert abs(np.mean((unfocused >= 0.2) & (unfocused < 0.4)) - 0.2) < 0.01


def test_a_training_shift_draws_the_shifted_schedules_noise_levels_in_the_models_time():
    """With train_log_snr_shift, the log-SNR the model sees at the drawn t is distributed as the
    shifted schedule's uniform draws: its quantiles match, and a negative shift puts more draws
    at high noise."""
    shift = diffusion.video_log_snr_shift(16)
    assert shift == pytest.approx(-np.log(16))
    plain = DiffusionSettings(schedule_shift=1.386)
    shifted = DiffusionSettings(schedule_shift=1.386, train_log_snr_shift=shift)
    t_plain = training_times(jax.random.key(0), 4096, plain)
    t_shifted = training_times(jax.random.key(0), 4096, shifted)
    seen = np.sort(np.asarray(shifted.noise_schedule().log_snr(t_shifted)))
    expected = np.sort(np.asarray(shifted.training_schedule().log_snr(t_plain)))
    np.testing.assert_allclose(seen, expected, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(seen, np.sort(np.asarray(plain.noise_schedule().log_snr(t_plain)))
                               + shift, rtol=1e-4, atol=1e-3)
    high_noise = lambda t, s: np.mean(np.asarray(s.noise_schedule().log_snr(t)) < -7.0)
    assert high_noise(t_shifted, shifted) > 2 * high_noise(t_plain, plain)
    with pytest.raises(ValueError, match="num_frames must be >= 1"):
        diffusion.video_log_snr_shift(0)


@pytest.mark.parametrize("fields, message", [
    (dict(train_log_snr_shift=float("nan")), "train_log_snr_shift must be finite"),
    (dict(focus_fraction=1.5), "focus_fraction"),
    (dict(focus_t_min=0.5, focus_t_max=0.3), "focus_t_min < focus_t_max"),
    (dict(loss_weighting="snr"), "loss_weighting 'snr' is not one of"),
    (dict(min_snr_gamma=0.0), "min_snr_gamma must be positive"),
])
def test_bad_diffusion_settings_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        DiffusionSettings(**fields)


def test_training_lowers_the_loss_on_a_fixed_batch(trainer):
    run, graphdef, step = trainer.run, trainer.graphdef, trainer.train_step
    state = fresh_state(trainer)
    iterator = trainer.make_iterator()
    batch = model_batch(next(iterator))
    x0 = frames_to_model_range(batch["frames"])
    eval_t = jnp.linspace(0.05, 0.95, x0.shape[0])

    @jax.jit
    def fixed_loss(params, frozen):
        model = nnx.merge(graphdef, params, frozen)
        cond = model.encode_text(batch["tokens"])
        losses, _ = diffusion.diffusion_loss(lambda x, t: model.denoise(x, t, cond), x0,
                                             jax.random.key(7), run.diffusion.schedule,
                                             run.diffusion.prediction, t=eval_t)
        return jnp.mean(losses)

    before = float(fixed_loss(state.params, state.frozen))
    for _ in range(60):
        state, _ = step(state, batch)
    after = float(fixed_loss(state.params, state.frozen))
    # Only the U-Net trains (the text encoder is frozen): 60 steps take off about a quarter.
    assert after < 0.8 * before, (before, after)


def train_iterator(trainer, data):
    """A fresh iterator over `data` (DataSettings) with the trainer's text length and seed."""
    run = trainer.run
    return make_train_iterator(data, run.model.text_encoder.max_length, run.seed)


def assert_resume_is_bit_identical(trainer, data, state, iterator, workdir):
    """Checkpoints `state` and the position of `iterator` (over `data`), then checks that a
    restarted process's next step equals the uninterrupted one."""
    step, done = trainer.train_step, int(state.step)
    checkpoints = RunCheckpoints(str(workdir), every_steps=1, max_to_keep=2)
    checkpoints.save(done, state, iterator, {"note": "test"}, force=True)
    checkpoints.wait()
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)  # before the step donates it
    uninterrupted, _ = step(state, model_batch(next(iterator)))
    uninterrupted = jax.device_get(uninterrupted)
    checkpoints.close()

    # As a restarted process would: a fresh iterator, the state restored into an abstract target
    # (the compiled step is reused: compiling it again would only cost time).
    fresh_iterator = train_iterator(trainer, data)
    restarted = RunCheckpoints(str(workdir), every_steps=1, max_to_keep=2)
    assert restarted.latest_step() == done
    restored, metadata = restarted.restore(done, abstract, fresh_iterator)
    assert metadata == {"note": "test"}
    resumed, _ = step(restored, model_batch(next(fresh_iterator)))
    assert int(resumed.step) == done + 1
    chex.assert_trees_all_equal(jax.device_get(resumed), uninterrupted)
    restarted.close()


def test_save_restore_next_step_is_bit_identical(trainer, tmp_path):
    state = fresh_state(trainer)
    iterator = trainer.make_iterator()
    for _ in range(3):
        state, _ = trainer.train_step(state, model_batch(next(iterator)))
    assert_resume_is_bit_identical(trainer, trainer.run.data, state, iterator, tmp_path)


def test_training_on_a_video_folder_takes_finite_steps_and_resumes(trainer, tmp_path):
    """Clips cut from video files (data.source='video_folder') feed the same step as the shapes
    world (the step never sees where its batch came from, so the compiled one is reused), and
    the run resumes from a checkpoint of its state and data position."""
    videos = tmp_path / "videos"
    videos.mkdir()
    rows = []
    for seed in range(2):
        caption, spec = tfds_shapes.caption_for_seed(seed, "train")
        video_io.write_video(videos / f"clip{seed}.mp4", shapes.render_clip(spec, 32, 24), fps=8)
        rows.append(json.dumps({"video": f"clip{seed}.mp4", "caption": caption}) + "\n")
    (videos / "captions.jsonl").write_text("".join(rows))
    config = t2i_shapes.get_config("variant=tiny")
    config.data.update(source="video_folder", video_dir=str(videos), clip_stride=2,
                       captions=str(videos / "captions.jsonl"), data_dir=str(tmp_path / "data"))
    data = parse_run_config(config).data
    iterator = train_iterator(trainer, data)
    state = fresh_state(trainer)
    for _ in range(2):
        state, step_metrics = trainer.train_step(state, model_batch(next(iterator)))
        assert np.isfinite(float(step_metrics["loss"]))
    assert_resume_is_bit_identical(trainer, data, state, iterator, tmp_path / "run")


def run_main(workdir, data_dir, *overrides):
    command = [sys.executable, "-m", "lumiere_jax.main",
               "--config", os.path.join(REPO, "configs", "t2i_shapes.py") + ":variant=tiny",
               "--workdir", str(workdir), f"--config.data.data_dir={data_dir}", *overrides]
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu", XLA_FLAGS=FAST_COMPILE)
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_a_run_killed_at_random_moments_ends_bit_identical_to_an_uninterrupted_one(
        tmp_path, data_dir, monkeypatch):
    """Two SIGKILLs (one while a checkpoint is being written): every restart resumes from the
    newest complete checkpoint, and the final state, export and metrics equal an uninterrupted
    run's. The soak waits for what the trainer reports, never for a deadline. The workdir is
    relative, as in the README's command."""
    monkeypatch.chdir(tmp_path)
    report = kill_soak.soak("soak", kills=2, steps=20, every=4, seed=1,
                            data_dir=data_dir, log=lambda _: None, xla_flags=FAST_COMPILE)
    assert report["identical"] and report["state_leaves"] > 10
    writes = [e for e in report["events"] if e["moment"] == "during a checkpoint write"]
    assert len(writes) == 1 and writes[0]["half_written"]
    # The training clock runs on across legs instead of starting again from zero.
    seconds = report["train_seconds"]
    assert seconds["final"] > seconds["at_last_resume"]


def test_resumed_run_drops_the_metrics_it_logs_again(tmp_path):
    writer = metrics.MetricsWriter(str(tmp_path))
    for step in (5, 10, 15):
        writer.write(step, {"loss": step / 100})
    assert writer.drop_after(10) == 1
    assert [json.loads(line)["step"] for line in open(writer.path)] == [5, 10]
    assert writer.drop_after(10) == 0 and writer.drop_after(0) == 2
    assert open(writer.path).read() == ""


def test_unknown_override_is_a_usage_error(tmp_path, data_dir):
    process = run_main(tmp_path, data_dir, "--config.optim.learning_rat=0.1")
    # The process exits once the config is parsed; the limit only stops a hung one.
    output, _ = process.communicate(timeout=kill_soak.SAFETY_LIMIT_S)
    assert process.returncode != 0
    assert "learning_rat" in output


def test_nan_aborts_with_a_clear_message():
    with pytest.raises(loop.TrainingDiverged, match="loss.*NaN"):
        loop.check_finite(12, {"loss": np.float32("nan"), "grad_norm": np.float32(1.0)})
    loop.check_finite(12, {"loss": np.float32(0.5)})


def test_export_round_trip_and_checkpoint_errors(config, tmp_path):
    model = build_model(parse_model_config(config.model), seed=3)
    params = nnx.state(model, nnx.Param)
    save_exported(str(tmp_path / "export"), params, config.to_dict())
    loaded, loaded_config = load_exported(str(tmp_path / "export"))
    chex.assert_trees_all_equal(nnx.state(loaded, nnx.Param), params)
    assert loaded_config.model.unet.resolution == config.model.unet.resolution

    with pytest.raises(CheckpointError, match="does not exist"):
        load_exported(str(tmp_path / "missing"))
    (tmp_path / "only_config").mkdir()
    (tmp_path / "only_config" / "config.json").write_text(json.dumps(config.to_dict()))
    with pytest.raises(CheckpointError, match="params/ is missing"):
        load_exported(str(tmp_path / "only_config"))
    (tmp_path / "only_config" / "params").mkdir()
    with pytest.raises(CheckpointError, match="incomplete"):
        load_exported(str(tmp_path / "only_config"))
    other = config.to_dict()
    other["model"]["unet"]["base_channels"] = 24
    (tmp_path / "export" / "config.json").write_text(json.dumps(other))
    with pytest.raises(CheckpointError, match="different model|incomplete"):
        load_exported(str(tmp_path / "export"))


def test_a_run_initialised_from_an_export_starts_from_all_of_its_weights(config, tmp_path):
    """An export holds the whole model, its frozen text encoder included: `init_from` restores
    every part (the trained ones into params and the EMA, the frozen ones into `frozen`)."""
    model = build_model(parse_model_config(config.model), seed=3)
    params = nnx.state(model, nnx.Param)
    params = jax.tree.map(lambda x: x + 0.1 * jnp.ones_like(x), params)  # no init equals it
    save_exported(str(tmp_path / "export"), params, config.to_dict())
    config.checkpoint.init_from = str(tmp_path / "export")
    state = setup(parse_run_config(config)).state
    restored = build_model(parse_model_config(config.model), seed=0)
    nnx.update(restored, state.params, state.frozen)
    chex.assert_trees_all_close(nnx.state(restored, nnx.Param), params)
    chex.assert_trees_all_close(state.ema_params, state.params)
    assert jax.tree.leaves(state.frozen)  # the frozen text encoder came from the export too
