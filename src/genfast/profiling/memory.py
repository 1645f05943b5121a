"""Process and accelerator memory, and model size."""

from __future__ import annotations

import resource
import sys

import torch


def peak_rss_bytes() -> int:
    """Peak resident set size of this process since it started (or since :func:`reset_peak_rss`).

    On Linux, VmHWM: getrusage's ru_maxrss keeps, across exec, the peak of the process that forked
    this one (a tune worker would report at least its parent's RSS)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def reset_peak_rss() -> bool:
    """Start the peak RSS over from the current RSS (Linux's clear_refs); False where the OS
    cannot, and the peak then keeps counting from the process's start."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def cuda_peak_bytes(device: torch.device) -> int | None:
    """Peak CUDA memory allocated by torch on ``device`` since the last reset, or None off-GPU."""
    if device.type != "cuda":
        return None
    return int(torch.cuda.max_memory_allocated(device))


def _quantized_layers(model: torch.nn.Module) -> list:
    from genfast.compress.quantize.layers import QuantizedLinear

    return [m for m in model.modules() if isinstance(m, QuantizedLinear)]


def parameter_count(model: torch.nn.Module) -> int:
    """Parameters, counting a quantized layer's weights (held as buffers) as the float layer's."""
    quantized = sum(m.in_features * m.out_features + (m.out_features if m.bias is not None else 0)
                    for m in _quantized_layers(model))
    return sum(p.numel() for p in model.parameters()) + quantized


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of the saved tensors (parameters and persistent buffers), each shared tensor once."""
    seen: set[int] = set()
    total = 0
    for t in model.state_dict(keep_vars=True).values():
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()
    return total


def weight_bytes_read_per_step(model: torch.nn.Module) -> int:
    """Bytes of weights one decode step reads.

    Every parameter is read once per step, except embedding tables (token or position) that
    are not tied to the output head: a step gathers only one row of those per token.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head_weight = getattr(head, "weight", None)  # a quantized head has none
    head_ptr = head_weight.data_ptr() if isinstance(head_weight, torch.Tensor) else None
    gathered = {m.weight.data_ptr() for m in model.modules()
                if isinstance(m, torch.nn.Embedding) and m.weight.data_ptr() != head_ptr}
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if p.data_ptr() in seen or p.data_ptr() in gathered:
            continue
        seen.add(p.data_ptr())
        total += p.numel() * p.element_size()
    # a quantized layer reads its stored tensors (the kernel's packed copies are the same size)
    return total + sum(t.numel() * t.element_size() for m in _quantized_layers(model) for t in m.state_dict().values())


def kv_cache_bytes_per_token(model: torch.nn.Module) -> int | None:
    """Bytes of keys and values one position adds to a causal LM's cache (all layers), in the
    model's float dtype; None where the config does not describe the attention."""
    cfg = getattr(model, "config", None)
    layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", None)
    heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_head", None)
    hidden = getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd", None)
    if not (layers and heads and hidden):
        return None
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or hidden // heads
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    return layers * 2 * kv_heads * head_dim * dtype.itemsize
