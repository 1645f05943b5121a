"""The step interface every runtime implements, whatever engine runs it."""

from __future__ import annotations

from typing import Any, Protocol

import torch


class Runtime(Protocol):
    """Two batched steps; the decode loop, profiler and quality checks use only these."""

    device: torch.device

    def prefill(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Run the prompt (batch, seq); return last-position logits (batch, vocab) and the cache."""
        ...

    def decode(self, tokens: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        """Run one new token per sequence (batch,); return logits (batch, vocab) and the cache."""
        ...

    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Full-sequence logits (batch, seq, vocab), no cache: for perplexity and KL."""
        ...
