"""Int8 weight-only matmul on CPU, genfast's own kernel (``int8_gemv.c``) over one prepacked copy.

Few rows (decode): at one token PyTorch's ``_weight_int8pack_mm`` read int8 weights at 31.9 GB/s
here (bf16 activations), this kernel a prepacked copy at 49.3 GB/s (64 chained 1024 x 1024
matrices, ``benchmarks/cpu_int_kernels.py``). It rounds each activation row to int16 and sums
exact integer products (VNNI where present), widening each weight once for up to four rows.

Many rows (prompts, from ``GEMM_MIN_ROWS``): the product is compute-bound, so the activations are
rounded to 8 bits per row and multiplied as int8 x int8 (``int8_gemm``): 0.58x the int16 product's
time and 0.27x PyTorch's bf16-activation kernel's at 128 rows of GPT-2's 2304 x 768 projection
(``benchmarks/int8_prefill.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genfast.kernels.ops import available  # noqa: F401 - callers ask the kernel's module

ROWS, CHUNK = 4, 64  # the packed layout (int8_gemv.c)
TILE_MAX_K, TILE_K = 2048, 1024  # column tiles (int8_gemv.c)
GEMM_MIN_ROWS = 32
"""Activation rows from which the 8-bit activation product runs. Below, int16 activations: decode
batches keep the exact-integer product (and so the same numbers alone or batched up to here)."""


def _padded(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _tiles(k_padded: int) -> list[tuple[int, int]]:
    """(first column, width) of each column tile, as int8_gemv.c walks them."""
    width = k_padded if k_padded <= TILE_MAX_K else TILE_K
    return [(k0, min(width, k_padded - k0)) for k0 in range(0, k_padded, width)]


def pack(qweight: torch.Tensor) -> torch.Tensor:
    """(out, in) int8 -> the kernel's layout: (out, in) zero-padded to whole 4-row x 64-column
    blocks, its bytes in the kernel's order (column tiles, each [N/4][W/64][4][64]), not row-major."""
    n, k = qweight.shape
    q = F.pad(qweight, (0, _padded(k, CHUNK) - k, 0, _padded(n, ROWS) - n))
    rows, cols = q.shape
    tiles = [q[:, k0:k0 + w].reshape(rows // ROWS, ROWS, w // CHUNK, CHUNK).transpose(1, 2).reshape(-1)
             for k0, w in _tiles(cols)]
    return torch.cat(tiles).view(rows, cols)


def unpack(packed: torch.Tensor, out_features: int, in_features: int) -> torch.Tensor:
    """The kernel's layout -> the (out, in) int8 matrix :func:`pack` was given."""
    rows, cols = packed.shape
    flat = packed.reshape(-1)
    tiles = [flat[k0 * rows:(k0 + w) * rows].view(rows // ROWS, w // CHUNK, ROWS, CHUNK).transpose(1, 2)
             .reshape(rows, w) for k0, w in _tiles(cols)]
    # a fresh tensor even where the slice is already contiguous (rows cut off a padded matrix):
    # safetensors refuses to save a view that does not cover its storage
    return torch.cat(tiles, dim=1)[:out_features, :in_features].clone()


def pad_rows(vector: torch.Tensor | None, packed: torch.Tensor) -> torch.Tensor | None:
    """A per-output-channel fp32 vector (scale, bias) zero-padded to the packed row count."""
    if vector is None:
        return None
    return F.pad(vector.float(), (0, packed.shape[0] - vector.shape[0])).contiguous()


def row_sums(qweight: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
    """Each output channel's sum of int8 weights (int32), zero-padded to the packed row count:
    :func:`int8_gemm` takes its activations' zero point back out with it."""
    # a few rows at a time: summing in int32 widens its input, four times the matrix at once otherwise
    sums = torch.cat([rows.sum(dim=1, dtype=torch.int32) for rows in qweight.split(1024)])
    return F.pad(sums, (0, packed.shape[0] - sums.shape[0])).contiguous()


def int8_gemm(x: torch.Tensor, packed: torch.Tensor, scale: torch.Tensor, wsum: torch.Tensor,
              bias: torch.Tensor | None, out_features: int) -> torch.Tensor:
    """As :func:`int8_gemv`, the activations rounded to 8 bits per row (int8 x int8 products, VNNI):
    for prompts, where the product is compute-bound. ``wsum`` from :func:`row_sums`."""
    y = torch.ops.genfast.int8_gemm(x, packed, scale, wsum, bias)
    return y if y.shape[1] == out_features else y[:, :out_features]


def int8_gemv(x: torch.Tensor, packed: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None,
              out_features: int) -> torch.Tensor:
    """``x`` (rows, in) fp32 on CPU times the packed weights -> (rows, out_features) fp32.

    ``scale`` and ``bias`` are padded with :func:`pad_rows`. Call :func:`available` first.
    """
    y = torch.ops.genfast.int8_gemv(x, packed, scale, bias)
    return y if y.shape[1] == out_features else y[:, :out_features]
