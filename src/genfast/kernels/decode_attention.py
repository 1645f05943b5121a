"""Decode attention (one new query per row) over the static KV cache, genfast's own kernel
(``decode_attention.c``).

Each row reads only its own filled slots, with no mask: SDPA's CPU flash kernel reads the
keys and values at about 8 GB/s at this shape (measured inside the GPT-2-small decode step),
and the compiled step hands it the whole (masked) cache.
"""

from __future__ import annotations

import torch

from genfast.kernels.ops import available


def supports(q: torch.Tensor, cache_k: torch.Tensor, cache_v: torch.Tensor) -> bool:
    """Whether the kernel can run: fp32 on CPU, one query per row, K and V laid out alike."""
    return (q.device.type == "cpu" and q.dtype == cache_k.dtype == cache_v.dtype == torch.float32
            and q.shape[2] == 1 and cache_k.stride() == cache_v.stride() and cache_k.stride(-1) == 1
            and available())


def decode_attention(q: torch.Tensor, cache_k: torch.Tensor, cache_v: torch.Tensor,
                     lengths: torch.Tensor) -> torch.Tensor:
    """``q`` (batch, heads, 1, head_dim) attending to the first ``lengths[b]`` slots of row b of
    ``cache_k`` / ``cache_v`` (batch, kv_heads, max_len, head_dim) -> (batch, heads, 1, head_dim).
    Call :func:`supports` first."""
    return torch.ops.genfast.decode_attention(q, cache_k, cache_v, lengths)
