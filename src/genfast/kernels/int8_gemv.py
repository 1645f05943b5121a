"""Int8 weight-only matmul for a few activation rows (decode), genfast's own kernel (``int8_gemv.c``).

At one token PyTorch's ``_weight_int8pack_mm`` reads int8 weights at about 12 GB/s here, under
half the machine's read bandwidth; this kernel streams a prepacked copy at about 25 GB/s
(``benchmarks/cpu_int_kernels.py``). It converts each weight once for up to four activation rows
and measures level with or ahead of PyTorch's kernel up to 256 rows here; longer prefills keep
PyTorch's (a GEMM, where compute rather than bandwidth decides).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genfast.kernels.ops import available  # noqa: F401 - callers ask the kernel's module

ROWS, CHUNK = 4, 64  # the packed layout (int8_gemv.c)
MAX_ROWS = 128
"""Activation rows up to which the kernel is used (more: PyTorch's kernel)."""


def _padded(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def pack(qweight: torch.Tensor) -> torch.Tensor:
    """(out, in) int8 -> the kernel's layout, zero-padded to whole 4-row x 64-column blocks."""
    n, k = qweight.shape
    q = F.pad(qweight, (0, _padded(k, CHUNK) - k, 0, _padded(n, ROWS) - n))
    return q.view(q.shape[0] // ROWS, ROWS, q.shape[1] // CHUNK, CHUNK).transpose(1, 2).contiguous()


def unpack(packed: torch.Tensor, out_features: int, in_features: int) -> torch.Tensor:
    """The kernel's layout -> the (out, in) int8 matrix :func:`pack` was given."""
    blocks, chunks = packed.shape[:2]
    q = packed.transpose(1, 2).reshape(blocks * ROWS, chunks * CHUNK)
    return q[:out_features, :in_features].contiguous()


def pad_rows(vector: torch.Tensor | None, packed: torch.Tensor) -> torch.Tensor | None:
    """A per-output-channel fp32 vector (scale, bias) zero-padded to the packed row count."""
    if vector is None:
        return None
    return F.pad(vector.float(), (0, packed.shape[0] * ROWS - vector.shape[0])).contiguous()


def int8_gemv(x: torch.Tensor, packed: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None,
              out_features: int) -> torch.Tensor:
    """``x`` (rows, in) fp32 on CPU times the packed weights -> (rows, out_features) fp32.

    ``scale`` and ``bias`` are padded with :func:`pad_rows`. Call :func:`available` first.
    """
    y = torch.ops.genfast.int8_gemv(x, packed, scale, bias)
    return y if y.shape[1] == out_features else y[:, :out_features]
