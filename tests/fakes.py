"""A fake runtime and tokenizer: deterministic, instant, and able to fail on purpose."""

from __future__ import annotations

import torch

from genfast.runtime.kv_cache import StaticKVCache

VOCAB = 50
POISON = 13  # a prompt containing this token makes prefill raise


class FakeTokenizer:
    eos_token_id = 0

    def __len__(self) -> int:
        return VOCAB

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(ord("a") + (i % 26)) for i in ids if not (skip_special_tokens and i == 0))

    def __call__(self, text):
        return {"input_ids": [1 + (ord(c) - ord("a")) % 26 for c in text]}


class FakeRuntime:
    """Next token is always previous token + 1 (mod VOCAB)."""

    def __init__(self, max_len: int = 128) -> None:
        self.device = torch.device("cpu")
        self.max_len = max_len
        self.decode_batches: list[int] = []

    def new_cache(self, batch: int, max_len: int | None = None) -> StaticKVCache:
        return StaticKVCache.allocate(1, batch, 1, max_len or self.max_len, 1, torch.float32, self.device)

    @staticmethod
    def _logits(last: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot((last + 1) % VOCAB, VOCAB).float()

    def prefill(self, ids: torch.Tensor, cache: StaticKVCache):
        if (ids == POISON).any():
            raise RuntimeError("poisoned prompt")
        cache.advance(ids.shape[1])
        return self._logits(ids[:, -1]), cache

    def decode(self, tokens: torch.Tensor, cache: StaticKVCache):
        self.decode_batches.append(len(tokens))
        cache.advance(1)
        return self._logits(tokens), cache

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        return self._logits(ids)  # (batch, seq, vocab)
