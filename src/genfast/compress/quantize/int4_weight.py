"""Weight-only int4: asymmetric groups of ``group_size`` input channels, float activations.

Stored as two 4-bit values per byte (low nibble = even column) with one scale and minimum per
group (bf16-exact, kept as fp32): ``w ~= q * scale + minimum``, q in [0, 15]. On a CPU with
AVX512-VNNI genfast's kernel (``kernels.int4_gemv``: int8 activations, exact group sums) runs over
its own layout; elsewhere on CPU PyTorch's ``_weight_int4pack_mm_for_cpu`` fed bf16 activations
(it wants ``out_features`` in multiples of 16, so that matrix is padded with zero rows and the
output sliced); on other devices the layer dequantizes and multiplies: correct, not fast.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genfast.compress.api import register
from genfast.compress.quantize.layers import QuantizedLinear, bias_of, concat_bias, dense_weight, swap_layers
from genfast.errors import ConfigError
from genfast.kernels import int4_gemv

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
    high = groups.amax(-1)
    # bf16-exact scales and minimums, so genfast's kernel holds them in 2 bytes without rounding
    # (rounded to nearest they move the top of a group by under 1/500 of a step: still within 15)
    low = groups.amin(-1).bfloat16().float()
    scale = ((high - low) / 15).clamp(min=1e-12).bfloat16().float()
    q = torch.round((groups - low[..., None]) / scale[..., None]).clamp(0, 15).to(torch.uint8)
    q = q.reshape(out_features, in_features)
    return q[:, 0::2] | (q[:, 1::2] << 4), scale, low


def unpack(packed: torch.Tensor) -> torch.Tensor:
    """uint8 (out, in / 2) -> uint8 (out, in) values in [0, 15]."""
    return torch.stack([packed & 0xF, packed >> 4], dim=-1).reshape(packed.shape[0], -1)


class Int4WeightOnlyLinear(QuantizedLinear):
    """y = x @ (q * scale + minimum).T + bias, per group of input channels.

    Where genfast's int4 kernel runs (a CPU with AVX512-VNNI) the weights are held once, in its
    layout, scales and minimums in bf16 (the quantizer makes them bf16-exact): the saved form is
    rebuilt for ``state_dict()``. Elsewhere on CPU PyTorch's ``_weight_int4pack_mm_for_cpu`` runs.
    """

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
        stored = [p.stored() for p in parts]
        return cls(*(torch.cat([s[i] for s in stored]) for i in range(3)), concat_bias(parts), parts[0].group_size)

    def stored(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The saved form: packed nibbles (out, in / 2), scale and minimum (out, groups) fp32."""
        if self.qweight is not None:
            return self.qweight, self.scale, self.minimum
        q = int4_gemv.unpack(self.kernel_packed, self.out_features)
        scale2, minimum = self.kernel_views
        return (q[:, 0::2] | (q[:, 1::2] << 4), int4_gemv.unpair_scales(scale2, self.out_features),
                minimum[:self.out_features].float())

    def _derive(self) -> None:
        for name in ("kernel_packed", "kernel_weight"):  # which of the two kernels' forms, if any
            self.register_buffer(name, None, persistent=False)
        if self.qweight.device.type != "cpu":
            return
        if int4_gemv.fast() and int4_gemv.available() and self.in_features % int4_gemv.BLOCK == 0:
            self.register_buffer("kernel_packed", int4_gemv.pack(unpack(self.qweight)), persistent=False)
            self.register_buffer("kernel_groups", int4_gemv.group_tensor(self.scale, self.minimum), persistent=False)
            self.register_buffer("kernel_bias", int4_gemv.pad_rows(self.bias), persistent=False)
            # views of kernel_groups, made once: building them per call cost a third of a small layer's time
            self.kernel_views = int4_gemv.split_groups(self.kernel_groups, self.kernel_packed)
            self.qweight = self.scale = self.minimum = None  # held once (None buffers: out of state_dict and .to())
            return
        pad = -self.out_features % _ROW_MULTIPLE
        q = F.pad(unpack(self.qweight).to(torch.int32), (0, 0, 0, pad))
        # the kernel computes (q - 8) * scale + zero, so its zero is the minimum moved by 8 steps
        scale, zero = F.pad(self.scale, (0, 0, 0, pad)), F.pad(self.minimum + 8 * self.scale, (0, 0, 0, pad))
        scales_zeros = torch.stack([scale.t(), zero.t()], dim=-1).contiguous().to(KERNEL_DTYPE)
        self.register_buffer("kernel_weight", torch._convert_weight_to_int4pack_for_cpu(q, 1), persistent=False)
        self.register_buffer("kernel_scales_zeros", scales_zeros, persistent=False)

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.qweight is None:
            for name, tensor in zip(("qweight", "scale", "minimum"), self.stored(), strict=True):
                destination[prefix + name] = tensor

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        if self.qweight is None:  # slots for the saved form; _derive() packs it and lets it go again
            device, groups = self.kernel_packed.device, self.in_features // self.group_size
            self.qweight = torch.empty(self.out_features, self.in_features // 2, dtype=torch.uint8, device=device)
            self.scale = torch.empty(self.out_features, groups, device=device)
            self.minimum = torch.empty(self.out_features, groups, device=device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def dequantized(self) -> torch.Tensor:
        packed, scale, minimum = self.stored()
        q = unpack(packed).float().reshape(self.out_features, -1, self.group_size)
        w = q * scale[..., None] + minimum[..., None]
        return w.reshape(self.out_features, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_packed is not None and x.device.type == "cpu" and x.dtype == torch.float32:
            rows = x.numel() // self.in_features
            y = int4_gemv.int4_matmul(x.reshape(rows, self.in_features), self.kernel_packed, *self.kernel_views,
                                      self.kernel_bias, self.group_size, self.out_features)
            return y.reshape(*x.shape[:-1], self.out_features)
        if x.device.type == "cpu" and self.kernel_weight is not None:
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
