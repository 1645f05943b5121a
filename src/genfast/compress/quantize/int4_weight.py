"""Weight-only int4: asymmetric groups of ``group_size`` input channels, float activations.

Stored as two 4-bit values per byte (low nibble = even column) with one fp32 scale and minimum
per group: ``w ~= q * scale + minimum``, q in [0, 15]. The CPU kernel is PyTorch's own
``_weight_int4pack_mm_for_cpu`` fed bf16 activations (its fast path); it wants
``out_features`` in multiples of 16, so the packed matrix is padded with zero rows and the
output sliced. Elsewhere the layer dequantizes and multiplies: correct, not fast.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genfast.compress.api import register
from genfast.compress.quantize.layers import QuantizedLinear, bias_of, concat_bias, dense_weight, swap_layers
from genfast.errors import ConfigError

GROUP_SIZES = (32, 64, 128, 256)
KERNEL_DTYPE = torch.bfloat16
_ROW_MULTIPLE = 16


@dataclass
class Int4WeightOnly:
    group_size: int = 32
    """Input channels sharing one scale and minimum: 32, 64, 128 or 256 (smaller = more accurate)."""
    include_lm_head: bool = True
    version: int = 1

    def validate(self) -> None:
        if self.group_size not in GROUP_SIZES:
            raise ConfigError(f"int4 group size must be one of {', '.join(map(str, GROUP_SIZES))}, "
                              f"got {self.group_size}.")


def quantize_groups(weight: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(out, in) float -> packed uint8 (out, in / 2), scale and minimum (out, in / group_size)."""
    out_features, in_features = weight.shape
    groups = weight.float().reshape(out_features, in_features // group_size, group_size)
    low, high = groups.amin(-1), groups.amax(-1)
    scale = ((high - low) / 15).clamp(min=1e-12)
    q = torch.round((groups - low[..., None]) / scale[..., None]).clamp(0, 15).to(torch.uint8)
    q = q.reshape(out_features, in_features)
    return q[:, 0::2] | (q[:, 1::2] << 4), scale, low


def unpack(packed: torch.Tensor) -> torch.Tensor:
    """uint8 (out, in / 2) -> int32 (out, in) values in [0, 15]."""
    q = torch.stack([packed & 0xF, packed >> 4], dim=-1)
    return q.reshape(packed.shape[0], -1).to(torch.int32)


class Int4WeightOnlyLinear(QuantizedLinear):
    """y = x @ (q * scale + minimum).T + bias, per group of input channels."""

    def __init__(self, packed: torch.Tensor, scale: torch.Tensor, minimum: torch.Tensor,
                 bias: torch.Tensor | None, group_size: int) -> None:
        super().__init__()
        self.out_features, self.in_features = packed.shape[0], packed.shape[1] * 2
        self.group_size = group_size
        self.register_buffer("qweight", packed)
        self.register_buffer("scale", scale)
        self.register_buffer("minimum", minimum)
        self.register_buffer("bias", bias)
        self._derive()

    @classmethod
    def from_dense(cls, module: torch.nn.Module, group_size: int, name: str = "") -> Int4WeightOnlyLinear:
        weight = dense_weight(module)
        if weight.shape[1] % group_size:
            valid = [g for g in GROUP_SIZES if weight.shape[1] % g == 0]
            raise ConfigError(f"int4 group size {group_size} does not divide the {weight.shape[1]} input channels "
                              f"of {name or type(module).__name__}.",
                              f"Use a group size that divides it: {', '.join(map(str, valid)) or 'none does'}"
                              + ("" if valid else "; leave this model in int8 (Int8WeightOnly)") + ".")
        packed, scale, minimum = quantize_groups(weight, group_size)
        return cls(packed, scale, minimum, bias_of(module), group_size)

    @classmethod
    def concat(cls, parts: list[Int4WeightOnlyLinear]) -> Int4WeightOnlyLinear:
        """One layer computing ``parts``' outputs side by side (fused projections)."""
        return cls(torch.cat([p.qweight for p in parts]), torch.cat([p.scale for p in parts]),
                   torch.cat([p.minimum for p in parts]), concat_bias(parts), parts[0].group_size)

    def _derive(self) -> None:
        if self.qweight.device.type != "cpu":
            return
        pad = -self.out_features % _ROW_MULTIPLE
        q = F.pad(unpack(self.qweight), (0, 0, 0, pad))
        # the kernel computes (q - 8) * scale + zero, so its zero is the minimum moved by 8 steps
        scale, zero = F.pad(self.scale, (0, 0, 0, pad)), F.pad(self.minimum + 8 * self.scale, (0, 0, 0, pad))
        scales_zeros = torch.stack([scale.t(), zero.t()], dim=-1).contiguous().to(KERNEL_DTYPE)
        self.register_buffer("kernel_weight", torch._convert_weight_to_int4pack_for_cpu(q, 1), persistent=False)
        self.register_buffer("kernel_scales_zeros", scales_zeros, persistent=False)

    def dequantized(self) -> torch.Tensor:
        q = unpack(self.qweight).float().reshape(self.out_features, -1, self.group_size)
        w = q * self.scale[..., None] + self.minimum[..., None]
        return w.reshape(self.out_features, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and hasattr(self, "kernel_weight"):
            flat = x.reshape(-1, self.in_features).to(KERNEL_DTYPE)
            y = torch._weight_int4pack_mm_for_cpu(flat, self.kernel_weight, self.group_size, self.kernel_scales_zeros)
            y = y[:, :self.out_features].to(x.dtype).reshape(*x.shape[:-1], self.out_features)
        else:
            y = F.linear(x, self.dequantized().to(x.dtype))
        return y if self.bias is None else y + self.bias.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, group_size={self.group_size}"


@register(Int4WeightOnly, reapply_on_load=True)
@torch.no_grad()
def int4_weight_only(model: torch.nn.Module, cfg: Int4WeightOnly, tokenizer=None) -> torch.nn.Module:
    swap_layers(model, cfg.include_lm_head,
                lambda name, layer: Int4WeightOnlyLinear.from_dense(layer, cfg.group_size, name))
    return model
