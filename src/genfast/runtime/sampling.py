"""Turning logits into the next token."""

from __future__ import annotations

import torch


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """The most likely token per row: (batch, vocab) -> (batch,)."""
    return logits.argmax(dim=-1)
