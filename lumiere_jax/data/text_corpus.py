"""Caption corpus for text pretraining: shapes-world captions, span-corrupted as in T5, with a
paraphrase of each.

The corpus is the captions of the training split (all wordings and synonyms, no frames). Each
example is corrupted with T5's span corruption: a `noise_density` fraction of the tokens, in
spans of mean length `mean_span_length`, is cut out; the input keeps the rest with one sentinel
per cut span, the target lists each sentinel followed by the tokens it replaced, then EOS.

Each example also carries the clean caption (`anchor`) and a paraphrase (`positive`): another
wording of the same clip that names the same attributes. In this world the attributes are drawn
independently, so no word helps to predict another, and span corruption alone never asks the
encoder to tell one colour (or shape) from another; matching paraphrases does.
"""
from __future__ import annotations

import warnings

import grain
import jax
import numpy as np

from lumiere_jax.data import shapes, tfds_shapes
from lumiere_jax.text import tokenizer


def _composition(rng: np.random.Generator, total: int, parts: int) -> np.ndarray:
    """`total` split into `parts` positive integers, uniformly over compositions."""
    cuts = np.sort(rng.choice(np.arange(1, total), size=parts - 1, replace=False))
    return np.diff(np.concatenate([[0], cuts, [total]]))


def noise_mask(length: int, rng: np.random.Generator, noise_density: float,
               mean_span_length: float) -> np.ndarray:
    """Boolean mask (length,) of the tokens to cut: alternating kept and cut spans, starting with
    a kept one; about `noise_density` of the tokens (at least one, at least one kept)."""
    if length < 2:
        raise ValueError(f"Span corruption needs at least 2 tokens, got {length}.")
    num_noise = int(np.clip(round(length * noise_density), 1, length - 1))
    num_spans = int(np.clip(round(num_noise / mean_span_length), 1, min(num_noise, length - num_noise)))
    noise = _composition(rng, num_noise, num_spans)
    kept = _composition(rng, length - num_noise, num_spans)
    mask = np.zeros(length, bool)
    position = 0
    for keep, cut in zip(kept, noise):
        position += keep
        mask[position:position + cut] = True
        position += cut
    return mask


def span_corrupt(ids: np.ndarray, mask: np.ndarray, input_length: int,
                 target_length: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), padded int32: the cut spans of `ids` (no EOS) replaced by sentinels
    VOCAB_SIZE + k in the input, and listed after their sentinels in the target."""
    inputs, targets = [], []
    sentinel = tokenizer.VOCAB_SIZE - 1
    for i, token in enumerate(ids):
        starts_span = mask[i] and (i == 0 or not mask[i - 1])
        if starts_span:
            sentinel += 1
            inputs.append(sentinel)
            targets.append(sentinel)
        (targets if mask[i] else inputs).append(int(token))
    inputs.append(tokenizer.EOS_ID)
    targets.append(tokenizer.EOS_ID)
    if len(inputs) > input_length or len(targets) > target_length:
        raise ValueError(f"Corrupted caption needs {len(inputs)} input / {len(targets)} target "
                         f"tokens; lengths are {input_length} / {target_length}.")
    pad = lambda seq, n: np.array(seq + [tokenizer.PAD_ID] * (n - len(seq)), np.int32)
    return pad(inputs, input_length), pad(targets, target_length)


class _CorruptCaption:
    """Caption number `seed` of the training split -> span-corrupted example (picklable)."""

    def __init__(self, seed: int, input_length: int, target_length: int, noise_density: float,
                 mean_span_length: float, num_sentinels: int):
        self.seed, self.input_length, self.target_length = seed, input_length, target_length
        self.noise_density, self.mean_span_length = noise_density, mean_span_length
        self.num_sentinels = num_sentinels

    def __call__(self, position: int, caption_index: int) -> dict:
        caption, _ = tfds_shapes.caption_for_seed(
            tfds_shapes.example_seed("train", int(caption_index)), "train")
        ids = np.array(tokenizer.encode_pieces(caption)[:self.input_length - 1])
        rng = np.random.default_rng([self.seed, int(position)])
        mask = noise_mask(len(ids), rng, self.noise_density, self.mean_span_length)
        if mask.sum() and np.count_nonzero(mask[1:] & ~mask[:-1]) + mask[0] > self.num_sentinels:
            raise ValueError(f"More spans than the {self.num_sentinels} sentinels.")
        inputs, targets = span_corrupt(ids, mask, self.input_length, self.target_length)
        return {"inputs": inputs, "targets": targets,
                "anchor": self._tokens(caption),
                "positive": self._tokens(paraphrase(int(caption_index), caption, rng))}

    def _tokens(self, caption: str) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # over-long captions are cut, as in the image data
            return tokenizer.tokenize(caption, self.input_length)


def paraphrase(caption_index: int, caption: str, rng: np.random.Generator, tries: int = 16) -> str:
    """Another wording of training caption `caption_index` that names the same attributes (the
    caption itself if `tries` draws find none)."""
    spec = shapes.spec_for_seed(tfds_shapes.example_seed("train", caption_index), "train")
    named = set(shapes.parse_caption(caption))
    for _ in range(tries):
        other = shapes.make_caption(spec, rng)
        if other != caption and set(shapes.parse_caption(other)) == named:
            return other
    return caption


def make_text_iterator(*, num_captions: int, batch_size: int, seed: int, input_length: int,
                       target_length: int, noise_density: float = 0.25,
                       mean_span_length: float = 2.0, num_sentinels: int = 8,
                       process_index: int | None = None,
                       process_count: int | None = None) -> grain.DatasetIterator:
    """A checkpointable iterator of span-corrupted caption batches (`inputs` (B, L) and
    `targets` (B, Lt), int32), with the clean captions and paraphrases (`anchor`, `positive`,
    (B, L)), over this process's share of the first `num_captions` captions."""
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    if not 0.0 < noise_density < 1.0 or mean_span_length < 1.0:
        raise ValueError(f"need 0 < noise_density < 1 and mean_span_length >= 1, got "
                         f"{noise_density} and {mean_span_length}.")
    shard = len(range(process_index, num_captions, process_count))
    if not 1 <= batch_size <= shard:
        raise ValueError(f"batch_size must lie in [1, {shard}] (this process's captions), got "
                         f"{batch_size}.")
    captions = grain.MapDataset.range(num_captions)[process_index::process_count]
    examples = captions.shuffle(seed=seed).repeat(None).map_with_index(_CorruptCaption(
        seed, input_length, target_length, noise_density, mean_span_length, num_sentinels))
    dataset = examples.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=2 * batch_size))
    return iter(dataset.batch(batch_size, drop_remainder=True))
