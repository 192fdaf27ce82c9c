"""Byte-level tokenizer: needs no vocabulary file and no download.

Token ids: 0 = padding, 1 = end of text, 2 + b for each UTF-8 byte b.
"""
from __future__ import annotations

import warnings

import numpy as np

PAD_ID = 0
EOS_ID = 1
BYTE_OFFSET = 2
VOCAB_SIZE = 256 + BYTE_OFFSET


class PromptError(ValueError):
    """A prompt that cannot be encoded (empty, or not text)."""


def tokenize(text: str, max_length: int, *, allow_empty: bool = False) -> np.ndarray:
    """Encodes one prompt into `max_length` int32 ids (bytes, then EOS, then padding).

    Over-long prompts are truncated (with a warning) so that EOS always fits.
    The empty string is refused unless `allow_empty` (used for the null condition).
    """
    if not isinstance(text, str):
        raise PromptError(f"A prompt must be a string, got {type(text).__name__}.")
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2, got {max_length}.")
    if not text.strip() and not allow_empty:
        raise PromptError("The prompt is empty: give a description such as 'a red circle moving left'.")
    data = text.encode("utf-8")
    limit = max_length - 1
    if len(data) > limit:
        warnings.warn(
                f"Prompt of {len(data)} bytes is longer than the text encoder's {limit}; truncated to "
                f"{data[:limit].decode('utf-8', errors='ignore')!r}.",
                stacklevel=2,
        )
        data = data[:limit]
    ids = np.full((max_length,), PAD_ID, dtype=np.int32)
    ids[: len(data)] = np.frombuffer(data, dtype=np.uint8).astype(np.int32) + BYTE_OFFSET
    ids[len(data)] = EOS_ID
    return ids


def tokenize_batch(texts, max_length: int, *, allow_empty: bool = False) -> np.ndarray:
    """Encodes a list of prompts into an int32 array of shape (len(texts), max_length)."""
    if isinstance(texts, str):
        texts = [texts]
    return np.stack([tokenize(t, max_length, allow_empty=allow_empty) for t in texts])


def detokenize(ids) -> str:
    """Inverse of `tokenize` (stops at EOS, ignores padding)."""
    ids = np.asarray(ids)
    out = bytearray()
    for i in ids.tolist():
        if i == EOS_ID:
            break
        if i >= BYTE_OFFSET:
            out.append(i - BYTE_OFFSET)
    return out.decode("utf-8", errors="replace")


def padding_mask(ids) -> np.ndarray:
    """True where a token is real (bytes and EOS), False on padding."""
    return np.asarray(ids) != PAD_ID
