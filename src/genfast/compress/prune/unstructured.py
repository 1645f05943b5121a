"""Unstructured pruning: zero the smallest (or random) weights of every Linear, permanently.

Zeros in a dense matrix are still multiplied: this saves no time with dense kernels (the
profile before and after shows it); it is useful only as a step before sparse kernels or
compression that can exploit zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genfast.compress.api import register
from genfast.errors import ConfigError


@dataclass
class PruneUnstructured:
    amount: float = 0.5
    """Share of each Linear's weights set to zero, in [0, 1)."""
    method: str = "magnitude"
    """``magnitude`` (smallest |w| first) or ``random``."""
    seed: int = 0
    version: int = 1

    def validate(self) -> None:
        if not 0 <= self.amount < 1:
            raise ConfigError(f"Prune amount must be in [0, 1), got {self.amount}.", "e.g. --prune unstructured=0.5")
        if self.method not in ("magnitude", "random"):
            raise ConfigError(f"Unknown pruning method {self.method!r}.", "Use magnitude or random.")


def _targets(model: torch.nn.Module):
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if module is head or not isinstance(weight, torch.nn.Parameter) or weight.dim() != 2:
            continue
        if isinstance(module, torch.nn.Embedding):
            continue
        yield module


@register(PruneUnstructured)
@torch.no_grad()
def prune_unstructured(model: torch.nn.Module, cfg: PruneUnstructured, tokenizer=None) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(cfg.seed)
    for module in _targets(model):  # Linear, and GPT-2's Conv1D
        w = module.weight
        k = int(cfg.amount * w.numel())
        if k == 0:
            continue
        score = w.abs() if cfg.method == "magnitude" else torch.rand(w.shape, generator=gen).to(w.device)
        threshold = score.flatten().kthvalue(k).values
        w.masked_fill_(score <= threshold, 0.0)
    return model


def sparsity(model: torch.nn.Module) -> float:
    """Share of zero weights over the pruned targets."""
    zeros = total = 0
    for module in _targets(model):
        zeros += int((module.weight == 0).sum())
        total += module.weight.numel()
    return zeros / total if total else 0.0
