"""Behaviour of the diffusion core: schedules, conversions, loss, guidance and samplers."""
import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lumiere_jax import diffusion
from lumiere_jax.diffusion import samplers as samplers_module
from lumiere_jax.diffusion.settings import DiffusionSettings

SCHEDULES = ("cosine", "linear")
IMAGE_SHAPE = (3, 4, 4, 3)  # batch == channels, so a wrong broadcast of per-example t would show
VIDEO_SHAPE = (3, 2, 4, 4, 3)


def exact_denoiser(x0_of, schedule, prediction):
    """predict_fn whose x0 estimate is x0_of(x_t, alpha, sigma), expressed as a `prediction` output."""
    schedule = diffusion.get_schedule(schedule)

    def predict_fn(x_t, t):
        chex.assert_shape(t, (x_t.shape[0],))
        alpha, sigma = schedule.alpha_sigma(t)
        x0 = x0_of(x_t, alpha, sigma)
        eps = diffusion.eps_from_x0(x_t, x0, alpha, sigma)
        return diffusion.from_x0_eps(x0, eps, alpha, sigma, prediction)

    return predict_fn


def point_mass_denoiser(x_star, schedule, prediction):
    """The exact denoiser when the data is the single point x_star."""
    return exact_denoiser(lambda x_t, alpha, sigma: jnp.broadcast_to(x_star, x_t.shape), schedule, prediction)


def gaussian_x0(mu, c):
    """E[x0 | x_t] for data ~ N(mu, c^2 I)."""

    def x0_of(x_t, alpha, sigma):
        alpha, sigma = diffusion.per_example(alpha, x_t), diffusion.per_example(sigma, x_t)
        return mu + alpha * c**2 / (alpha**2 * c**2 + sigma**2) * (x_t - alpha * mu)

    return x0_of


# ----------------------------------------------------------------------------- schedules


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_is_variance_preserving_and_monotone(name):
    schedule = diffusion.get_schedule(name)
    t = jnp.linspace(0.0, 1.0, 201)
    alpha, sigma = schedule.alpha_sigma(t)
    log_snr = schedule.log_snr(t)
    np.testing.assert_allclose(alpha**2 + sigma**2, 1.0, atol=1e-6)
    assert np.all(np.isfinite(log_snr))
    assert np.all(np.diff(alpha) <= 0) and np.all(np.diff(sigma) >= 0)
    assert np.all(np.diff(log_snr) <= 0)
    interior = (t > 0.005) & (t < 0.995)
    assert np.all(np.diff(log_snr[interior]) < 0)
    assert alpha[0] > 0.9999 and sigma[-1] > 0.9999
    assert sigma[0] < 1e-3 and alpha[-1] < 1e-2


def test_schedules_follow_their_defining_formulas():
    t = np.linspace(0.05, 0.95, 19)
    s = 0.008
    f = lambda u: np.cos((u + s) / (1 + s) * np.pi / 2) ** 2
    cosine_alpha2 = f(t) / f(0.0)
    linear_alpha2 = np.exp(-(0.1 * t + 0.5 * t**2 * (20.0 - 0.1)))
    for name, expected in (("cosine", cosine_alpha2), ("linear", linear_alpha2)):
        alpha, _ = diffusion.get_schedule(name).alpha_sigma(jnp.asarray(t, jnp.float32))
        np.testing.assert_allclose(alpha**2, expected, rtol=1e-4, atol=1e-6)


def test_unknown_schedule_lists_allowed_names():
    with pytest.raises(ValueError, match="cosine.*linear"):
        diffusion.get_schedule("sigmoid")


@pytest.mark.parametrize("shape", [IMAGE_SHAPE, VIDEO_SHAPE], ids=["image", "video"])
@pytest.mark.parametrize("name", SCHEDULES)
def test_conversions_round_trip(shape, name):
    x0_rng, eps_rng = jax.random.split(jax.random.key(0))
    x0 = jax.random.normal(x0_rng, shape)
    eps = jax.random.normal(eps_rng, shape)
    alpha, sigma = diffusion.get_schedule(name).alpha_sigma(jnp.array([0.05, 0.5, 0.9]))
    x_t = diffusion.per_example(alpha, x0) * x0 + diffusion.per_example(sigma, x0) * eps
    tol = dict(atol=1e-4, rtol=1e-4)

    v = diffusion.v_from_x0_eps(x0, eps, alpha, sigma)
    np.testing.assert_allclose(diffusion.x0_from_v(x_t, v, alpha, sigma), x0, **tol)
    np.testing.assert_allclose(diffusion.eps_from_v(x_t, v, alpha, sigma), eps, **tol)
    np.testing.assert_allclose(diffusion.x0_from_eps(x_t, eps, alpha, sigma), x0, **tol)
    np.testing.assert_allclose(diffusion.eps_from_x0(x_t, x0, alpha, sigma), eps, **tol)
    for kind in diffusion.PREDICTION_KINDS:
        output = diffusion.from_x0_eps(x0, eps, alpha, sigma, kind)
        x0_back, eps_back = diffusion.to_x0_eps(output, x_t, alpha, sigma, kind)
        np.testing.assert_allclose(x0_back, x0, **tol)
        np.testing.assert_allclose(eps_back, eps, **tol)


# ----------------------------------------------------------------------------- loss


@pytest.mark.parametrize("shape", [IMAGE_SHAPE, VIDEO_SHAPE], ids=["image", "video"])
@pytest.mark.parametrize("prediction", ["v", "eps"])
def test_loss_is_zero_for_the_exact_target_and_measures_the_error(shape, prediction):
    x0 = jax.random.uniform(jax.random.key(1), shape, minval=-1, maxval=1)
    t = jnp.linspace(0.1, 0.9, shape[0])
    rng = jax.random.key(2)
    exact = exact_denoiser(lambda x_t, a, s: x0, "cosine", prediction)

    loss, aux = diffusion.diffusion_loss(exact, x0, rng, "cosine", prediction, t=t)
    chex.assert_shape(loss, (shape[0],))
    np.testing.assert_allclose(loss, 0.0, atol=1e-9)
    np.testing.assert_allclose(aux["output"], aux["target"], atol=1e-4)

    shifted = lambda x_t, t: exact(x_t, t) + 0.5
    loss, _ = diffusion.diffusion_loss(shifted, x0, rng, "cosine", prediction, t=t)
    np.testing.assert_allclose(loss, 0.25, rtol=1e-4)


def test_loss_v_and_eps_targets_differ():
    x0 = jax.random.uniform(jax.random.key(1), IMAGE_SHAPE, minval=-1, maxval=1)
    t = jnp.array([0.2, 0.5, 0.8])
    exact_eps = exact_denoiser(lambda x_t, a, s: x0, "linear", "eps")
    rng = jax.random.key(3)
    loss_eps, aux_eps = diffusion.diffusion_loss(exact_eps, x0, rng, "linear", "eps", t=t)
    loss_v, aux_v = diffusion.diffusion_loss(exact_eps, x0, rng, "linear", "v", t=t)
    np.testing.assert_allclose(loss_eps, 0.0, atol=1e-9)
    assert np.all(loss_v > 1e-2)
    alpha, sigma = diffusion.get_schedule("linear").alpha_sigma(t)
    np.testing.assert_allclose(aux_v["target"], diffusion.v_from_x0_eps(x0, aux_v["eps"], alpha, sigma), atol=1e-6)
    np.testing.assert_allclose(aux_eps["target"], aux_eps["eps"])


def test_loss_samples_t_per_example_and_low_discrepancy_spreads_it():
    x0 = jnp.zeros((8, 2, 2, 1))
    zero = lambda x_t, t: jnp.zeros_like(x_t)
    loss, aux = diffusion.diffusion_loss(zero, x0, jax.random.key(4), "cosine", "eps")
    chex.assert_shape([loss, aux["t"]], (8,))
    assert np.all(loss > 0) and np.all((aux["t"] >= 0) & (aux["t"] < 1))
    assert len(np.unique(np.asarray(aux["t"]))) == 8
    _, aux = diffusion.diffusion_loss(zero, x0, jax.random.key(4), "cosine", "eps", low_discrepancy=True)
    np.testing.assert_allclose(np.diff(np.sort(aux["t"])), 1 / 8, atol=1e-6)


@pytest.mark.parametrize("prediction", ["v", "eps"])
@pytest.mark.parametrize("weighting, x0_weight", [
    ("min_snr", lambda snr: jnp.minimum(snr, 5.0)),
    ("clamped_snr", lambda snr: jnp.clip(snr, 1.0, 5.0)),
])
def test_snr_weights_are_their_x0_space_weight_times_the_x0_error(prediction, weighting, x0_weight):
    """Weighted in its own space, the loss equals w(SNR) * |x0 - x0_hat|^2 for any output:
    w = min(SNR, gamma) (Min-SNR) or clip(SNR, 1, gamma) (clamped)."""
    x0 = jax.random.uniform(jax.random.key(1), IMAGE_SHAPE, minval=-1, maxval=1)
    t = jnp.array([0.1, 0.5, 0.9])  # log-SNR 4.6, 1.0, -2.7: above log(5), between, below 0
    schedule = diffusion.Schedule("cosine", 1.0)
    wrong = lambda x_t, t: 0.3 * x_t + 0.1
    loss, aux = diffusion.diffusion_loss(wrong, x0, jax.random.key(2), schedule, prediction, t=t)
    log_snr = schedule.log_snr(t)
    weighted = diffusion.loss_weight(log_snr, prediction, weighting, gamma=5.0) * loss
    alpha, sigma = schedule.alpha_sigma(t)
    x0_hat, _ = diffusion.to_x0_eps(aux["output"], aux["x_t"], alpha, sigma, prediction)
    x0_error = jnp.mean(jnp.square(x0_hat - x0), axis=(1, 2, 3))
    np.testing.assert_allclose(weighted, x0_weight(jnp.exp(log_snr)) * x0_error, rtol=1e-4)
    np.testing.assert_array_equal(diffusion.loss_weight(log_snr, prediction), 1.0)
    with pytest.raises(ValueError, match="min_snr"):
        diffusion.loss_weight(log_snr, prediction, "snr")


def test_denoising_profile_scores_an_oracle_zero_and_doing_nothing_sigma2_over_alpha2():
    from lumiere_jax.eval.denoising import x0_error_by_log_snr
    x0 = jax.random.uniform(jax.random.key(1), IMAGE_SHAPE, minval=-1, maxval=1)
    schedule = diffusion.Schedule("cosine", 1.39)
    oracle = exact_denoiser(lambda x_t, a, s: x0, schedule, "v")
    table = x0_error_by_log_snr(oracle, x0, schedule, "v", log_snrs=(-2.0, 0.0, 4.0))
    for log_snr, row in table.items():
        assert row["model"] < 1e-8
        # x_t / alpha - x0 = eps / sqrt(SNR): its mean square is about exp(-log_snr).
        np.testing.assert_allclose(row["identity"], math.exp(-log_snr), rtol=0.25)
    idle = x0_error_by_log_snr(lambda x_t, t: jnp.zeros_like(x_t), x0, schedule, "v", (0.0,))
    assert idle[0.0]["model"] > 0.05


def test_shape_recovery_reads_an_oracle_as_recovered_and_a_blank_as_lost():
    from lumiere_jax.data import shapes
    from lumiere_jax.diffusion.pixels import frames_to_model_range
    from lumiere_jax.eval.denoising import shape_recovery_by_log_snr
    from lumiere_jax.eval.split_sampling import prompts_and_specs
    _, specs = prompts_and_specs("validation", 8)
    frames = np.stack([shapes.render_frame(spec, 0, 32) for spec in specs])
    schedule = diffusion.Schedule("cosine", 1.39)
    starts = []

    def oracle(x_init, t_start):
        starts.append(t_start)
        return frames_to_model_range(frames)

    table = shape_recovery_by_log_snr(oracle, frames, specs, schedule, log_snrs=(-2.0, 1.0))
    assert table == {-2.0: 1.0, 1.0: 1.0}
    # Each run starts at the time of its log-SNR (a lower log-SNR is a later time).
    np.testing.assert_allclose(schedule.log_snr(jnp.array(starts)), [-2.0, 1.0], atol=1e-3)
    blank = shape_recovery_by_log_snr(lambda x_init, t: -jnp.ones_like(x_init), frames, specs,
                                      schedule, log_snrs=(0.0,))
    assert blank == {0.0: 0.0}


def test_loss_rejects_unknown_prediction():
    with pytest.raises(ValueError, match="'v'.*'eps'"):
        diffusion.diffusion_loss(lambda x, t: x, jnp.zeros(IMAGE_SHAPE), jax.random.key(0), "cosine", "score")


# ----------------------------------------------------------------------------- guidance


def _conditioned_model(calls):
    def model_fn(x_t, t, cond):
        calls.append(x_t.shape[0])
        gain = jnp.sum(cond["tokens"], axis=(1, 2))[:, None, None, None]
        return x_t * gain + cond["bias"][:, None, None, :] + t[:, None, None, None]

    return model_fn


def test_classifier_free_guidance_combines_one_batched_call():
    batch = IMAGE_SHAPE[0]
    rngs = jax.random.split(jax.random.key(5), 4)
    cond = {"tokens": jax.random.normal(rngs[0], (batch, 5, 2)), "bias": jax.random.normal(rngs[1], (batch, 3))}
    null = {"tokens": jnp.zeros((1, 5, 2)) + 0.1, "bias": jnp.full((1, 3), -1.0)}
    x_t = jax.random.normal(rngs[2], IMAGE_SHAPE)
    t = jax.random.uniform(rngs[3], (batch,))
    calls = []
    model_fn = _conditioned_model(calls)
    conditional = model_fn(x_t, t, cond)
    unconditional = model_fn(x_t, t, jax.tree.map(lambda a: jnp.repeat(a, batch, 0), null))
    calls.clear()

    for scale, expected in ((1.0, conditional), (0.0, unconditional)):
        guided = diffusion.classifier_free_guidance(model_fn, cond, null, scale)(x_t, t)
        np.testing.assert_array_equal(guided, expected)
    guided = diffusion.classifier_free_guidance(model_fn, cond, null, 4.0)(x_t, t)
    np.testing.assert_allclose(guided, unconditional + 4.0 * (conditional - unconditional), rtol=1e-5, atol=1e-5)
    assert calls == [2 * batch] * 3


def test_drop_condition_replaces_whole_examples_with_probability_p():
    batch = 2000
    cond = {"tokens": jnp.ones((batch, 3, 2)), "mask": jnp.ones((batch, 3), bool)}
    null = {"tokens": jnp.zeros((1, 3, 2)), "mask": jnp.zeros((1, 3), bool)}
    rng = jax.random.key(6)
    kept = diffusion.drop_condition(rng, cond, null, 0.0)
    chex.assert_trees_all_equal(kept, cond)
    dropped = diffusion.drop_condition(rng, cond, null, 1.0)
    chex.assert_trees_all_equal(dropped, jax.tree.map(lambda a: jnp.repeat(a, batch, 0), null))

    half = diffusion.drop_condition(rng, cond, null, 0.5)
    tokens_dropped = np.all(np.asarray(half["tokens"]) == 0, axis=(1, 2))
    mask_dropped = ~np.any(np.asarray(half["mask"]), axis=1)
    np.testing.assert_array_equal(tokens_dropped, mask_dropped)  # one decision per example
    assert np.all(np.asarray(half["tokens"])[~tokens_dropped] == 1)
    assert abs(tokens_dropped.mean() - 0.5) < 0.05


# ----------------------------------------------------------------------------- samplers


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("sampler", diffusion.SAMPLERS)
@pytest.mark.parametrize("prediction", ["v", "eps"])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_sampler_recovers_a_single_data_point(schedule, prediction, sampler, use_jit):
    x_star = jax.random.uniform(jax.random.key(7), IMAGE_SHAPE, minval=-1, maxval=1)
    run = functools.partial(
        diffusion.sample,
        point_mass_denoiser(x_star, schedule, prediction),
        IMAGE_SHAPE,
        schedule=schedule,
        steps=6,
        sampler=sampler,
        prediction=prediction,
    )
    if use_jit:
        run = jax.jit(run)
    np.testing.assert_allclose(run(jax.random.key(8)), x_star, atol=1e-4)


def test_sampler_works_on_videos():
    x_star = jax.random.uniform(jax.random.key(7), VIDEO_SHAPE, minval=-1, maxval=1)
    out = diffusion.sample(
        point_mass_denoiser(x_star, "cosine", "v"), VIDEO_SHAPE, jax.random.key(9), "cosine", steps=3, sampler="ancestral"
    )
    np.testing.assert_allclose(out, x_star, atol=1e-4)


GAUSSIAN_SHAPE = (512, 4, 4, 1)


def _gaussian_data():
    mu = jax.random.uniform(jax.random.key(10), GAUSSIAN_SHAPE[1:], minval=-1, maxval=1)
    return mu, 0.5


@pytest.mark.parametrize(
    "schedule,sampler,prediction",
    [("cosine", "ddim", "v"), ("linear", "ddim", "eps"), ("cosine", "ancestral", "eps"), ("linear", "ancestral", "v")],
)
def test_sampler_reproduces_gaussian_data(schedule, sampler, prediction):
    mu, c = _gaussian_data()
    predict_fn = exact_denoiser(gaussian_x0(mu, c), schedule, prediction)
    samples = diffusion.sample(
        predict_fn, GAUSSIAN_SHAPE, jax.random.key(11), schedule, steps=256, sampler=sampler, prediction=prediction
    )
    standard_error = c / math.sqrt(GAUSSIAN_SHAPE[0])
    np.testing.assert_allclose(samples.mean(axis=0), mu, atol=5 * standard_error)
    # Both samplers are first-order in the step size: a few percent of std is lost at 256 steps.
    np.testing.assert_allclose(jnp.std(samples - mu), c, rtol=0.05)


@pytest.mark.parametrize("spacing,fine_limit", [("uniform", 0.02), ("logsnr", 0.05)])
@pytest.mark.parametrize("t_start", [1.0, 0.4])
def test_ddim_converges_to_the_probability_flow_from_t_start(t_start, spacing, fine_limit):
    """For Gaussian data the flow is affine: x0 = mu + c (x_t - alpha mu) / sqrt(alpha^2 c^2 + sigma^2)."""
    mu, c = _gaussian_data()
    schedule = diffusion.get_schedule("cosine")
    x_data = mu + c * jax.random.normal(jax.random.key(12), (8,) + GAUSSIAN_SHAPE[1:])
    x_init = diffusion.noise_to(x_data, t_start, jax.random.key(13), schedule)
    alpha, sigma = schedule.alpha_sigma(t_start)
    expected = mu + c * (x_init - alpha * mu) / jnp.sqrt(alpha**2 * c**2 + sigma**2)
    predict_fn = exact_denoiser(gaussian_x0(mu, c), schedule, "v")

    def relative_error(steps):
        out = diffusion.sample(
            predict_fn, x_init.shape, jax.random.key(14), schedule, steps=steps, x_init=x_init,
            t_start=t_start, spacing=spacing
        )
        return float(jnp.linalg.norm(out - expected) / jnp.linalg.norm(expected - mu))

    coarse, fine = relative_error(64), relative_error(128)
    assert fine < fine_limit
    assert 1.5 < coarse / fine < 2.5  # first-order convergence in the number of steps


def test_noise_to_has_the_forward_marginal():
    x0 = jnp.full((4096, 2, 2, 1), 0.7)
    t = jnp.where(jnp.arange(4096) % 2 == 0, 0.3, 0.8)
    x_t = diffusion.noise_to(x0, t, jax.random.key(15), "linear")
    alpha, sigma = diffusion.get_schedule("linear").alpha_sigma(jnp.array([0.3, 0.8]))
    for parity in (0, 1):
        part = np.asarray(x_t[parity::2])
        np.testing.assert_allclose(part.mean(), 0.7 * alpha[parity], atol=0.03)
        np.testing.assert_allclose(part.std(), sigma[parity], rtol=0.03)


def test_dynamic_threshold_bounds_large_estimates_and_keeps_small_ones():
    small = jax.random.uniform(jax.random.key(16), (1, 8, 8, 3), minval=-1, maxval=1)
    large = 3.0 * jax.random.normal(jax.random.key(17), (1, 8, 8, 3))
    x0 = jnp.concatenate([small, large])
    out = diffusion.apply_dynamic_threshold(x0, 0.995)
    np.testing.assert_array_equal(out[0], small[0])
    assert np.max(np.abs(out[1])) <= 1.0 and np.max(np.abs(out[1])) > 0.9
    s = np.quantile(np.abs(np.asarray(large)), 0.995)
    np.testing.assert_allclose(out[1], np.clip(large[0], -s, s) / s, rtol=1e-5)


@pytest.mark.parametrize("option", [{"dynamic_threshold": 0.9}, {"clip_x0": 1.0}])
def test_sampler_thresholds_x0_estimates(option):
    x_star = 2.0 * jax.random.normal(jax.random.key(18), IMAGE_SHAPE)
    predict_fn = point_mass_denoiser(x_star, "cosine", "eps")
    out = diffusion.sample(predict_fn, IMAGE_SHAPE, jax.random.key(19), "cosine", steps=4, prediction="eps", **option)
    if "clip_x0" in option:
        expected = jnp.clip(x_star, -1, 1)
    else:
        expected = diffusion.apply_dynamic_threshold(x_star, 0.9)
    assert np.max(np.abs(out)) <= 1.0 + 1e-5
    np.testing.assert_allclose(out, expected, atol=1e-4)


def test_clipping_recomputes_eps_from_the_clipped_estimate():
    """After clipping, the step must use the eps consistent with x_t and the clipped x0."""
    schedule = diffusion.get_schedule("linear")
    x_init = jax.random.normal(jax.random.key(20), IMAGE_SHAPE)

    def predict_fn(x_t, t):  # x0-prediction: 3 at the first step (t=0.6), x_t / 10 at the second
        return jnp.where(diffusion.per_example(t > 0.45, x_t), 3.0, x_t / 10)

    out = diffusion.sample(
        predict_fn, IMAGE_SHAPE, jax.random.key(21), schedule, steps=2, prediction="x0", clip_x0=1.0,
        x_init=x_init, t_start=0.6, spacing="uniform",  # the middle step at t = 0.3
    )
    alpha_start, sigma_start = schedule.alpha_sigma(0.6)
    alpha_mid, sigma_mid = schedule.alpha_sigma(0.3)
    x_mid = alpha_mid * 1.0 + sigma_mid * (x_init - alpha_start * 1.0) / sigma_start
    np.testing.assert_allclose(out, x_mid / 10, atol=1e-5)


class _RecordingBar:
    instances = []

    def __init__(self, total, **kwargs):
        self.total, self.n, self.closed = total, 0, False
        _RecordingBar.instances.append(self)

    def update(self, k):
        self.n += k

    def close(self):
        self.closed = True


def test_progress_bar_runs_from_the_compiled_loop(monkeypatch):
    monkeypatch.setattr(samplers_module, "tqdm", _RecordingBar)
    _RecordingBar.instances = []
    predict_fn = point_mass_denoiser(jnp.zeros(IMAGE_SHAPE), "cosine", "v")
    run = functools.partial(diffusion.sample, predict_fn, IMAGE_SHAPE, schedule="cosine", steps=5)

    quiet_jaxpr = str(jax.make_jaxpr(run)(jax.random.key(0)))
    assert "callback" not in quiet_jaxpr

    noisy = jax.jit(functools.partial(run, progress=True))
    for seed in range(2):
        jax.block_until_ready(noisy(jax.random.key(seed)))
    jax.effects_barrier()
    assert [(bar.total, bar.n, bar.closed) for bar in _RecordingBar.instances] == [(5, 5, True)] * 2


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"steps": 0}, "steps"),
        ({"sampler": "euler"}, "'ddim'.*'ancestral'"),
        ({"prediction": "score"}, "'v'.*'eps'"),
        ({"t_start": 0.0}, "t_start"),
        ({"t_start": 1.5}, "t_start"),
        ({"t_start": 0.5}, "x_init"),
        ({"dynamic_threshold": 99.5}, "percentile"),
        ({"clip_x0": -1.0}, "clip_x0"),
        ({"x_init": jnp.zeros((1, 4, 4, 3))}, "x_init"),
    ],
)
def test_sampler_rejects_bad_arguments(kwargs, match):
    args = {"steps": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        diffusion.sample(lambda x, t: x, IMAGE_SHAPE, jax.random.key(0), "cosine", **args)


def test_schedule_shift_moves_log_snr_by_a_constant():
    t = jnp.linspace(0.05, 0.95, 7)
    plain, shifted = diffusion.get_schedule("cosine"), diffusion.Schedule("cosine", shift=-2.0)
    np.testing.assert_allclose(shifted.log_snr(t), plain.log_snr(t) - 2.0, atol=1e-5)
    alpha, sigma = shifted.alpha_sigma(t)
    np.testing.assert_allclose(alpha**2 + sigma**2, 1.0, atol=1e-6)
    assert bool(jnp.all(alpha < plain.alpha_sigma(t)[0]))


# ----------------------------------------------------------------------------- resolution and grids


def test_resolution_shift_follows_the_pooling_rule():
    """Average-pooling k x k pixels of x_t = alpha x0 + sigma eps keeps alpha x0's mean and
    divides the noise std by k: the log-SNR of the coarser image is higher by 2 ln k."""
    assert diffusion.resolution_shift(64) == 0.0
    np.testing.assert_allclose(diffusion.resolution_shift(32), 2 * math.log(2))
    np.testing.assert_allclose(diffusion.resolution_shift(128), -2 * math.log(2))
    for resolution, k in ((16, 2), (32, 4), (128, 8)):
        np.testing.assert_allclose(diffusion.resolution_shift(resolution)
                                   - diffusion.resolution_shift(resolution * k), 2 * math.log(k))
    noise = jax.random.normal(jax.random.key(0), (256, 64, 64))
    pooled = noise.reshape(256, 16, 4, 16, 4).mean(axis=(2, 4))
    np.testing.assert_allclose(float(pooled.std()), 1 / 4, rtol=0.01)
    with pytest.raises(ValueError, match="positive"):
        diffusion.resolution_shift(0)


@pytest.mark.parametrize("schedule", [diffusion.Schedule("cosine", 1.386), diffusion.Schedule("linear"),
                                      diffusion.Schedule("cosine", -2.8)])
def test_times_for_log_snr_inverts_the_schedule(schedule):
    targets = jnp.linspace(-9.0, 9.0, 13)
    t = diffusion.times_for_log_snr(schedule, targets)
    np.testing.assert_allclose(schedule.log_snr(t), targets, atol=1e-3)


def test_logsnr_grid_takes_equal_log_snr_steps_from_t_start_to_zero():
    schedule = diffusion.Schedule("cosine", -2.8)
    times = np.asarray(diffusion.sampling_times(schedule, 20))
    assert times[0] == 1.0 and times[-1] == 0.0 and np.all(np.diff(times) < 0)
    gaps = np.diff(np.asarray(schedule.log_snr(times[1:-1])))
    np.testing.assert_allclose(gaps, gaps.mean(), rtol=1e-3)
    np.testing.assert_allclose(float(schedule.log_snr(times[-2])), samplers_module.GRID_LOG_SNR[1],
                               atol=1e-3)
    # Half of the steps land at log-SNR >= 0 whatever the shift; a uniform grid on this schedule
    # puts 6 of 20 there.
    assert np.sum(schedule.log_snr(times[1:-1]) >= 0) >= 9
    uniform = diffusion.sampling_times(schedule, 20, spacing="uniform")
    assert int(np.sum(schedule.log_snr(uniform[1:-1]) >= 0)) <= 6
    late = np.asarray(diffusion.sampling_times(schedule, 10, t_start=0.3))
    assert late[0] == np.float32(0.3) and late[-1] == 0.0 and np.all(np.diff(late) < 0)
    with pytest.raises(ValueError, match="spacing"):
        diffusion.sampling_times(schedule, 10, spacing="karras")


def test_ddim_25_on_the_logsnr_grid_matches_ddim_250_at_every_scale():
    """Gaussian data at three scales (coarse layout to pixel-level detail) on the 32 px schedule:
    the probability flow is known exactly; 25 log-SNR steps stay close to 250 and to the flow at
    every scale, while 25 uniform steps lose the finest scale."""
    schedule = diffusion.Schedule("cosine", diffusion.resolution_shift(32))
    mu = jax.random.uniform(jax.random.key(10), GAUSSIAN_SHAPE[1:], minval=-1, maxval=1)
    x_init = jax.random.normal(jax.random.key(1), (8,) + GAUSSIAN_SHAPE[1:])
    alpha, sigma = schedule.alpha_sigma(1.0)
    worst = {"logsnr": 0.0, "uniform": 0.0}
    for c in (0.5, 0.1, 0.02):
        expected = mu + c * (x_init - alpha * mu) / jnp.sqrt(alpha**2 * c**2 + sigma**2)
        predict_fn = exact_denoiser(gaussian_x0(mu, c), schedule, "v")
        run = lambda steps, spacing: diffusion.sample(predict_fn, x_init.shape, jax.random.key(0),
                                                      schedule, steps=steps, x_init=x_init,
                                                      spacing=spacing)
        error = lambda out: float(jnp.linalg.norm(out - expected) / jnp.linalg.norm(expected - mu))
        few, many = run(25, "logsnr"), run(250, "logsnr")
        assert float(jnp.linalg.norm(few - many) / jnp.linalg.norm(many - mu)) < 0.15
        assert error(many) < 0.1  # at c = 0.02 (2.5 grey levels) the last step, from log-SNR 10, costs 6%
        for spacing in worst:
            worst[spacing] = max(worst[spacing], error(run(25, spacing)))
    assert worst["logsnr"] < 0.15
    assert worst["uniform"] > 2 * worst["logsnr"]


def test_frame_correlated_noise_has_unit_variance_and_the_asked_correlation():
    """Video noise: every element N(0, 1), two frames of one clip correlate by rho, two clips do
    not; rho = 0 is exactly the independent draw; images are never correlated."""
    from lumiere_jax.diffusion.noise import gaussian_noise
    rng = jax.random.key(3)
    shape = (64, 4, 16, 16, 3)
    np.testing.assert_array_equal(gaussian_noise(rng, shape, 0.0), jax.random.normal(rng, shape))
    noise = np.asarray(gaussian_noise(rng, shape, 0.6))
    assert abs(noise.var() - 1.0) < 0.02
    frames = noise.reshape(64, 4, -1)
    same_clip = np.mean(frames[:, 0] * frames[:, 3])
    other_clip = np.mean(frames[:-1, 0] * frames[1:, 3])
    assert abs(same_clip - 0.6) < 0.02, same_clip
    assert abs(other_clip) < 0.02, other_clip
    images = np.asarray(gaussian_noise(rng, (64, 16, 16, 3), 0.6))
    np.testing.assert_array_equal(images, jax.random.normal(rng, (64, 16, 16, 3)))
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        gaussian_noise(rng, shape, 1.0)


def test_the_video_loss_draws_its_noise_with_the_frame_correlation():
    x0 = jnp.zeros((32, 4, 8, 8, 3))
    zero = lambda x_t, t: jnp.zeros_like(x_t)
    _, aux = diffusion.diffusion_loss(zero, x0, jax.random.key(0), "cosine", "v",
                                      frame_correlation=0.8)
    eps = np.asarray(aux["eps"]).reshape(32, 4, -1)
    assert abs(np.mean(eps[:, 1] * eps[:, 2]) - 0.8) < 0.05
    _, aux = diffusion.diffusion_loss(zero, x0, jax.random.key(0), "cosine", "v")
    eps = np.asarray(aux["eps"]).reshape(32, 4, -1)
    assert abs(np.mean(eps[:, 1] * eps[:, 2])) < 0.05
    with pytest.raises(ValueError, match="frame_noise_correlation must be in"):
        DiffusionSettings(frame_noise_correlation=-0.1)
