"""The ``torch`` runtime: genfast's decoder with a pre-allocated KV cache, eager PyTorch."""

from __future__ import annotations

import contextlib

import torch

from genfast.errors import ConfigError
from genfast.runtime.convert import to_fast_decoder
from genfast.runtime.decoder import FastDecoder
from genfast.runtime.kv_cache import StaticKVCache


class TorchRuntime:
    """Prefill and decode steps over a FastDecoder; ``max_cache_len`` bounds prompt + output."""

    name = "torch"

    def __init__(self, model: torch.nn.Module, max_cache_len: int | None = None,
                 autocast: torch.dtype | None = None) -> None:
        self.decoder: FastDecoder = to_fast_decoder(model) if not isinstance(model, FastDecoder) else model
        self.device = self.decoder.embed.weight.device
        self.max_cache_len = max_cache_len or self.decoder.shape.max_positions
        self.autocast = autocast
        """Run matmuls in this dtype under torch.autocast (weights and cache stay as they are)."""

    def _precision(self):
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    def _positions(self, start: int, length: int, batch: int) -> torch.Tensor:
        # (batch, length)
        return torch.arange(start, start + length, device=self.device).expand(batch, length)

    def new_cache(self, batch: int, max_len: int | None = None) -> StaticKVCache:
        return self.decoder.new_cache(batch, max_len or self.max_cache_len)

    @torch.inference_mode()
    def prefill(self, input_ids: torch.Tensor, cache: StaticKVCache | None = None) -> tuple[torch.Tensor, StaticKVCache]:
        """Run prompts from position 0 into ``cache`` (empty rows), or into a new cache."""
        batch, length = input_ids.shape
        cache = cache or self.new_cache(batch)
        if length > cache.max_len:
            raise ConfigError(f"Prompt of {length} tokens exceeds the cache of {cache.max_len}.")
        with self._precision():
            logits = self.decoder(input_ids, self._positions(0, length, batch), cache, kv_len=length,
                                  causal_from_zero=True)
        cache.advance(length)
        return logits[:, -1], cache

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor, cache: StaticKVCache) -> tuple[torch.Tensor, StaticKVCache]:
        kv_len = max(cache.lengths) + 1
        if kv_len > cache.max_len:
            raise ConfigError(f"The KV cache is full ({cache.max_len} positions).",
                              "Generate fewer tokens or raise max_cache_len.")
        positions = torch.tensor(cache.lengths, device=self.device)[:, None]
        with self._precision():
            logits = self._decode_forward(tokens[:, None], positions, cache, kv_len)
        cache.advance(1)
        return logits[:, -1], cache

    def _decode_forward(self, tokens: torch.Tensor, positions: torch.Tensor, cache: StaticKVCache,
                        kv_len: int) -> torch.Tensor:
        """The decoder call of one decode step (the compiled runtime replaces only this)."""
        return self.decoder(tokens, positions, cache, kv_len=kv_len)

    @torch.inference_mode()
    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        batch, length = input_ids.shape
        cache = self.decoder.new_cache(batch, length)
        with self._precision():
            return self.decoder(input_ids, self._positions(0, length, batch), cache, kv_len=length,
                                causal_from_zero=True, last_only=False)
