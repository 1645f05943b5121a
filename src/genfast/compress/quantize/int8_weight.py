"""Weight-only int8: symmetric per-output-channel int8 weights, float activations.

On CPU genfast's own kernels run over one prepacked copy of the weights (``kernels.int8_gemv``):
int16-rounded activations below ``int8_gemv.GEMM_MIN_ROWS`` rows (decode), 8-bit activations for
more (prompts: an int8 x int8 product). Where they cannot run (another device, no C compiler)
PyTorch's ``_weight_int8pack_mm`` fed bf16 activations (``in_features`` a multiple of 16), else
the layer dequantizes and multiplies: correct, not fast.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genfast.compress.api import register
from genfast.compress.quantize.layers import QuantizedLinear, bias_of, concat_bias, dense_weight, swap_layers
from genfast.kernels import int8_gemv

KERNEL_DTYPE = torch.bfloat16
_KERNEL_K_MULTIPLE = 16  # the CPU kernel crashes on other widths


@dataclass
class Int8WeightOnly:
    include_lm_head: bool = True
    """Quantize the output projection too (it is read every step, like every other matrix)."""
    version: int = 1

    def validate(self) -> None:
        pass


def quantize_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, in) float -> int8 values and fp32 scales with weight ~= q * scale[:, None]."""
    w = weight.float()
    scale = (w.abs().amax(dim=1) / 127).clamp(min=1e-12)
    q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


class PerChannelInt8Linear(QuantizedLinear):
    """int8 (out, in) weights with one fp32 scale per output channel; subclasses pick the kernel."""

    def __init__(self, qweight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.out_features, self.in_features = qweight.shape
        self.register_buffer("qweight", qweight)
        self.register_buffer("scale", scale)
        self.register_buffer("bias", bias)
        self._derive()

    @classmethod
    def from_dense(cls, module: torch.nn.Module) -> PerChannelInt8Linear:
        q, scale = quantize_per_channel(dense_weight(module))
        return cls(q, scale, bias_of(module))

    @classmethod
    def concat(cls, parts: list[PerChannelInt8Linear]) -> PerChannelInt8Linear:
        """One layer computing ``parts``' outputs side by side (fused projections)."""
        return cls(torch.cat([p.int8_values() for p in parts]), torch.cat([p.scale for p in parts]),
                   concat_bias(parts))

    def int8_values(self) -> torch.Tensor:
        """The (out, in) int8 values (the saved form)."""
        return self.qweight

    def dequantized(self) -> torch.Tensor:
        return self.int8_values().float() * self.scale[:, None]


class Int8WeightOnlyLinear(PerChannelInt8Linear):
    """y = x @ (q * scale).T + bias.

    Where genfast's kernels run, the int8 values are held once, in their packed layout: the saved
    (out, in) form is rebuilt for ``state_dict()``.
    """

    def int8_values(self) -> torch.Tensor:
        if self.qweight is not None:
            return self.qweight
        return int8_gemv.unpack(self.gemv_weight, self.out_features, self.in_features)

    def _derive(self) -> None:
        self.register_buffer("kernel_scale", self.scale.to(KERNEL_DTYPE), persistent=False)
        gemv = self.qweight.device.type == "cpu" and int8_gemv.available()
        packed = int8_gemv.pack(self.qweight) if gemv else None
        self.register_buffer("gemv_weight", packed, persistent=False)
        self.register_buffer("gemv_scale", int8_gemv.pad_rows(self.scale, packed) if gemv else None, persistent=False)
        self.register_buffer("gemv_bias", int8_gemv.pad_rows(self.bias, packed) if gemv else None, persistent=False)
        self.register_buffer("gemv_row_sums", int8_gemv.row_sums(self.qweight, packed) if gemv else None,
                             persistent=False)
        if gemv:
            self.qweight = None  # held once, packed (a None buffer is left out of state_dict and .to())

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.qweight is None:
            destination[prefix + "qweight"] = self.int8_values()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        if self.qweight is None:  # a slot for the saved form; _derive() packs it and lets it go again
            self.qweight = torch.empty(self.out_features, self.in_features, dtype=torch.int8,
                                       device=self.scale.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // self.in_features
        if self.gemv_weight is not None and x.device.type == "cpu" and x.dtype == torch.float32:
            flat = x.reshape(rows, self.in_features)
            if rows < int8_gemv.GEMM_MIN_ROWS:
                y = int8_gemv.int8_gemv(flat, self.gemv_weight, self.gemv_scale, self.gemv_bias, self.out_features)
            else:
                y = int8_gemv.int8_gemm(flat, self.gemv_weight, self.gemv_scale, self.gemv_row_sums, self.gemv_bias,
                                        self.out_features)
            return y.reshape(*x.shape[:-1], self.out_features)
        if x.device.type == "cpu" and self.in_features % _KERNEL_K_MULTIPLE == 0:
            flat = x.reshape(-1, self.in_features).to(KERNEL_DTYPE)
            y = torch._weight_int8pack_mm(flat, self.int8_values(), self.kernel_scale)
            y = y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)
        else:
            y = F.linear(x, self.dequantized().to(x.dtype))
        return y if self.bias is None else y + self.bias.to(x.dtype)


@register(Int8WeightOnly, reapply_on_load=True)
@torch.no_grad()
def int8_weight_only(model: torch.nn.Module, cfg: Int8WeightOnly, tokenizer=None) -> torch.nn.Module:
    swap_layers(model, cfg.include_lm_head, lambda _name, layer: Int8WeightOnlyLinear.from_dense(layer))
    return model
