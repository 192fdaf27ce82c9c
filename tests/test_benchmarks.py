"""The benchmarks' shared measurements: chip lookup, FLOP counts, MFU and the timing rounds."""
import jax
import jax.numpy as jnp
import pytest

from benchmarks import measure
from launch.chips import CHIPS, TPU_CHIPS, chip_of


@pytest.mark.parametrize("kind, name", [
    ("TPU v5 lite", "v5e"), ("TPU v5", "v5p"), ("TPU v5p", "v5p"), ("TPU v4", "v4"),
    ("TPU v6 lite", "v6e"), ("NVIDIA H100 80GB HBM3", "h100"), ("NVIDIA H200", "h200"),
    ("NVIDIA A100-SXM4-80GB", "a100")])
def test_chip_of_names_the_device_kind_by_its_longest_prefix(kind, name):
    assert chip_of(kind) == (name, CHIPS[name])


def test_chip_of_knows_no_cpu_and_the_plans_keep_only_tpus():
    assert chip_of("cpu") is None
    assert all(name.startswith("v") for name in TPU_CHIPS)


def test_compiled_costs_count_a_matmul_and_its_memory():
    m, k, n = 64, 96, 32
    compiled = jax.jit(lambda a, b: a @ b).lower(
        jnp.zeros((m, k)), jnp.zeros((k, n))).compile()
    costs = measure.compiled_costs(compiled)
    assert costs["flops_per_device"] == pytest.approx(2 * m * k * n, rel=0.01)
    assert costs["argument_gib"] == pytest.approx(4 * (m * k + k * n) / measure.GIB)
    assert costs["peak_gib"] >= costs["argument_gib"] + 4 * m * n / measure.GIB


def test_throughput_gives_mfu_against_the_chips_peak_and_none_on_cpu():
    record = measure.throughput(2.0, 459e12, 4, device_kind="TPU v5")
    assert record["tflops_per_device"] == pytest.approx(229.5)
    assert record["mfu"] == pytest.approx(0.5) and record["chip"] == "v5p"
    assert measure.throughput(1.0, 1e12, 1, device_kind="cpu")["mfu"] is None
    with pytest.raises(ValueError, match="positive time"):
        measure.throughput(0.0, 1e12, 1, device_kind="cpu")


def test_time_rounds_warms_up_then_times_every_call_of_every_round():
    calls = []
    timing = measure.time_rounds(lambda: calls.append(1) or jnp.ones(()), steps=3, rounds=2,
                                 warmup=2)
    assert len(calls) == 2 + 3 * 2
    assert len(timing["round_medians_s"]) == 2
    assert timing["min_s"] <= timing["median_s"]
    with pytest.raises(ValueError, match="steps >= 1"):
        measure.time_rounds(lambda: None, steps=0, rounds=1)


def test_time_pipelined_waits_once_a_round_for_the_last_call():
    calls = []
    seconds = measure.time_pipelined(lambda: calls.append(1) or jnp.ones(()), steps=4, rounds=3)
    assert len(calls) == 12 and seconds > 0.0


def test_profile_groups_trace_events_by_operation_and_by_jax_op():
    from benchmarks import trace_summary
    hlo = ('  %fusion.3 = f32[4]{0} fusion(f32[4]{0} %p), kind=kLoop, calls=%c, '
           'metadata={op_name="jit(step)/jvp()/transpose" source_file="x.py"}\n'
           '  ROOT %convolution.1 = f32[4]{0} convolution(f32[4]{0} %a), '
           'metadata={op_name="jit(step)/jvp()/conv_general_dilated"}\n')
    names = trace_summary.hlo_names(hlo)
    assert names == {"fusion.3": ("fusion", "jit(step)/jvp()/transpose"),
                     "convolution.1": ("convolution", "jit(step)/jvp()/conv_general_dilated")}
    events = [{"name": "fusion.3", "dur": 300.0}, {"name": "convolution.1", "dur": 500.0},
              {"name": "fusion.3", "dur": 100.0}, {"name": "copy.7", "dur": 100.0}]
    summary = trace_summary.summarise(events, names, steps=2, top=10)
    assert [(r["op"], r["ms_per_step"]) for r in summary["ops"]] == [
        ("convolution.1", 0.25), ("fusion.3", 0.2), ("copy.7", 0.05)]
    assert {r["kind"]: r["share"] for r in summary["kinds"]} == pytest.approx(
        {"conv_general_dilated": 0.5, "transpose": 0.4, "copy": 0.1})
    assert trace_summary._HLO_NAME.fullmatch("fusion.12")
    assert not trace_summary._HLO_NAME.fullmatch("ParseArguments")


@pytest.mark.parametrize("layout", ["conv3d", "shifted"])
def test_temporal_layout_candidates_equal_the_library_conv_over_time(layout):
    from flax import nnx

    from benchmarks.temporal_layout import LAYOUTS
    from lumiere_jax.nn.temporal import over_time, temporal_conv
    conv = temporal_conv(8, 3, nnx.Rngs(0))
    conv.kernel[...] = jax.random.normal(jax.random.key(2), conv.kernel.shape)
    conv.bias[...] = jax.random.normal(jax.random.key(3), conv.bias.shape)
    video = jax.random.normal(jax.random.key(1), (2, 6, 3, 5, 8))
    out = LAYOUTS[layout](conv, video)
    assert out.shape == (2, 4, 3, 5, 8)
    assert jnp.allclose(out, over_time(conv, video), atol=1e-4)
