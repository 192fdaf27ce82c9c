"""Grain input pipelines over the shapes TFDS dataset: shuffled, repeated, sharded, checkpointable.

Batches are dicts of numpy arrays: `frames` uint8 ((B, H, W, 3) single frames for text-to-image
training, or (B, T, H, W, 3) whole clips), `tokens` int32 (B, L) caption ids and `index` int64
(B,) record indices. Frames stay uint8; the trainer scales them.
"""
from __future__ import annotations

import warnings

import grain
import jax
import numpy as np
from absl import flags

from lumiere_jax.text import tokenizer

MODES = ("frames", "clips")


def make_data_source(builder, split: str):
    """The random-access (grain-compatible) source of one split of a prepared TFDS builder."""
    splits = tuple(builder.info.splits.keys())
    if split not in splits:
        raise ValueError(f"Unknown split {split!r} of {builder.info.full_name}; "
                         f"allowed: {', '.join(splits)}.")
    return builder.as_data_source(split)


class RecordSubset:
    """The records of a random-access `source` at `indices`, itself a random-access source."""

    def __init__(self, source, indices):
        self.source, self.indices = source, np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        return self.source[int(self.indices[index])]


def keep_records(source, feature: str, values) -> RecordSubset:
    """The records of `source` whose text feature `feature` is one of `values` (e.g. the clips
    of some motions). Refuses a value that no record has, naming those present."""
    present, wanted = [_text(source[i][feature]) for i in range(len(source))], set(values)
    missing = sorted(wanted - set(present))
    if missing:
        raise ValueError(f"No record has {feature} {missing}; the records have: "
                         f"{sorted(set(present))}.")
    return RecordSubset(source, [i for i, value in enumerate(present) if value in wanted])


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class _LoadExample:
    """Reads record `record_index` at stream position `position` into an example (picklable)."""

    def __init__(self, source, mode: str, seed: int, shard_size: int, text_length: int):
        self.source, self.mode, self.seed = source, mode, seed
        self.shard_size, self.text_length = shard_size, text_length
        self._warned_truncation = False

    def __call__(self, position: int, record_index: int) -> dict:
        record = self.source[int(record_index)]
        frames = np.asarray(record["frames"], dtype=np.uint8)
        if self.mode == "frames":
            epoch = position // self.shard_size
            frames = frames[pick_frame(self.seed, int(record_index), epoch, frames.shape[0])]
        return {
                "frames": frames,
                "tokens": self._tokens(_text(record["caption"])),
                "index": np.int64(record_index),
        }

    def _tokens(self, caption: str) -> np.ndarray:
        """Tokenizes, truncating over-long captions with one warning per pipeline (not per record)."""
        length = len(tokenizer.encode_pieces(caption))
        if length >= self.text_length and not self._warned_truncation:
            self._warned_truncation = True
            warnings.warn(f"Captions longer than text_length - 1 = {self.text_length - 1} tokens are "
                          f"truncated (first: {length} tokens); raise text_length to keep them whole.",
                          stacklevel=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tokenizer.tokenize(caption, self.text_length)


def pick_frame(seed: int, record_index: int, epoch: int, num_frames: int) -> int:
    """The frame that frames mode takes from a record in an epoch (deterministic)."""
    return int(np.random.default_rng([seed, record_index, epoch]).integers(num_frames))


def _check_arguments(source, mode, batch_size, seed, process_index, process_count, text_length, worker_count):
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}; allowed: {', '.join(MODES)}.")
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index must lie in [0, process_count={process_count}), "
                         f"got {process_index}.")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    if text_length < 2:
        raise ValueError(f"text_length must be at least 2 (bytes plus end of text), got {text_length}.")
    if worker_count < 0:
        raise ValueError(f"worker_count must be >= 0 (0 reads in this process), got {worker_count}.")
    shard_size = len(range(process_index, len(source), process_count))
    if not 1 <= batch_size <= shard_size:
        raise ValueError(f"batch_size (per process) must lie in [1, {shard_size}], the records of this "
                         f"process's shard ({len(source)} records over {process_count} processes); "
                         f"got {batch_size}.")
    return shard_size


def make_iterator(source, *, mode: str, batch_size: int, seed: int, shuffle: bool = True, repeat: bool = True,
                  process_index: int | None = None, process_count: int | None = None, text_length: int,
                  worker_count: int = 0, drop_remainder: bool = True,
                  read_threads: int = 4) -> grain.DatasetIterator:
    """A checkpointable iterator of batches (see module doc) over this process's shard of `source`.

    mode "frames" gives one frame per clip, chosen from (seed, record index, epoch); "clips" whole
    clips. `batch_size` is per process; processes default to JAX's, and each reads every
    process_count-th record. Shuffling is reseeded every epoch; `repeat=False` stops after one.
    Batches do not depend on `worker_count` (reader processes; 0 reads in this one).
    `it.get_state()` / `it.set_state(state)` resume exactly; `iterator_save_args` /
    `iterator_restore_args` do it through Orbax.
    """
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    shard_size = _check_arguments(source, mode, batch_size, seed, process_index, process_count, text_length,
                                  worker_count)
    # Elements are record indices until the load: shard, shuffle, repeat.
    records = grain.MapDataset.range(len(source))[process_index::process_count]
    if shuffle:
        records = records.shuffle(seed=seed)
    records = records.repeat(None if repeat else 1)
    examples = records.map_with_index(_LoadExample(source, mode, seed, shard_size, text_length))
    read_options = grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=2 * batch_size)
    dataset = examples.to_iter_dataset(read_options)
    if worker_count > 0:
        if not flags.FLAGS.is_parsed():  # grain's worker processes read absl flags
            flags.FLAGS.mark_as_parsed()
        # Workers take turns element by element, so batching after them keeps batches the same.
        dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
    return iter(dataset.batch(batch_size, drop_remainder=drop_remainder))


def iterator_save_args(iterator: grain.DatasetIterator):
    """Orbax save args for the iterator, for `ocp.args.Composite(data=...)`."""
    return grain.checkpoint.CheckpointSave(iterator)


def iterator_restore_args(iterator: grain.DatasetIterator):
    """Orbax restore args that set `iterator`'s position in place, for `ocp.args.Composite(data=...)`."""
    return grain.checkpoint.CheckpointRestore(iterator)
