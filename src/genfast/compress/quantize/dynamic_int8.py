"""Dynamic int8: int8 per-channel weights, activations quantized to 8 bits at run time, int8 matmul.

The kernel is ATen's quantized ``linear_dynamic`` (fbgemm / oneDNN on x86, QNNPACK on ARM) called
directly; the deprecated ``torch.ao.quantization`` flow is not used. torchao's CPU path for the
same scheme measured 3.7x *slower* than fp32 on this project's machine, so it does not cover the
case. PyTorch has deprecated the quantized tensor type the packing step takes; where it or the
quantized engine is missing, the layer emulates the same arithmetic (correct, slow).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genfast.compress.api import register
from genfast.compress.quantize.int8_weight import PerChannelInt8Linear
from genfast.compress.quantize.layers import swap_layers

# activations use 7 of 8 bits so the int8 x int8 products cannot saturate on CPUs without VNNI
REDUCE_RANGE = True


@dataclass
class DynamicInt8:
    include_lm_head: bool = True
    version: int = 1

    def validate(self) -> None:
        pass


def _fake_quantize_activations(x: torch.Tensor) -> torch.Tensor:
    """Per-tensor asymmetric 8-bit (7-bit with REDUCE_RANGE) round trip of ``x``, as the kernel does."""
    levels = 127 if REDUCE_RANGE else 255
    low, high = x.min().clamp(max=0), x.max().clamp(min=0)
    scale = ((high - low) / levels).clamp(min=1e-12)
    zero = torch.round(-low / scale)
    return (torch.round(x / scale) + zero).clamp(0, levels).sub(zero).mul(scale)


class DynamicInt8Linear(PerChannelInt8Linear):
    """y = quantize(x) @ (q * scale).T + bias, with x's 8-bit range chosen per call."""

    def _derive(self) -> None:
        self.packed = None
        if self.qweight.device.type != "cpu" or torch.backends.quantized.engine == "none":
            return
        with warnings.catch_warnings():  # quantized tensor types are deprecated; the packed form is all we use
            warnings.simplefilter("ignore", UserWarning)
            try:
                qtensor = torch._make_per_channel_quantized_tensor(
                    self.qweight, self.scale.double(), torch.zeros(self.out_features, dtype=torch.long), 0)
                self.packed = torch.ops.quantized.linear_prepack(qtensor, self.bias)
            except (AttributeError, RuntimeError):  # a torch without the op: the emulation below runs
                self.packed = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is not None and x.device.type == "cpu":
            y = torch.ops.quantized.linear_dynamic(x.float(), self.packed, REDUCE_RANGE)
            return y.to(x.dtype)
        y = F.linear(_fake_quantize_activations(x.float()), self.dequantized())
        return (y if self.bias is None else y + self.bias).to(x.dtype)


@register(DynamicInt8, reapply_on_load=True)
@torch.no_grad()
def dynamic_int8(model: torch.nn.Module, cfg: DynamicInt8, tokenizer=None) -> torch.nn.Module:
    swap_layers(model, cfg.include_lm_head, lambda _name, layer: DynamicInt8Linear.from_dense(layer))
    return model
