"""Decode attention (one new query per row) over the static KV cache, genfast's own C kernel.

Each row reads only its own filled slots, with no mask: SDPA's CPU flash kernel reads the
keys and values at about 8 GB/s at this shape (measured inside the GPT-2-small decode step),
and the compiled step hands it the whole (masked) cache.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from pathlib import Path

import torch

from genfast.kernels import via_dispatcher
from genfast.kernels.build import native_function

_P, _LONG = ctypes.c_void_p, ctypes.c_long


@functools.cache
def _kernel() -> Callable[..., None] | None:
    return native_function(Path(__file__).with_suffix(".c"), "genfast_decode_attention",
                           (_P, _P, _P, _LONG, _LONG, _LONG, _P, _P, _P, _LONG, _LONG, _LONG, _LONG, _LONG,
                            ctypes.c_float, ctypes.c_int))


@torch.compiler.assume_constant_result
def available() -> bool:
    """Whether the kernel is built (or can be) on this machine."""
    return _kernel() is not None


def supports(q: torch.Tensor, cache_k: torch.Tensor, cache_v: torch.Tensor) -> bool:
    """Whether the kernel can run: fp32 on CPU, one query per row, K and V laid out alike."""
    return (q.device.type == "cpu" and q.dtype == cache_k.dtype == cache_v.dtype == torch.float32
            and q.shape[2] == 1 and cache_k.stride() == cache_v.stride() and cache_k.stride(-1) == 1
            and available())


def _run(q: torch.Tensor, cache_k: torch.Tensor, cache_v: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    b, heads, _, dim = q.shape
    q = q.contiguous()
    lengths = lengths.to(torch.int64).contiguous()
    out = torch.empty_like(q)
    max_len = cache_k.shape[2]
    scores = torch.empty(b * heads * max_len, dtype=torch.float32)
    _kernel()(q.data_ptr(), cache_k.data_ptr(), cache_v.data_ptr(), cache_k.stride(0), cache_k.stride(1),
              cache_k.stride(2), lengths.data_ptr(), out.data_ptr(), scores.data_ptr(), b, heads, cache_k.shape[1],
              dim, max_len, dim ** -0.5, torch.get_num_threads())
    return out


@torch.library.custom_op("genfast::decode_attention", mutates_args=())
def _decode_attention_op(q: torch.Tensor, cache_k: torch.Tensor, cache_v: torch.Tensor,
                         lengths: torch.Tensor) -> torch.Tensor:
    return _run(q, cache_k, cache_v, lengths)


@_decode_attention_op.register_fake
def _(q: torch.Tensor, cache_k: torch.Tensor, cache_v: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(q, memory_format=torch.contiguous_format)


def decode_attention(q: torch.Tensor, cache_k: torch.Tensor, cache_v: torch.Tensor,
                     lengths: torch.Tensor) -> torch.Tensor:
    """``q`` (batch, heads, 1, head_dim) attending to the first ``lengths[b]`` slots of row b of
    ``cache_k`` / ``cache_v`` (batch, kv_heads, max_len, head_dim) -> (batch, heads, 1, head_dim).
    Call :func:`supports` first."""
    run = _decode_attention_op if via_dispatcher() else _run
    return run(q, cache_k, cache_v, lengths)
