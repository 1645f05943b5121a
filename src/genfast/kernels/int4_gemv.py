"""Int4 weight-only matmul on CPU, genfast's own kernel (``int4_gemv.c``).

Asymmetric groups (``w = q * scale + minimum``, q in [0, 15]) as ``compress.quantize.int4_weight``
stores them; activations rounded to int8 per row; two weight rows per register, their group sums
exact in VNNI's vpdpbusd. Where the CPU has no AVX512-VNNI the C code is portable and slow, so
:func:`fast` says whether to prefer it over PyTorch's int4 kernel.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from genfast.kernels.ops import available, cpu_has  # noqa: F401 - callers ask the kernel's module

BLOCK = 32  # columns per 32-byte block of a row pair (int4_gemv.c)


@functools.cache
def fast() -> bool:
    """Whether this CPU runs the kernel's vector path (AVX512-VNNI)."""
    return cpu_has("avx512_vnni", "avx512bw")


def pack(q: torch.Tensor) -> torch.Tensor:
    """(out, in) values in [0, 15] -> the kernel's layout [out / 2][in / 32][32] uint8 (out padded to
    even with zero rows): register byte t of a block is row 2p + (t // 4) % 2, column 4 * (t // 8) + t % 4;
    bytes 0-31 go to the low nibbles, 32-63 to the high ones."""
    q = F.pad(q.to(torch.uint8), (0, 0, 0, q.shape[0] % 2))
    n, k = q.shape
    # (pair, row in pair, block, 4-column group, column) -> (pair, block, 4-column group, row in pair, column)
    z = q.reshape(n // 2, 2, k // BLOCK, 8, 4).permute(0, 2, 3, 1, 4).reshape(n // 2, k // BLOCK, 64)
    return (z[..., :32] | (z[..., 32:] << 4)).contiguous()


def unpack(packed: torch.Tensor, out_features: int) -> torch.Tensor:
    """The kernel's layout -> the (out, in) uint8 values :func:`pack` was given."""
    pairs, blocks, _ = packed.shape
    z = torch.cat([packed & 0xF, packed >> 4], dim=-1)  # (pair, block, 64 register bytes)
    q = z.reshape(pairs, blocks, 8, 2, 4).permute(0, 3, 1, 2, 4).reshape(pairs * 2, blocks * BLOCK)
    return q[:out_features].clone()


def pair_scales(scale: torch.Tensor) -> torch.Tensor:
    """(out, groups) -> [out / 2][groups][2] bf16: both rows of a pair side by side (out padded to even)."""
    s = pad_rows(scale, torch.bfloat16)
    return s.reshape(-1, 2, s.shape[1]).transpose(1, 2).contiguous()


def unpair_scales(scale2: torch.Tensor, out_features: int) -> torch.Tensor:
    """:func:`pair_scales` undone: (out, groups) fp32."""
    return scale2.transpose(1, 2).reshape(-1, scale2.shape[1])[:out_features].float()


def pad_rows(t: torch.Tensor | None, dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
    """A per-output-channel tensor (minimum (out, groups) in bf16, bias (out,) in fp32) zero-padded to
    an even row count."""
    if t is None:
        return None
    return F.pad(t.to(dtype), (0, 0) * (t.dim() - 1) + (0, t.shape[0] % 2)).contiguous()


def group_tensor(scale: torch.Tensor, minimum: torch.Tensor) -> torch.Tensor:
    """The kernel's scales and minimums in one bf16 tensor (as the layer-stack operator takes them):
    :func:`pair_scales` then the padded minimums, flat."""
    return torch.cat([pair_scales(scale).flatten(), pad_rows(minimum, torch.bfloat16).flatten()])


def split_groups(groups: torch.Tensor, packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`group_tensor` as views: scale2 [pairs][groups][2] and minimum [2 * pairs][groups]."""
    pairs = packed.shape[0]
    half = groups.numel() // 2
    return groups[:half].view(pairs, -1, 2), groups[half:].view(2 * pairs, -1)


PROMPT_ROWS = 32
"""Activation rows from which :func:`int4_matmul` multiplies bf16 weights in PyTorch's bf16 GEMM
(``benchmarks/int8_prefill.py``: about even at 32 rows, half to 0.6x the int4 product's time at 128,
whose unpacking and group scaling repeat for every 4 rows)."""


def int4_matmul(x: torch.Tensor, packed: torch.Tensor, scale2: torch.Tensor, minimum: torch.Tensor,
                bias: torch.Tensor | None, group_size: int, out_features: int) -> torch.Tensor:
    """``x`` (rows, in) fp32 times the int4 weights (``scale2``, ``minimum`` from :func:`split_groups`):
    the int4 product for few rows, the weights dequantized to bf16 and PyTorch's bf16 GEMM for prompts."""
    if x.shape[0] < PROMPT_ROWS:
        return int4_gemv(x, packed, scale2, minimum, bias, group_size, out_features)
    weight = torch.ops.genfast.int4_dequantize(packed, scale2, minimum, group_size)[:out_features]
    y = (x.to(torch.bfloat16) @ weight.T).float()
    return y if bias is None else y + bias[:out_features]


def int4_gemv(x: torch.Tensor, packed: torch.Tensor, scale2: torch.Tensor, minimum: torch.Tensor,
              bias: torch.Tensor | None, group_size: int, out_features: int) -> torch.Tensor:
    """``x`` (rows, in) fp32 on CPU times the int4 weights -> (rows, out_features) fp32; ``scale2`` from
    :func:`pair_scales`, ``minimum`` (bf16) and ``bias`` padded with :func:`pad_rows`. Call
    :func:`available` first."""
    y = torch.ops.genfast.int4_gemv(x, packed, scale2, minimum, bias, group_size)
    return y if y.shape[1] == out_features else y[:, :out_features]
