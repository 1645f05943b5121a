"""Process and accelerator memory, and model size."""

from __future__ import annotations

import resource
import sys

import psutil
import torch


def peak_rss_bytes() -> int:
    """Peak resident set size of this process since it started."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def current_rss_bytes() -> int:
    return psutil.Process().memory_info().rss


def cuda_peak_bytes(device: torch.device) -> int | None:
    """Peak CUDA memory allocated by torch on ``device`` since the last reset, or None off-GPU."""
    if device.type != "cuda":
        return None
    return int(torch.cuda.max_memory_allocated(device))


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of all parameters and buffers, counting each shared tensor once (tied embeddings)."""
    seen: set[int] = set()
    total = 0
    for t in list(model.parameters()) + list(model.buffers()):
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()
    return total


def weight_bytes_read_per_step(model: torch.nn.Module) -> int:
    """Bytes of weights one decode step reads.

    Every matrix is read once per step, except an input embedding table that is not tied
    to the output head: a step reads only one row of it per token.
    """
    total = weight_bytes(model)
    embed = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if embed is not None and (head is None or head.weight.data_ptr() != embed.weight.data_ptr()):
        total -= embed.weight.numel() * embed.weight.element_size()
    return total
