"""The peer race's own logic (benchmarks/peer_race.py), without torch or a compile: the matched
sizes, our STUNet's layout at them, the trainable-filter swap, the rounds and the ratios."""
import argparse

import numpy as np
import pytest
from flax import nnx

from benchmarks import peer_race
from benchmarks.peer_ours import TRAINABLE, race_config, stunet_trains
from benchmarks.peer_spec import ALL, SIZES, TEMPORAL, Contestant
from lumiere_jax.models.build import build_model
from lumiere_jax.models.stunet import STUNet
from lumiere_jax.models.t2i import ALL_BUT_TEXT
from lumiere_jax.train.settings import parse_run_config


def test_sizes_match_the_brief_and_refuse_clips_they_cannot_halve():
    tiny, small = SIZES["tiny"], SIZES["small"]
    assert (tiny.batch, tiny.frames, tiny.resolution, tiny.widths) == (4, 16, 32, (64, 128, 256))
    assert (small.batch, small.frames, small.resolution, small.widths) == (
        2, 16, 64, (96, 192, 384, 384))
    assert (tiny.coarsest_resolution, tiny.head_dim, small.head_dim) == (8, 64, 96)
    assert tiny.with_clips(batch=1, frames=4).widths == tiny.widths
    with pytest.raises(ValueError, match="multiple of 8"):
        small.with_clips(frames=4)


@pytest.mark.parametrize("size", sorted(SIZES))
def test_our_stunet_at_a_race_size_has_the_peers_temporal_layout(size):
    size = SIZES[size]
    run = parse_run_config(race_config(size))
    model = nnx.eval_shape(lambda: build_model(run.model))
    coarsest = size.levels - 1
    assert sorted(model.temporal_attention) == sorted(
        [f"down_{coarsest}_{i}" for i in range(2)] + ["middle_0", "middle_1"]
        + [f"up_{coarsest}_{i}" for i in range(3)])
    assert len(model.temporal_convs) == 5 * coarsest
    assert sorted(model.temporal_downsamples) == [f"down_{l}_downsample" for l in range(coarsest)]
    assert all(len(blocks) == 1 for blocks in model.temporal_attention.values())
    assert model.spatial.unet.config.attention_resolutions == (size.coarsest_resolution,)
    assert run.data.batch_size == size.batch and run.data.num_frames == size.frames


def test_the_all_weights_switch_swaps_the_filter_only_inside_and_refuses_unknown_modes():
    assert STUNet.trainable is TRAINABLE[TEMPORAL]
    with pytest.raises(RuntimeError):
        with stunet_trains(ALL):
            assert STUNet.trainable is ALL_BUT_TEXT
            raise RuntimeError
    assert STUNet.trainable is TRAINABLE[TEMPORAL]
    with pytest.raises(ValueError, match="trains must be one of"):
        with stunet_trains("spatial"):
            pass


def test_models_are_parsed_and_unknown_names_listed():
    assert peer_race.parse_models("ours, imagen,ours") == ["ours", "imagen"]
    with pytest.raises(argparse.ArgumentTypeError, match="choose from ours, ours-all"):
        peer_race.parse_models("ours,dalle")


def contestant(name, calls, trains, forward=True):
    call = lambda task: (lambda: calls.append((name, task)))
    return Contestant(name=name, framework="test", trains=trains, params=10, trainable=5,
                      forward=call("forward") if forward else None, train_step=call("train"))


def test_each_round_visits_every_contestant_in_turn_order_reversed_on_odd_rounds():
    calls = []
    field = [contestant("ours", calls, TEMPORAL), contestant("ours-all", calls, ALL, False),
             contestant("imagen", calls, ALL)]
    medians = peer_race.race(field, rounds=2, repeats=3)
    per_task = 1 + 3  # warm-up, then the timed calls
    order = [name for name, _ in calls[::per_task]]
    assert order == ["ours", "ours", "ours-all", "imagen", "imagen",
                     "imagen", "imagen", "ours-all", "ours", "ours"]
    assert len(calls) == 5 * 2 * per_task
    assert ("ours-all", "forward") not in medians and len(medians[("imagen", "train")]) == 2


def test_ratios_compare_forwards_with_ours_and_train_steps_with_the_same_weights():
    calls = []
    field = [contestant("ours", calls, TEMPORAL), contestant("ours-all", calls, ALL, False),
             contestant("imagen", calls, ALL), contestant("lumiere", calls, TEMPORAL)]
    medians = {("ours", "forward"): [2.0, 1.0], ("ours", "train"): [3.0],
               ("ours-all", "train"): [4.0], ("imagen", "forward"): [5.0],
               ("imagen", "train"): [8.0], ("lumiere", "forward"): [3.0],
               ("lumiere", "train"): [6.0]}
    args = argparse.Namespace(rounds=2, repeats=1)
    rows = {row["model"]: row for row in peer_race.records(
        field, medians, {c.name: 0.0 for c in field}, SIZES["tiny"], args, load=0.0)}
    assert rows["imagen"]["ours_over_this_forward"] == pytest.approx(5.0)
    assert rows["imagen"]["ours_over_this_train"] == pytest.approx(2.0)   # against ours-all
    assert rows["lumiere"]["ours_over_this_train"] == pytest.approx(2.0)  # against ours
    assert rows["ours"]["ours_over_this_train"] is None
    assert rows["ours"]["forward_clips_per_s"] == pytest.approx(SIZES["tiny"].batch / 1.0)
    table = peer_race.markdown(list(rows.values()), SIZES["tiny"], args)
    assert "| ours-all | test | all | 0.00 | 0.00 | – | 4.000 |" in table
    assert np.isclose(rows["lumiere"]["ours_over_this_forward"], 3.0)
