"""Word-piece tokenizer with a byte fallback: needs no vocabulary file and no download.

Prompts are lower-cased and split into pieces: a word (with its leading space, if any), a
number, or one other character. A piece in the built-in vocabulary (the shapes world's words
and common extras) is one token; any other piece is spelled out as UTF-8 bytes, so every
lower-case text round-trips exactly. Ids: 0 = padding, 1 = end of text, 2..257 = bytes,
258.. = vocabulary pieces.
"""
from __future__ import annotations

import re
import warnings

import numpy as np

PAD_ID = 0
EOS_ID = 1
BYTE_OFFSET = 2

WORDS = (
    "a against an and around at away backdrop background ball big bigger black block blue "
    "bouncing bounces box centre center circle circles circling clockwise contracting cyan dark "
    "disc dot down downwards drifting expanding falling fast floating from gently getting going "
    "green growing grows heading high hopping huge in is it jumping large larger left leisurely "
    "little loop magenta middle motionless moving not of on one orange orbiting pace place "
    "purple quick quickly rapidly red right rising rotating round shape shrinking shrinks "
    "sinking sitting sliding slow slowly small smaller speed spinning square squares standing "
    "star stars staying still swiftly that the tiny to towards travelling triangle triangles "
    "turning up upward upwards very white with yellow"
).split()
PIECES = tuple(WORDS) + tuple(" " + w for w in WORDS) + (",", ".", " ,", " .")
PIECE_OFFSET = BYTE_OFFSET + 256
VOCAB_SIZE = PIECE_OFFSET + len(PIECES)
_PIECE_IDS = {piece: PIECE_OFFSET + i for i, piece in enumerate(PIECES)}
_SPLIT = re.compile(r" ?[a-z]+| ?[0-9]+| ?[^\sa-z0-9]|\s")


class PromptError(ValueError):
    """A prompt that cannot be encoded (empty, or not text)."""


def encode_pieces(text: str) -> list[int]:
    """Token ids of a text, without end-of-text or padding."""
    ids = []
    for piece in _SPLIT.findall(text.lower()):
        if piece in _PIECE_IDS:
            ids.append(_PIECE_IDS[piece])
        else:
            ids.extend(BYTE_OFFSET + b for b in piece.encode("utf-8"))
    return ids


def check_prompt(text, allow_empty: bool = False) -> str:
    """A prompt as given, refused unless it is a string (non-blank unless `allow_empty`)."""
    if not isinstance(text, str):
        raise PromptError(f"A prompt must be a string, got {type(text).__name__} {text!r}.")
    if not text.strip() and not allow_empty:
        raise PromptError("The prompt is empty: give a description such as 'a red circle moving left'.")
    return text


def check_prompts(texts, allow_empty: bool = False) -> list[str]:
    """A prompt or a non-empty list of prompts, each checked by `check_prompt`."""
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, (list, tuple)) or not texts:
        raise PromptError(f"Give a prompt or a non-empty list of prompts; got {texts!r}.")
    return [check_prompt(text, allow_empty) for text in texts]


def tokenize(text: str, max_length: int, *, allow_empty: bool = False) -> np.ndarray:
    """Encodes one prompt into `max_length` int32 ids (pieces, then EOS, then padding).

    Over-long prompts are truncated (with a warning) so that EOS always fits.
    The empty string is refused unless `allow_empty` (used for the null condition).
    """
    check_prompt(text, allow_empty)
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2, got {max_length}.")
    pieces = encode_pieces(text)
    limit = max_length - 1
    if len(pieces) > limit:
        kept = detokenize(pieces[:limit] + [EOS_ID])
        warnings.warn(f"Prompt of {len(pieces)} tokens is longer than the text encoder's {limit}; "
                      f"truncated to {kept!r}.", stacklevel=2)
        pieces = pieces[:limit]
    ids = np.full((max_length,), PAD_ID, dtype=np.int32)
    ids[: len(pieces)] = pieces
    ids[len(pieces)] = EOS_ID
    return ids


def tokenize_batch(texts, max_length: int, *, allow_empty: bool = False) -> np.ndarray:
    """Encodes a list of prompts into an int32 array of shape (len(texts), max_length)."""
    texts = check_prompts(texts, allow_empty)
    return np.stack([tokenize(t, max_length, allow_empty=allow_empty) for t in texts])


def detokenize(ids) -> str:
    """Inverse of `tokenize` for lower-case text (stops at EOS, ignores padding)."""
    out = bytearray()
    for i in np.asarray(ids).tolist():
        if i == EOS_ID:
            break
        if i >= PIECE_OFFSET:
            out.extend(PIECES[i - PIECE_OFFSET].encode("utf-8"))
        elif i >= BYTE_OFFSET:
            out.append(i - BYTE_OFFSET)
    return out.decode("utf-8", errors="replace")


def padding_mask(ids) -> np.ndarray:
    """True where a token is real (pieces and EOS), False on padding."""
    return np.asarray(ids) != PAD_ID
