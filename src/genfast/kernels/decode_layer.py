"""A decode step's whole layer stack as one operator (``decode_layer.c``), for int8, int4 or fp32 weights.

Per layer: norm, fused qkv projection, RoPE, KV-cache write, attention, output projection, MLP and
both residuals, over genfast's int8 / int4 / fp32 GEMVs and decode attention; all layers in one OpenMP region,
so the threads go from one projection to the next without returning to Python or to a graph's
wrapper. Each layer's weights are checked and registered once (a plan), so a step passes only ids.
"""

from __future__ import annotations

import weakref

import torch

from genfast.kernels.fp32_gemv import GemvLinear
from genfast.kernels.ops import available

MAX_HEAD_DIM = 512  # decode_layer.c


def _variant(shape) -> int | None:
    """decode_layer.c's layer variant for a DecoderShape: 0 = LayerNorm, learned positions, tanh-GELU
    MLP (GPT-2); 1 = RMSNorm, RoPE, gated SiLU MLP (Llama); None where it has none."""
    if shape.norm == "layer" and not shape.rotary and not shape.gated and shape.activation in (
            "gelu_new", "gelu_pytorch_tanh"):
        return 0
    if (shape.norm == "rms" and shape.rotary and not shape.partial_rotary and shape.gated
            and shape.activation in ("silu", "swish")):
        return 1
    return None


def _packed(linear: torch.nn.Module) -> list | None:
    """(packed, scale, bias) of a weight-only layer held in genfast's int8 or int4 kernel layout, or
    (weight, None, bias) of an fp32 one decoding through genfast's fp32 GEMV; else None."""
    if getattr(linear, "gemv_weight", None) is not None:
        return [linear.gemv_weight, linear.gemv_scale, linear.gemv_bias]
    if getattr(linear, "kernel_packed", None) is not None:
        return [linear.kernel_packed, linear.kernel_groups, linear.kernel_bias]
    if isinstance(linear, GemvLinear) and linear.weight.dtype == torch.float32 and linear.weight.is_contiguous() and (
            linear.weight.device.type == "cpu" and (linear.bias is None or linear.bias.dtype == torch.float32)):
        return [linear.weight, None, linear.bias]
    return None


def _norm(norm: torch.nn.Module, kind: str) -> tuple[list, float] | None:
    """([weight, bias], eps) of a norm the kernel computes, else None."""
    weight = getattr(norm, "weight", None)
    if weight is None or weight.dtype != torch.float32 or weight.dim() != 1 or weight.device.type != "cpu":
        return None
    if kind == "layer" and isinstance(norm, torch.nn.LayerNorm):
        return [weight, norm.bias], norm.eps
    if kind == "rms" and type(norm).__name__ == "RMSNorm" and hasattr(norm, "eps"):  # runtime.convert's
        return [weight, None], norm.eps
    return None


def layer_weights(block: torch.nn.Module) -> tuple[list, dict] | None:
    """The weights and settings of ``block`` (a runtime.decoder.Block) as the operator takes them,
    or None where it cannot run it: every projection int8 or int4 weight-only in genfast's kernel layouts
    or fp32 (qkv and up alike: they share an input), norms it knows."""
    s = block.shape
    variant = _variant(s)
    if (variant is None or s.parallel_residual or block.q_norm is not None or block.windowed
            or block.post_norms is not None or not s.plain_attention or s.qkv_grouped or s.rotary_interleaved):
        return None
    projections = [_packed(layer) for layer in (block.qkv, block.out, block.up, block.down)]
    norms = [_norm(n, s.norm) for n in (block.norm1, block.norm2)]
    if None in projections or None in norms or norms[0][1] != norms[1][1] or s.head_dim > MAX_HEAD_DIM:
        return None
    if (projections[0][0].dtype, getattr(block.qkv, "group_size", None)) != (
            projections[2][0].dtype, getattr(block.up, "group_size", None)):
        return None
    (norm1, eps), (norm2, _) = norms
    qkv, out, up, down = projections
    mlp_width = block.up.out_features // (2 if s.gated else 1)
    exact = {"qkv": qkv[0].shape[1] == up[0].shape[1] == norm1[0].numel(),
             "out": out[0].shape == (norm1[0].numel(), s.heads * s.head_dim), "down": down[0].shape[1] == mlp_width}
    if any(p[0].dtype == torch.float32 and not exact[name] for name, p in zip(exact, (qkv, out, down), strict=True)):
        return None  # an fp32 product reads its input rows as the layer leaves them, without padding
    return ([*norm1, *qkv, *out, *norm2, *up, *down],
            {"family": variant, "heads": s.heads, "kv_heads": s.kv_heads, "head_dim": s.head_dim,
             "mlp_width": mlp_width, "eps": float(eps)})


def plan_layers(owner: object, blocks) -> list[int] | None:
    """Register ``blocks``' weights with the operator, for as long as ``owner`` lives; None unless
    it can run every block."""
    weights = [layer_weights(block) for block in blocks]
    if not weights or None in weights or not available():
        return None
    plans = [torch.ops.genfast.layer_plan(tensors, **settings) for tensors, settings in weights]
    weakref.finalize(owner, _release, plans)
    return plans


def _release(plans: list[int]) -> None:
    for plan in plans:
        torch.ops.genfast.release_plan(plan)


def supports(x: torch.Tensor, cache) -> bool:
    """Whether the operator can run this step over ``cache`` (a StaticKVCache): one new token per
    row, fp32 on CPU, caches laid out alike, no autocast."""
    k, v = cache.k[0], cache.v[0]
    return (x.shape[1] == 1 and x.device.type == "cpu" and x.dtype == k.dtype == v.dtype == torch.float32
            and k.stride() == v.stride() and k.stride(-1) == 1 and not torch.is_autocast_enabled("cpu"))


def decode_layers(x: torch.Tensor, positions: torch.Tensor, rope: tuple | None, cache,
                  plans: list[int]) -> torch.Tensor:
    """``x`` (batch, 1, width) through the planned layers; layer i writes each row's key and value
    to slot ``positions[b, 0]`` of ``cache.k[i]`` / ``cache.v[i]``. ``rope``: cos, sin
    (batch, 1, 1, head_dim) or None. Call :func:`supports` first."""
    batch = x.shape[0]
    cos, sin = (t.reshape(batch, -1) for t in rope) if rope is not None else (None, None)
    y = torch.ops.genfast.decode_layers(x.reshape(batch, -1), positions[:, 0], cache.k, cache.v, plans, cos, sin)
    return y.view_as(x)
