"""What quantization transforms share: finding the matrices, swapping modules, measuring error.

A quantized layer keeps its weights in a device-neutral form (what ``save_pretrained`` writes)
and derives the form its kernel wants (``_derive``) at construction and after every
``load_state_dict``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from genfast.errors import ConfigError


def is_conv1d(module: torch.nn.Module) -> bool:
    """GPT-2's Conv1D: a Linear whose weight is stored (in, out)."""
    return type(module).__name__ == "Conv1D" and getattr(module, "weight", None) is not None


def dense_weight(module: torch.nn.Module) -> torch.Tensor:
    """The (out, in) weight of a Linear or a Conv1D, detached."""
    weight = module.weight.detach()
    return weight.t().contiguous() if is_conv1d(module) else weight


def _lm_head(model: torch.nn.Module) -> torch.nn.Module | None:
    get = getattr(model, "get_output_embeddings", None)
    return get() if get else None


def target_layers(model: torch.nn.Module, include_lm_head: bool) -> Iterator[tuple[str, torch.nn.Module]]:
    """``(qualified name, module)`` of every Linear / Conv1D to quantize."""
    head = _lm_head(model)
    for name, module in model.named_modules():
        if not (isinstance(module, torch.nn.Linear) or is_conv1d(module)):
            continue
        if module is head and not include_lm_head:
            continue
        yield name, module


def swap_layers(model: torch.nn.Module, include_lm_head: bool,
                build: Callable[[str, torch.nn.Module], torch.nn.Module]) -> int:
    """Replace each target layer by ``build(name, layer)``; every layer is built (and so checked)
    before the model is touched. Returns how many were replaced."""
    replacements = [(name, build(name, module)) for name, module in target_layers(model, include_lm_head)]
    if not replacements:
        raise ConfigError(f"{type(model).__name__} has no nn.Linear or Conv1D layers to quantize.")
    for name, new in replacements:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
    if getattr(model, "config", None) is not None and include_lm_head and _lm_head(model) is not None:
        # the quantized head no longer shares the embedding's tensor; say so, so nothing re-ties them
        model.config.tie_word_embeddings = False
    return len(replacements)


def sqnr_db(reference: torch.Tensor, approximation: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio in dB: 10 log10(|ref|^2 / |ref - approx|^2)."""
    ref, approx = reference.detach().double(), approximation.detach().double()
    noise = (ref - approx).pow(2).sum()
    if noise == 0:
        return float("inf")
    return float(10 * torch.log10(ref.pow(2).sum() / noise))


class QuantizedLinear(torch.nn.Module):
    """Base of the quantized layers: stored tensors are buffers; kernel forms are derived."""

    in_features: int
    out_features: int

    def _derive(self) -> None:
        """Build the kernel's form of the stored tensors (non-persistent buffers)."""

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._derive()

    def dequantized(self) -> torch.Tensor:
        """The (out, in) float weight these quantized values stand for."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def bias_of(module: torch.nn.Module) -> torch.Tensor | None:
    bias = getattr(module, "bias", None)
    return None if bias is None else bias.detach().float().clone()


def concat_bias(parts: list[QuantizedLinear]) -> torch.Tensor | None:
    biases = [p.bias for p in parts]
    if all(b is None for b in biases):
        return None
    return torch.cat([b if b is not None else torch.zeros(p.out_features) for b, p in zip(biases, parts)])
