"""Cast the whole model to fp16 or bf16 (weights and compute), with a warning where the hardware
has no native support (bf16 on a CPU without AVX512-BF16 / AMX is slower than fp32)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from genfast.compress.api import register
from genfast.devices import DTYPES
from genfast.errors import ConfigError

CAST_DTYPES = ("fp16", "bf16")


@dataclass
class CastPrecision:
    dtype: str = "bf16"
    """fp16 or bf16."""
    version: int = 1

    def validate(self) -> None:
        if self.dtype not in CAST_DTYPES:
            raise ConfigError(f"Cannot cast to {self.dtype!r}.", f"Use one of: {', '.join(CAST_DTYPES)}.")


@register(CastPrecision, reapply_on_load=True)
def cast_precision(model: torch.nn.Module, cfg: CastPrecision, tokenizer=None) -> torch.nn.Module:
    from genfast.devices import precision_warning

    dtype = DTYPES[cfg.dtype]
    warning = precision_warning(next(model.parameters()).device, dtype)
    if warning:
        warnings.warn(warning, stacklevel=3)
    return model.to(dtype)
