"""Linear probes of a text encoder: can each caption attribute be read off its frozen features?

Features are the masked mean of the encoder's token outputs. For every attribute (shape, colour,
size, background, motion, speed) a softmax regression is fitted on training-split captions and
scored on validation-split captions, each over the captions that name the attribute (a caption
may leave out the size, the background or, for a still shape, the speed).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lumiere_jax.data import shapes, tfds_shapes
from lumiere_jax.text import tokenizer

ATTRIBUTES = ("shape", "colour", "size", "background", "motion", "speed")
CLASSES = {"shape": shapes.SHAPES, "colour": tuple(shapes.COLOURS), "size": shapes.SIZES,
           "background": shapes.BACKGROUNDS, "motion": shapes.MOTIONS, "speed": shapes.SPEEDS}


def caption_labels(split: str, num: int) -> tuple[list[str], dict[str, np.ndarray]]:
    """Captions of a split and, per attribute, the class index of each (-1: not named)."""
    captions, labels = [], {name: [] for name in ATTRIBUTES}
    for index in range(num):
        caption, spec = tfds_shapes.caption_for_seed(tfds_shapes.example_seed(split, index), split)
        named = shapes.parse_caption(caption)
        captions.append(caption)
        for name in ATTRIBUTES:
            value = getattr(spec, name)
            labels[name].append(CLASSES[name].index(value) if name in named and value else -1)
    return captions, {name: np.array(values) for name, values in labels.items()}


def pooled_features(text_encoder, captions, batch: int = 256) -> np.ndarray:
    """Masked-mean token features (N, width) of captions."""
    tokens = tokenizer.tokenize_batch(captions, text_encoder.config.max_length)

    @jax.jit
    def encode(ids):
        features, mask = text_encoder(ids)
        weights = mask[..., None].astype(features.dtype)
        return jnp.sum(features * weights, 1) / jnp.sum(weights, 1)

    return np.concatenate([np.asarray(encode(jnp.asarray(tokens[i:i + batch])))
                           for i in range(0, len(tokens), batch)])


def fit_linear_probe(features: np.ndarray, labels: np.ndarray, num_classes: int, steps: int = 500,
                     learning_rate: float = 0.05):
    """Softmax regression (W, b) on standardised features; returns a predict(features) function."""
    mean, std = features.mean(0), features.std(0) + 1e-6
    x, y = jnp.asarray((features - mean) / std), jnp.asarray(labels)
    params = {"w": jnp.zeros((x.shape[1], num_classes)), "b": jnp.zeros((num_classes,))}
    optimizer = optax.adam(learning_rate)

    def loss(p):
        logits = x @ p["w"] + p["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean() \
            + 1e-4 * jnp.sum(p["w"] ** 2)

    @jax.jit
    def fit(p):
        def body(_, carry):
            p, opt = carry
            grads = jax.grad(loss)(p)
            updates, opt = optimizer.update(grads, opt, p)
            return optax.apply_updates(p, updates), opt
        return jax.lax.fori_loop(0, steps, body, (p, optimizer.init(p)))[0]

    params = fit(params)
    return lambda f: np.asarray(jnp.argmax(jnp.asarray((f - mean) / std) @ params["w"]
                                           + params["b"], -1))


def probe_text_encoder(text_encoder, *, num_train: int = 4096, num_validation: int = 1024,
                       steps: int = 500) -> dict[str, float]:
    """Validation accuracy of a linear probe per attribute, on frozen pooled features."""
    train_captions, train_labels = caption_labels("train", num_train)
    val_captions, val_labels = caption_labels("validation", num_validation)
    train_x = pooled_features(text_encoder, train_captions)
    val_x = pooled_features(text_encoder, val_captions)
    scores = {}
    for name in ATTRIBUTES:
        fit_rows, score_rows = train_labels[name] >= 0, val_labels[name] >= 0
        predict = fit_linear_probe(train_x[fit_rows], train_labels[name][fit_rows],
                                   len(CLASSES[name]), steps)
        scores[name] = float(np.mean(predict(val_x[score_rows]) == val_labels[name][score_rows]))
    return scores
