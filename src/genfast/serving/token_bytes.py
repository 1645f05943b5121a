"""The bytes each token stands for, where a tokenizer works on bytes (byte-level BPE).

With such a table a request's text is the UTF-8 decoding of its tokens' bytes, which an
incremental decoder does one token at a time without calling the tokenizer; it also gives the
real bytes of a token that is only part of a character (OpenAI's logprob ``bytes``).
"""

from __future__ import annotations

import functools
import random
import re
from typing import Any


@functools.lru_cache(maxsize=1)
def _byte_level_alphabet() -> dict[str, int]:
    """Byte-level BPE's printable stand-in for each byte (GPT-2's scheme), inverted: char -> byte."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars = list(printable)
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + len(chars) - 188)
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def token_bytes(tokenizer: Any, token_id: int) -> bytes:
    """The UTF-8 bytes a token stands for, also when they are only part of a character."""
    piece = tokenizer.convert_ids_to_tokens(token_id)
    if isinstance(piece, str):
        if match := _BYTE_FALLBACK.fullmatch(piece):  # SentencePiece's byte fallback
            return bytes([int(match.group(1), 16)])
        alphabet = _byte_level_alphabet()
        if piece and all(ch in alphabet for ch in piece):
            return bytes(alphabet[ch] for ch in piece)
    return tokenizer.decode([token_id]).encode("utf-8")


@functools.lru_cache(maxsize=8)
def byte_table(tokenizer: Any) -> tuple[bytes, ...] | None:
    """Each token's bytes (b"" for special tokens, which decoding skips), or None unless decoding
    any sequence is exactly the UTF-8 decoding of its tokens' bytes (checked on random sequences)."""
    if not hasattr(tokenizer, "convert_ids_to_tokens"):
        return None
    special = set(getattr(tokenizer, "all_special_ids", ()))
    alphabet = _byte_level_alphabet()
    table = []
    for token_id, piece in enumerate(tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))):
        if token_id in special:
            table.append(b"")
        elif isinstance(piece, str) and piece and all(ch in alphabet for ch in piece):
            table.append(bytes(alphabet[ch] for ch in piece))
        else:
            return None  # not a byte-level vocabulary
    rng = random.Random(0)
    for _ in range(8):
        ids = [rng.randrange(len(table)) for _ in range(64)]
        expected = tokenizer.decode(ids, skip_special_tokens=True)
        if b"".join(table[i] for i in ids).decode("utf-8", "replace") != expected:
            return None
    return tuple(table)
