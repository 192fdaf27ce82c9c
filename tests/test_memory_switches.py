"""Memory switches (config.compute): remat, chunked temporal attention and gradient accumulation
leave the results unchanged; bf16 compute stays within a stated tolerance of fp32."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from configs import t2i_shapes
from lumiere_jax.diffusion.settings import DiffusionSettings
from lumiere_jax.models.memory import set_memory_switches
from lumiere_jax.models.stunet import STUNet, STUNetConfig
from lumiere_jax.models.text_encoder import TextEncoderConfig
from lumiere_jax.models.unet2d import UNetConfig
from lumiere_jax.settings import ComputeSettings, ConfigError, OptimSettings
from lumiere_jax.train.settings import parse_run_config
from lumiere_jax.train.setup import setup
from lumiere_jax.train.state import create_train_state
from lumiere_jax.train.step import make_train_step
from state_checks import assert_trees_close

TEXT = TextEncoderConfig(width=16, num_layers=1, num_heads=2, max_length=8)
UNET = UNetConfig(resolution=8, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                  attention_resolutions=(4,), num_heads=2, context_features=16)
OPTIM = OptimSettings(learning_rate=1e-3, warmup_steps=0, total_steps=10)
SGD = optax.sgd(1.0)
DIFFUSION = DiffusionSettings(cond_drop_prob=0.25)
BATCH, FRAMES = 4, 4


def tiny_stunet():
    """The tiny STUNet, its zero-initialised outputs randomised so every layer acts."""
    model = STUNet(TEXT, UNET, STUNetConfig(num_heads=2, text_pool=True), rngs=nnx.Rngs(0))
    params = nnx.state(model, nnx.Param)
    keys = iter(jax.random.split(jax.random.key(1), 1000))
    nnx.update(model, jax.tree.map(
        lambda x: 0.2 * jax.random.normal(next(keys), x.shape) if not np.any(x) else x, params))
    return model


BASE = []


def build(**switches):
    """A copy of the (once built) tiny STUNet with the given memory switches."""
    if not BASE:
        BASE.append(tiny_stunet())
    model = nnx.clone(BASE[0])
    set_memory_switches(model, **switches)
    return model


def relative_difference(actual, expected) -> float:
    """|actual - expected| / |expected|, norms over every leaf of the two trees."""
    pairs = list(zip(jax.tree.leaves(actual), jax.tree.leaves(expected)))
    difference = np.sqrt(sum(np.sum(np.square(np.asarray(a) - np.asarray(b))) for a, b in pairs))
    return float(difference / np.sqrt(sum(np.sum(np.square(np.asarray(b))) for _, b in pairs)))


@pytest.fixture(scope="module")
def batch():
    frames_key, tokens_key = jax.random.split(jax.random.key(2))
    return {"frames": jax.random.randint(frames_key, (BATCH, FRAMES, 8, 8, 3), 0, 256, jnp.uint8),
            "tokens": jax.random.randint(tokens_key, (BATCH, TEXT.max_length), 3, 200)}


def one_step(model, batch, compute=ComputeSettings()):
    """(gradients, metrics) of one train step: with SGD at learning rate 1 the step moves the
    parameters by exactly minus the gradient."""
    graphdef, state = create_train_state(model, SGD, seed=0, trainable=model.trainable,
                                         frozen_dtype=compute.frozen_dtype)
    step = jax.jit(make_train_step(graphdef, DIFFUSION, OPTIM, SGD, compute))
    new_state, metrics = step(state, batch)
    return jax.tree.map(lambda old, new: old - new, state.params, new_state.params), metrics


@pytest.fixture(scope="module")
def reference(batch):
    """One fp32 step without any switch: (new state, metrics)."""
    return one_step(build(), batch)


@pytest.mark.parametrize("policy", ["block", "level"])
def test_remat_gives_the_same_step(batch, reference, policy):
    grads, metrics = one_step(build(remat=policy), batch)
    np.testing.assert_allclose(metrics["loss"], reference[1]["loss"], rtol=1e-6)
    assert_trees_close(grads, reference[0], rtol=1e-4)


def denoise(model, *args):
    """model.denoise(*args) compiled."""
    graphdef, state = nnx.split(model)
    return jax.jit(lambda state, *args: nnx.merge(graphdef, state).denoise(*args))(state, *args)


def test_chunked_temporal_attention_gives_the_same_output(batch):
    whole, chunked = build(), build(temporal_attention_chunk=3)  # 4 x 2 x 2 = 16 sequences
    video = jax.random.normal(jax.random.key(3), (BATCH, FRAMES, 8, 8, 3))
    t = jnp.linspace(0.1, 0.9, BATCH)
    cond = whole.encode_text(batch["tokens"])
    expected = denoise(whole, video, t, cond)
    np.testing.assert_allclose(denoise(chunked, video, t, cond), expected, rtol=1e-4, atol=1e-5)
    # The attention acts (the clip is not denoised frame by frame), so the check has teeth.
    per_frame = denoise(whole.spatial, video.reshape((-1, 8, 8, 3)), jnp.repeat(t, FRAMES),
                        jax.tree.map(lambda x: jnp.repeat(x, FRAMES, 0), cond))
    assert not np.allclose(expected, per_frame.reshape(expected.shape), atol=1e-3)


def test_accumulated_micro_batches_give_the_full_batch_step(batch, reference):
    grads, metrics = one_step(build(), batch, ComputeSettings(grad_accum_steps=2))
    np.testing.assert_allclose(metrics["loss"], reference[1]["loss"], rtol=1e-5)
    assert_trees_close(grads, reference[0], rtol=1e-4)


def test_bf16_compute_is_within_tolerance_of_fp32_and_keeps_fp32_state(batch, reference):
    """Stated tolerance, against fp32 on the same batch: loss within 2%, gradient within 5%
    (relative norm of the difference). Parameters and their gradients stay fp32."""
    grads, metrics = one_step(build(), batch, ComputeSettings(dtype="bfloat16"))
    assert {x.dtype for x in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}
    np.testing.assert_allclose(metrics["loss"], reference[1]["loss"], rtol=0.02)
    assert relative_difference(grads, reference[0]) < 0.05


def test_bf16_frozen_weights_halve_their_bytes_and_stay_within_tolerance_of_fp32(batch,
                                                                               reference):
    """frozen_dtype=bfloat16 stores every frozen weight in bf16 (half the bytes), the trained
    parameters stay fp32, and the step is within the bf16 compute's tolerance of fp32 (loss 2%,
    gradient 5%), alone and together with bf16 compute."""
    model = build()
    _, fp32 = create_train_state(model, SGD, seed=0, trainable=model.trainable)
    _, bf16 = create_train_state(model, SGD, seed=0, trainable=model.trainable,
                                 frozen_dtype="bfloat16")
    floating = lambda tree: [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    assert {x.dtype for x in floating(bf16.frozen)} == {jnp.dtype(jnp.bfloat16)}
    assert {x.dtype for x in jax.tree.leaves(bf16.params)} == {jnp.dtype(jnp.float32)}
    assert sum(x.nbytes for x in floating(bf16.frozen)) * 2 == sum(
        x.nbytes for x in floating(fp32.frozen))
    for compute in (ComputeSettings(frozen_dtype="bfloat16"),
                    ComputeSettings(dtype="bfloat16", frozen_dtype="bfloat16")):
        grads, metrics = one_step(build(), batch, compute)
        assert {x.dtype for x in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}
        np.testing.assert_allclose(metrics["loss"], reference[1]["loss"], rtol=0.02)
        assert relative_difference(grads, reference[0]) < 0.05


def operand_dtypes(jaxpr, primitives=("conv_general_dilated", "dot_general")) -> set:
    """The operand dtypes (a tuple per op) of every conv and matmul in `jaxpr`, nested jaxprs
    included."""
    found = set()
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in primitives:
            found.add(tuple(str(var.aval.dtype) for var in eqn.invars))
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            found |= operand_dtypes(sub, primitives)
    return found


def test_bf16_compute_runs_the_convs_and_matmuls_in_bf16(batch):
    """A float32 leak (e.g. the time embedding) would promote the walk back to float32 and the
    switch would save nothing. In the bf16 step no conv or matmul runs wholly in float32 (the
    attention's softmax gradient, float32 by design, meets bf16 values), and every conv runs
    in bf16; in the float32 step everything is float32."""
    model = build()
    graphdef, state = create_train_state(model, SGD, seed=0, trainable=model.trainable)
    found = {}
    for dtype in ("bfloat16", "float32"):
        step = make_train_step(graphdef, DIFFUSION, OPTIM, SGD, ComputeSettings(dtype=dtype))
        jaxpr = jax.make_jaxpr(step)(state, batch).jaxpr
        found[dtype] = (operand_dtypes(jaxpr), operand_dtypes(jaxpr, ("conv_general_dilated",)))
    assert ("float32", "float32") not in found["bfloat16"][0]
    assert found["bfloat16"][1] == {("bfloat16", "bfloat16")}
    assert found["float32"] == ({("float32", "float32")}, {("float32", "float32")})


def test_bad_switches_are_refused():
    with pytest.raises(ValueError, match="remat must be one of"):
        ComputeSettings(remat="everything")
    with pytest.raises(ValueError, match="dtype must be one of"):
        ComputeSettings(dtype="float16")
    with pytest.raises(ValueError, match="frozen_dtype must be one of"):
        ComputeSettings(frozen_dtype="int8")
    config = t2i_shapes.get_config("variant=tiny")
    config.compute.grad_accum_steps = 3
    config.data.batch_size = 4
    with pytest.raises(ConfigError, match="grad_accum_steps=3 does not divide the global batch"):
        setup(parse_run_config(config), abstract=True, devices=jax.devices()[:1])


def test_attention_kernel_reaches_every_attention_and_keeps_the_output(batch):
    """compute.attention sets the kernel of every attention (spatial, cross, temporal, text
    pool); "xla" gives the output of jax's own choice on this CPU; a GPU-only kernel and an
    unknown name are refused by name."""
    from lumiere_jax.nn.attention import MultiHeadAttention
    auto, xla = build(), build(attention="xla")
    kernels = {node.implementation for _, node in nnx.iter_graph(xla)
               if isinstance(node, MultiHeadAttention)}
    assert kernels == {"xla"}
    assert {node.implementation for _, node in nnx.iter_graph(auto)
            if isinstance(node, MultiHeadAttention)} == {None}
    video = jax.random.normal(jax.random.key(4), (BATCH, FRAMES, 8, 8, 3))
    t = jnp.linspace(0.1, 0.9, BATCH)
    cond = auto.encode_text(batch["tokens"])
    np.testing.assert_allclose(denoise(xla, video, t, cond), denoise(auto, video, t, cond),
                               rtol=1e-5, atol=1e-6)
    if jax.default_backend() != "gpu":
        with pytest.raises(ValueError, match="cudnn.*GPU"):
            build(attention="cudnn")
    with pytest.raises(ValueError, match="attention must be one of"):
        ComputeSettings(attention="flash")
