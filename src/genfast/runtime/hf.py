"""The eager PyTorch runtime over a transformers causal LM, with transformers' dynamic KV cache."""

from __future__ import annotations

import inspect
from typing import Any

import torch


class HFRuntime:
    """Prefill and decode steps that call the model's forward directly (not ``generate()``)."""

    name = "hf"

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device
        # transformers 5.x renames the cache argument `past_key_values` -> `cache` (the old name goes in 5.40)
        self._cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    @staticmethod
    def _cache_of(out) -> Any:
        return out["cache"] if "cache" in out else out["past_key_values"]

    @torch.inference_mode()
    def prefill(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, Any]:
        out = self.model(input_ids=input_ids, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1, :], self._cache_of(out)

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        # (batch,) -> (batch, 1)
        out = self.model(input_ids=tokens[:, None], use_cache=True, **{self._cache_arg: cache})
        return out.logits[:, -1, :], self._cache_of(out)

    @torch.inference_mode()
    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, use_cache=False).logits
