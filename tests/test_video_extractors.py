"""The FVD and IS networks (I3D, C3D) loaded from npz weight files, and the UCF101 zero-shot
protocol script on a tiny fake UCF101 folder, with tiny random-weight networks (no real weights
exist here; accuracy is not tested)."""
import json
import math
import os
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
from flax import nnx

from launch import ucf101_zero_shot as ucf
from lumiere_jax.eval.c3d import C3D, C3DConfig
from lumiere_jax.eval.i3d import I3D, MIXED_CHANNELS, I3DConfig, Mixed
from lumiere_jax.eval.npz_weights import WeightsError, load_npz, variable_shapes, write_npz
from lumiere_jax.eval import video_extractors
from lumiere_jax.eval.video_extractors import (abstract_network, c3d_classifier, i3d_extractor,
                                               load_c3d, load_i3d)
from random_networks import random_network

# Tiny networks: every layer of the published architecture, fewer channels, small inputs.
I3D_TINY = I3DConfig(width=1 / 16, input_size=32)
C3D_TINY = C3DConfig(width=1 / 16, size=16)
BATCH = 2


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Random tiny networks and their npz files."""
    root = tmp_path_factory.mktemp("weights")
    networks = {"i3d": random_network(I3D, I3D_TINY, seed=1),
                "c3d": random_network(C3D, C3D_TINY, seed=2)}
    paths = {name: str(root / f"{name}.npz") for name in networks}
    for name, network in networks.items():
        write_npz(network, paths[name])
    return networks, paths


@pytest.fixture(scope="module")
def clips():
    return np.random.default_rng(0).integers(0, 256, (3, 16, 24, 30, 3), dtype=np.uint8)


def test_i3d_round_trips_through_npz(weights, clips):
    networks, paths = weights
    features = i3d_extractor(networks["i3d"], BATCH)(clips)
    logits = i3d_extractor(networks["i3d"], BATCH, output="logits")(clips)
    assert features.shape == (3, networks["i3d"].feature_width) and logits.shape == (3, 400)
    assert np.all(np.isfinite(logits)) and np.ptp(features, axis=0).max() > 0
    loaded = load_i3d(paths["i3d"], I3D_TINY)
    np.testing.assert_array_equal(i3d_extractor(loaded, BATCH)(clips), features)
    np.testing.assert_array_equal(i3d_extractor(loaded, BATCH, output="logits")(clips), logits)
    # A clip's features do not depend on the clips batched with it (to float rounding).
    np.testing.assert_allclose(i3d_extractor(loaded, BATCH)(clips[1:]), features[1:],
                               rtol=1e-4, atol=1e-6)


def test_c3d_round_trips_through_npz(weights, clips):
    networks, paths = weights
    probabilities = c3d_classifier(networks["c3d"], BATCH)(clips)
    assert probabilities.shape == (3, 101) and np.ptp(probabilities, axis=0).max() > 0
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    loaded = load_c3d(paths["c3d"], C3D_TINY)
    np.testing.assert_array_equal(c3d_classifier(loaded, BATCH)(clips), probabilities)
    with pytest.raises(ValueError, match="C3D reads 16 frames; the clips have 8"):
        c3d_classifier(loaded)(clips[:, :8])


def test_published_layouts_have_the_documented_shapes(weights):
    tiny = variable_shapes(weights[0]["i3d"])
    assert len(tiny) == 57 * 5 + 2  # 57 conv + batch-norm units, and the logits
    assert tiny["Conv3d_1a_7x7/conv/kernel"] == (7, 7, 7, 3, 4)  # 64 / 16 channels
    assert tiny["Mixed_5c/Branch_1/Conv3d_0b_3x3/conv/kernel"] == (3, 3, 3, 12, 24)
    mixed_5c = nnx.eval_shape(lambda: Mixed(832, MIXED_CHANNELS["Mixed_5c"], I3DConfig(),
                                            rngs=nnx.Rngs(0)))
    assert mixed_5c.out_channels == 1024  # the FVD feature width
    assert variable_shapes(mixed_5c)["Branch_3/Conv3d_0b_1x1/bn/mean"] == (128,)
    c3d = variable_shapes(abstract_network(C3D, C3DConfig()))
    assert c3d["input_mean"] == (3,) and c3d["conv1a/kernel"] == (3, 3, 3, 3, 64)
    assert c3d["fc6/kernel"] == (8192, 4096) and c3d["fc8/kernel"] == (4096, 101)
    assert len(c3d) == 1 + 2 * 11


def test_loading_names_missing_unexpected_and_misshaped_keys(weights, tmp_path):
    _, paths = weights
    arrays = dict(np.load(paths["c3d"]))
    broken = tmp_path / "broken.npz"
    without = {k: v for k, v in arrays.items() if k != "fc7/bias"}
    np.savez(broken, **without, extra=np.zeros(1))
    with pytest.raises(WeightsError, match=r"missing key\(s\) fc7/bias; unexpected key\(s\) "
                                           r"extra"):
        load_c3d(str(broken), C3D_TINY)
    np.savez(broken, **dict(arrays, **{"conv2a/kernel": np.zeros((3, 3, 3, 4, 5))}))
    with pytest.raises(WeightsError, match=r"'conv2a/kernel' has shape \(3, 3, 3, 4, 5\), the "
                                           r"C3D network needs \(3, 3, 3, 4, 8\)"):
        load_c3d(str(broken), C3D_TINY)
    with pytest.raises(FileNotFoundError, match="No I3D network weight file"):
        load_i3d(str(tmp_path / "absent.npz"), I3D_TINY)
    (tmp_path / "notes.txt").write_text("not weights")
    with pytest.raises(WeightsError, match="not a readable .npz file"):
        load_c3d(str(tmp_path / "notes.txt"), C3D_TINY)
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(WeightsError, match="holds a single array"):
        load_c3d(str(tmp_path / "one.npy"), C3D_TINY)
    network = abstract_network(C3D, C3D_TINY)
    with pytest.raises(WeightsError, match="missing key"):  # an I3D file for a C3D
        load_npz(network, paths["i3d"])


# ----------------------------------------------------------------------------- UCF101 protocol

CLASSES = ("ApplyEyeMakeup", "YoYo")


@pytest.fixture(scope="module")
def ucf_dir(tmp_path_factory):
    """UCF-101/<Class>/*.avi: 2 classes x 2 tiny test-pattern videos of 20 frames."""
    root = tmp_path_factory.mktemp("ucf")
    for index, name in enumerate(CLASSES):
        os.makedirs(root / "UCF-101" / name)
        for video in range(2):
            pattern = ("testsrc", "smptebars")[(index + video) % 2]
            subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                            f"{pattern}=size=40x30:rate=10", "-frames:v", "20", "-c:v", "mpeg4",
                            str(root / "UCF-101" / name / f"v_{name}_g01_c0{video}.avi")],
                           check=True)
    return str(root)


class StubSampler:
    """Random clips (17 frames: only the first 16 count), recording every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, prompts, seed):
        self.calls.append((list(prompts), seed))
        rng = np.random.default_rng(seed)
        return rng.integers(0, 256, (len(prompts), 17, 20, 20, 3), dtype=np.uint8)


def test_class_prompts_split_camel_case_and_take_overrides(tmp_path):
    assert ucf.class_prompt("ApplyEyeMakeup") == "apply eye makeup"
    assert ucf.class_prompt("YoYo") == "yo yo"
    assert ucf.class_prompt("PlayingDaf") == "playing daf"
    prompt_file = tmp_path / "prompts.txt"
    prompt_file.write_text("# overrides\nYoYo: a person playing with a yo-yo\n")
    assert ucf.class_prompts(CLASSES, str(prompt_file)) == {
        "ApplyEyeMakeup": "apply eye makeup", "YoYo": "a person playing with a yo-yo"}
    prompt_file.write_text("Juggling: someone juggling\n")
    with pytest.raises(ucf.ProtocolError, match="'Juggling' is not a class"):
        ucf.class_prompts(CLASSES, str(prompt_file))
    assert ucf.balanced_counts(CLASSES, 5) == {"ApplyEyeMakeup": 3, "YoYo": 2}
    assert sum(ucf.balanced_counts([str(i) for i in range(101)], 10_000).values()) == 10_000


def test_protocol_counts_clips_per_class_and_gives_finite_scores(weights, ucf_dir, tmp_path,
                                                                 monkeypatch):
    _, paths = weights
    sampler = StubSampler()
    monkeypatch.setattr(ucf, "model_sampler", lambda checkpoint, **settings: sampler)
    monkeypatch.setattr(video_extractors, "load_i3d", lambda path: load_i3d(path, I3D_TINY))
    monkeypatch.setattr(video_extractors, "load_c3d", lambda path: load_c3d(path, C3D_TINY))
    out = tmp_path / "scores.json"
    assert ucf.main(["--ucf-dir", ucf_dir, "--i3d-weights", paths["i3d"], "--c3d-weights",
                     paths["c3d"], "--num-clips", "5", "--real-per-class", "2", "--batch",
                     str(BATCH), "--seed", "10", "--is-splits", "2", "--json", str(out)]) == 0
    scores = json.loads(out.read_text())
    prompts = [p for call in sampler.calls for p in call[0]]
    assert prompts == ["apply eye makeup"] * 3 + ["yo yo"] * 2
    assert [seed for _, seed in sampler.calls] == [10, 12, 14]
    assert scores["generated_per_class"] == {"ApplyEyeMakeup": 3, "YoYo": 2}
    assert scores["real_per_class"] == {"ApplyEyeMakeup": 2, "YoYo": 2}
    assert (scores["num_generated"], scores["num_real"], scores["classes"]) == (5, 4, 2)
    assert math.isfinite(scores["fvd"]) and scores["fvd"] > 0
    for key in ("is", "is_real"):
        assert 1.0 <= scores[key] <= 101.0, key
    assert math.isfinite(scores["is_std"])


def test_real_clips_are_the_first_16_decoded_frames(ucf_dir, tmp_path):
    path = ucf.find_videos(ucf_dir)["YoYo"][0]
    clip = ucf.read_first_frames(path)
    assert clip.shape == (16, 30, 40, 3) and clip.dtype == np.uint8 and clip.std() > 10
    np.testing.assert_array_equal(ucf.read_first_frames(path, 4), clip[:4])
    with pytest.raises(ucf.ProtocolError, match="has 20 frames; the protocol reads 32"):
        ucf.read_first_frames(path, 32)
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"not a video")
    with pytest.raises(ucf.ProtocolError, match="Cannot decode .*broken.avi"):
        ucf.read_first_frames(str(broken))


def test_protocol_refuses_a_wrong_layout_or_weight_file(weights, ucf_dir, tmp_path, capsys):
    _, paths = weights
    with pytest.raises(ucf.ProtocolError, match="No UCF101 folder"):
        ucf.find_videos(str(tmp_path / "absent"))
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "clip.avi").write_bytes(b"")
    with pytest.raises(ucf.ProtocolError, match="has no class folders"):
        ucf.find_videos(str(tmp_path / "flat"))
    (tmp_path / "flat" / "Empty").mkdir()
    with pytest.raises(ucf.ProtocolError, match="without .avi videos.*Empty"):
        ucf.find_videos(str(tmp_path / "flat"))
    args = ["--ucf-dir", ucf_dir, "--i3d-weights", paths["i3d"], "--c3d-weights", paths["i3d"]]
    with pytest.raises(SystemExit, match="does not fit the C3D network: missing key"):
        ucf.main(args)
    args[1] = str(tmp_path / "flat")
    with pytest.raises(SystemExit, match="without .avi videos"):
        ucf.main(args)
    with pytest.raises(SystemExit, match="--clips-per-class must be at least 1"):
        ucf.main(args + ["--clips-per-class", "0"])
