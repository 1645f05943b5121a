"""Int8 weight-only matmul for a few activation rows (decode), genfast's own C kernel.

At one token PyTorch's ``_weight_int8pack_mm`` reads int8 weights at about 12 GB/s here, under
half the machine's read bandwidth; this kernel streams a prepacked copy at about 25 GB/s
(``benchmarks/cpu_int_kernels.py``). It converts each weight once for up to four activation rows
and measures level with or ahead of PyTorch's kernel up to 256 rows here; longer prefills keep
PyTorch's (a GEMM, where compute rather than bandwidth decides).
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from genfast.kernels import via_dispatcher
from genfast.kernels.build import native_function

ROWS, CHUNK = 4, 64  # the packed layout (int8_gemv.c)
MAX_ROWS = 128
"""Activation rows up to which the kernel is used (more: PyTorch's kernel)."""


_P, _LONG = ctypes.c_void_p, ctypes.c_long


@functools.cache
def _kernel() -> Callable[..., None] | None:
    return native_function(Path(__file__).with_suffix(".c"), "genfast_int8_gemv",
                           (_P, _LONG, _P, _P, _P, _P, _LONG, _LONG, ctypes.c_int))


def available() -> bool:
    """Whether the kernel is built (or can be) on this machine."""
    return _kernel() is not None


def _padded(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def pack(qweight: torch.Tensor) -> torch.Tensor:
    """(out, in) int8 -> the kernel's layout, zero-padded to whole 4-row x 64-column blocks."""
    n, k = qweight.shape
    q = F.pad(qweight, (0, _padded(k, CHUNK) - k, 0, _padded(n, ROWS) - n))
    return q.view(q.shape[0] // ROWS, ROWS, q.shape[1] // CHUNK, CHUNK).transpose(1, 2).contiguous()


def pad_rows(vector: torch.Tensor | None, packed: torch.Tensor) -> torch.Tensor | None:
    """A per-output-channel fp32 vector (scale, bias) zero-padded to the packed row count."""
    if vector is None:
        return None
    return F.pad(vector.float(), (0, packed.shape[0] * ROWS - vector.shape[0])).contiguous()


def _run(x: torch.Tensor, packed: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    k_padded = packed.shape[1] * CHUNK
    x = F.pad(x, (0, k_padded - x.shape[1])) if x.shape[1] != k_padded else x
    x = x.contiguous()
    y = torch.empty(x.shape[0], scale.shape[0], dtype=torch.float32)
    _kernel()(x.data_ptr(), x.shape[0], packed.data_ptr(), scale.data_ptr(),
              None if bias is None else bias.data_ptr(), y.data_ptr(), scale.shape[0], k_padded,
              torch.get_num_threads())
    return y


@torch.library.custom_op("genfast::int8_gemv", mutates_args=())
def _int8_gemv_op(x: torch.Tensor, packed: torch.Tensor, scale: torch.Tensor,
                  bias: torch.Tensor | None) -> torch.Tensor:
    return _run(x, packed, scale, bias)


@_int8_gemv_op.register_fake
def _(x: torch.Tensor, packed: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return x.new_empty(x.shape[0], scale.shape[0])


def int8_gemv(x: torch.Tensor, packed: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None,
              out_features: int) -> torch.Tensor:
    """``x`` (rows, in) fp32 on CPU times the packed weights -> (rows, out_features) fp32.

    ``scale`` and ``bias`` are padded with :func:`pad_rows`; see :func:`via_dispatcher` for how it is called.
    """
    run = _int8_gemv_op if via_dispatcher() else _run
    y = run(x, packed, scale, bias)
    return y if y.shape[1] == out_features else y[:, :out_features]
