"""The text stage: span corruption, the T5 pretrainer, the encoder export and its frozen use."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import t2i_shapes, t5_shapes
from lumiere_jax.checkpoints import exported as io
from lumiere_jax.checkpoints.pretrained import build_pretrained
from lumiere_jax.data import shapes, text_corpus
from lumiere_jax.models.settings import parse_model_config
from lumiere_jax.models.t5 import DecoderConfig, T5Pretrainer
from lumiere_jax.models.text_encoder import TextEncoderConfig, TextParam
from lumiere_jax.settings import ConfigError
from lumiere_jax.text import tokenizer
from lumiere_jax.train import text_loop
from lumiere_jax.train.settings import parse_run_config
from lumiere_jax.train.setup import setup

TEXT = TextEncoderConfig(width=32, num_layers=1, num_heads=2, max_length=32)


def leaves_equal(a, b) -> bool:
    a, b = jax.tree.leaves(jax.device_get(a)), jax.tree.leaves(jax.device_get(b))
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def uncorrupt(inputs, targets):
    """Puts the target spans back in place of their sentinels."""
    spans, current = {}, None
    for token in targets:
        if token in (tokenizer.EOS_ID, tokenizer.PAD_ID):
            break
        if token >= tokenizer.VOCAB_SIZE:
            current = token
            spans[current] = []
        else:
            spans[current].append(int(token))
    out = []
    for token in inputs:
        if token == tokenizer.EOS_ID:
            break
        out.extend(spans[token] if token >= tokenizer.VOCAB_SIZE else [int(token)])
    return out


@pytest.mark.parametrize("length", [2, 5, 13, 31])
def test_span_corruption_round_trips_and_cuts_about_the_density(length):
    rng = np.random.default_rng(length)
    fractions = []
    for trial in range(50):
        ids = rng.integers(tokenizer.PIECE_OFFSET, tokenizer.VOCAB_SIZE, length)
        mask = text_corpus.noise_mask(length, rng, 0.25, 2.0)
        assert 1 <= mask.sum() <= length - 1 and not mask[0]  # starts with a kept span
        inputs, targets = text_corpus.span_corrupt(ids, mask, 32, 32)
        assert uncorrupt(inputs, targets) == ids.tolist()
        assert np.all(inputs[inputs >= tokenizer.VOCAB_SIZE] ==
                      tokenizer.VOCAB_SIZE + np.arange((inputs >= tokenizer.VOCAB_SIZE).sum()))
        fractions.append(mask.mean())
    if length >= 13:
        assert abs(np.mean(fractions) - 0.25) < 0.05


def test_span_corruption_refuses_what_does_not_fit():
    with pytest.raises(ValueError, match="at least 2 tokens"):
        text_corpus.noise_mask(1, np.random.default_rng(0), 0.25, 2.0)
    ids = np.arange(10) + tokenizer.PIECE_OFFSET
    mask = text_corpus.noise_mask(10, np.random.default_rng(0), 0.5, 1.0)
    with pytest.raises(ValueError, match="input / .* target tokens"):
        text_corpus.span_corrupt(ids, mask, 4, 4)
    with pytest.raises(ValueError, match="noise_density"):
        text_corpus.make_text_iterator(num_captions=8, batch_size=2, seed=0, input_length=32,
                                       target_length=24, noise_density=1.5)


def test_text_iterator_resumes_exactly():
    make = lambda: text_corpus.make_text_iterator(num_captions=64, batch_size=4, seed=3,
                                                  input_length=32, target_length=24)
    first = make()
    for _ in range(3):
        next(first)
    state = first.get_state()
    expected = next(first)
    second = make()
    second.set_state(state)
    np.testing.assert_array_equal(next(second)["inputs"], expected["inputs"])
    np.testing.assert_array_equal(next(make())["targets"].shape, (4, 24))


def test_decoder_is_causal_and_reads_the_encoder():
    model = T5Pretrainer(TEXT, DecoderConfig(num_layers=1), rngs=nnx.Rngs(0))
    inputs = jnp.asarray(tokenizer.tokenize_batch(["a red circle moving left"], 32))
    inputs = inputs.at[0, 2].set(tokenizer.VOCAB_SIZE)  # a sentinel
    decoder_in = jnp.array([[0, tokenizer.VOCAB_SIZE, 300, 301, 302, 1]])
    logits = model(inputs, decoder_in)
    changed_later = model(inputs, decoder_in.at[0, 4].set(305))
    np.testing.assert_allclose(logits[0, :4], changed_later[0, :4], atol=1e-5)
    assert float(jnp.abs(logits[0, 4:] - changed_later[0, 4:]).max()) > 1e-4
    other_text = model(inputs.at[0, 1].set(310), decoder_in)
    assert float(jnp.abs(other_text - logits).max()) > 1e-4


@pytest.fixture(scope="module")
def tiny_text_export(tmp_path_factory):
    config = t5_shapes.get_config("variant=tiny")
    config.probe.update(num_train=64, num_validation=32, steps=5)
    workdir = str(tmp_path_factory.mktemp("t5"))
    return text_loop.train_text(config, workdir), config


def test_text_stage_trains_and_exports_only_the_encoder(tiny_text_export):
    export, config = tiny_text_export
    metrics = [json.loads(line) for line in open(os.path.join(export, "..", "metrics.jsonl"))]
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert losses[-1] < losses[0]
    assert {"span_loss", "paraphrase_loss", "token_accuracy"} <= set(metrics[0])
    probe = json.load(open(os.path.join(export, "probe.json")))
    assert set(probe) == {"shape", "colour", "size", "background", "motion", "speed"}
    exported = io.read_exported_config(export)
    assert exported.model.kind == "text_encoder"
    assert exported.model.text_encoder.to_dict() == config.model.text_encoder.to_dict()


def test_t2i_loads_the_encoder_and_never_trains_it(tiny_text_export, tmp_path):
    export, _ = tiny_text_export
    config = t2i_shapes.get_config("variant=tiny")
    config.model.text_checkpoint = export
    config.data.data_dir = str(tmp_path / "data")
    config.optim.update(warmup_steps=1, total_steps=2)
    model = build_pretrained(parse_model_config(config.model))
    restored = nnx.state(model.text_encoder, TextParam)
    fresh = nnx.state(build_pretrained(parse_model_config(t2i_shapes.get_config("variant=tiny").model)).text_encoder, TextParam)
    assert not leaves_equal(restored, fresh)  # the export's weights, not a fresh init
    trainer = setup(parse_run_config(config))
    graphdef, state, train_step = trainer.graphdef, trainer.state, trainer.train_step
    iterator = trainer.make_iterator()
    before = nnx.state(nnx.merge(graphdef, state.params, state.frozen).text_encoder, TextParam)
    assert leaves_equal(before, restored)
    for _ in range(2):
        batch = next(iterator)
        state, _ = train_step(state, {"frames": batch["frames"], "tokens": batch["tokens"]})
    after = nnx.state(nnx.merge(graphdef, state.params, state.frozen).text_encoder, TextParam)
    assert leaves_equal(after, restored)
    trained_paths = {path for path, _ in jax.tree_util.tree_leaves_with_path(state.params)}
    assert not any("text_encoder" in jax.tree_util.keystr(path) for path in trained_paths)


def test_text_checkpoint_mismatch_and_wrong_kind_are_refused(tiny_text_export, tmp_path):
    export, _ = tiny_text_export
    config = t2i_shapes.get_config("variant=tiny").model
    config.text_checkpoint = export
    config.text_encoder.width = 48
    config.unet.context_features = 48
    with pytest.raises(io.CheckpointError, match="width: checkpoint has 32, this model has 48"):
        build_pretrained(parse_model_config(config))
    not_text = tmp_path / "t2i"
    model = build_pretrained(parse_model_config(t2i_shapes.get_config("variant=tiny").model))
    io.save_exported(str(not_text), nnx.state(model, nnx.Param),
                     t2i_shapes.get_config("variant=tiny").to_dict())
    config = t2i_shapes.get_config("variant=tiny").model
    config.text_checkpoint = str(not_text)
    with pytest.raises(io.CheckpointError, match="needs an exported text encoder"):
        build_pretrained(parse_model_config(config))


def test_text_config_errors_name_the_key():
    config = t5_shapes.get_config("variant=tiny")
    config.data.unknown = 1
    with pytest.raises(ConfigError, match="unknown"):
        text_loop.parse_text_config(config)
    config = t5_shapes.get_config("variant=tiny")
    config.model.decoder.num_layers = 0
    with pytest.raises(ConfigError, match="num_layers"):
        text_loop.parse_text_config(config)


def test_paraphrases_name_the_same_attributes_in_other_words():
    batch = next(text_corpus.make_text_iterator(num_captions=64, batch_size=32, seed=1,
                                                input_length=32, target_length=24))
    differ = 0
    for anchor, positive in zip(batch["anchor"], batch["positive"]):
        anchor, positive = tokenizer.detokenize(anchor), tokenizer.detokenize(positive)
        assert shapes.parse_caption(anchor) == shapes.parse_caption(positive)
        differ += anchor != positive
    assert differ >= 28  # the canonical fallback may rarely repeat a caption


def test_paraphrase_loss_prefers_matching_rows():
    embeddings = jax.random.normal(jax.random.key(0), (8, 16))
    embeddings = embeddings / jnp.linalg.norm(embeddings, axis=-1, keepdims=True)
    matched, accuracy = text_loop.paraphrase_loss(embeddings, embeddings, 0.1)
    shuffled, _ = text_loop.paraphrase_loss(embeddings, embeddings[::-1], 0.1)
    assert float(accuracy) == 1.0 and float(matched) < float(shuffled)
