"""Anything that yields logits for token ids, seen as a Runtime."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from genfast.errors import ConfigError
from genfast.models.handle import ModelHandle
from genfast.runtime.base import Runtime


class LogitsFnRuntime:
    """A Runtime over a bare ``ids (batch, seq) -> logits (batch, seq, vocab)`` function.

    There is no KV cache: the "cache" is the ids so far and every step recomputes them,
    which is slow but lets any engine that returns logits be verified.
    """

    name = "logits-fn"

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], device: str | torch.device = "cpu") -> None:
        self.fn = fn
        self.device = torch.device(device)

    @torch.inference_mode()
    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.fn(input_ids)

    def prefill(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, Any]:
        return self.logits(input_ids)[:, -1, :], input_ids

    def decode(self, tokens: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        ids = torch.cat([cache, tokens[:, None]], dim=1)
        return self.logits(ids)[:, -1, :], ids


def as_runtime(obj: Any) -> Runtime:
    """Accept a Runtime, a ModelHandle, a transformers model, or a logits function."""
    from genfast.runtime.hf import HFRuntime

    if all(hasattr(obj, name) for name in ("prefill", "decode", "logits")):
        return obj
    if isinstance(obj, ModelHandle):
        return HFRuntime(obj.model)
    if isinstance(obj, torch.nn.Module) and hasattr(obj, "config"):
        return HFRuntime(obj)
    if callable(obj):
        return LogitsFnRuntime(obj)
    raise ConfigError(f"Cannot compare a {type(obj).__name__}.",
                      "Pass a genfast runtime, a ModelHandle, a transformers model, or a function ids -> logits.")
