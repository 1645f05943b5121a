"""Fp32 linear layers for a few activation rows (decode), genfast's own kernel (``fp32_gemv.c``).

PyTorch's batch-1 fp32 matmul read weights at about half the memory's bandwidth here
(``benchmarks/cpu_int_kernels.py``); this kernel reads the same row-major weights, so a layer
needs no second copy and its ``state_dict`` does not change.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genfast.kernels.ops import available

MAX_ROWS = 4
"""Activation rows up to which the kernel is used (fp32_gemv.c's FP32_MAX_ROWS; more: PyTorch's GEMM)."""


def supports(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether the kernel can run: fp32 on CPU, up to MAX_ROWS rows, no gradient wanted, no
    autocast, not being traced for export."""
    return (x.device.type == "cpu" and x.dtype == weight.dtype == torch.float32 and weight.is_contiguous()
            and x.numel() // x.shape[-1] <= MAX_ROWS
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
            and not torch.is_autocast_enabled("cpu") and not torch.jit.is_tracing() and available())


class GemvLinear(torch.nn.Linear):
    """A ``torch.nn.Linear`` that multiplies a few rows with genfast's fp32 kernel (else as Linear)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not supports(x, self.weight):
            return F.linear(x, self.weight, self.bias)
        y = torch.ops.genfast.fp32_gemv(x.reshape(-1, x.shape[-1]), self.weight, self.bias)
        return y.view(*x.shape[:-1], self.out_features)

    @classmethod
    def sharing(cls, layer: torch.nn.Linear) -> GemvLinear:
        """A GemvLinear over ``layer``'s own weight and bias (shared, not copied)."""
        new = cls(layer.in_features, layer.out_features, bias=False, device="meta")
        new.weight, new.bias = layer.weight, layer.bias
        return new
