"""Build a FastDecoder from a transformers causal LM of a family in ``models.families``."""

from __future__ import annotations

import torch

from genfast.compress.quantize.layers import QuantizedLinear
from genfast.models.families import ACTIVATIONS, Family, UnsupportedModelError, family_of
from genfast.runtime.decoder import Block, DecoderShape, FastDecoder

__all__ = ["RMSNorm", "UnsupportedModelError", "to_fast_decoder"]


class RMSNorm(torch.nn.Module):
    """RMSNorm computed in fp32 and cast back, as transformers' Llama does."""

    def __init__(self, weight: torch.Tensor, eps: float) -> None:
        super().__init__()
        self.weight, self.eps = weight, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Spelled out rather than F.rms_norm: the same math, and every ONNX exporter knows these ops.
        x32 = x.float()
        return self.weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


def _fused_linear(*parts: torch.nn.Module) -> torch.nn.Module:
    """One layer whose output is the concatenation of ``parts``' outputs (one matmul, not several)."""
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], QuantizedLinear):
        return type(parts[0]).concat(list(parts))
    weight = torch.cat([p.weight.detach() for p in parts], dim=0)
    has_bias = parts[0].bias is not None
    fused = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=has_bias, device=weight.device, dtype=weight.dtype)
    fused.weight = torch.nn.Parameter(weight, requires_grad=False)
    if has_bias:
        fused.bias = torch.nn.Parameter(torch.cat([p.bias.detach() for p in parts]), requires_grad=False)
    return fused


def _linear_from_conv1d(conv) -> torch.nn.Module:
    """GPT-2's Conv1D stores (in, out); a Linear stores (out, in). Quantized layers are already (out, in)."""
    if isinstance(conv, QuantizedLinear):
        return conv
    weight = conv.weight.detach().t().contiguous()
    lin = torch.nn.Linear(weight.shape[1], weight.shape[0], device=weight.device, dtype=weight.dtype)
    lin.weight = torch.nn.Parameter(weight, requires_grad=False)
    lin.bias = torch.nn.Parameter(conv.bias.detach(), requires_grad=False)
    return lin


def _windowed_layers(cfg) -> list[bool]:
    """Which layers attend through a sliding window shorter than the context (transformers' rules:
    ``layer_types`` where the config has it, else every layer when ``sliding_window`` is set)."""
    window = getattr(cfg, "sliding_window", None)
    if not window or window >= cfg.max_position_embeddings or getattr(cfg, "use_sliding_window", True) is False:
        return [False] * cfg.num_hidden_layers
    types = getattr(cfg, "layer_types", None)
    if types:
        return [t == "sliding_attention" for t in types]
    return [True] * cfg.num_hidden_layers


def _check_covered(cfg, family: Family) -> None:
    """Refuse, by name, every config setting the decoder would otherwise silently ignore."""
    act = family.activation(cfg)
    if act not in ACTIVATIONS:
        raise UnsupportedModelError(f"The MLP activation {act!r} is not supported by genfast's decoder "
                                    f"(it computes {', '.join(ACTIVATIONS)}).")
    if family.conv1d and (cfg.scale_attn_by_inverse_layer_idx or cfg.reorder_and_upcast_attn
                          or not cfg.scale_attn_weights):
        raise UnsupportedModelError("This GPT-2 variant's attention scaling is not supported.")
    if not getattr(cfg, "do_layer_norm_before", True):
        raise UnsupportedModelError("Post-layer-norm OPT variants (do_layer_norm_before=False) are not supported.")
    if getattr(cfg, "word_embed_proj_dim", cfg.hidden_size) != cfg.hidden_size:
        raise UnsupportedModelError("Embeddings projected to another width (OPT's project_in/out) are not supported.")
    if getattr(cfg, "alibi", False):
        raise UnsupportedModelError("ALiBi position biases (Falcon-RW) are not supported by genfast's decoder.")


def _rope_tables(model, family: Family, embed: torch.nn.Module, positions: int,
                 layer_type: str | None = None) -> tuple | None:
    """(cos, sin) of every position, (positions, rotary_dim), from the model's own rotary module (its
    variant and scaling as they are; ``layer_type`` for modules with one table per type); None
    without rotary embeddings."""
    if not family.rotary:
        return None
    module = family.get(model, family.rotary_emb)
    with torch.no_grad():
        probe = embed.weight[:1, None]
        ids = torch.arange(positions, device=probe.device)[None]
        tables = module(probe, ids, layer_type) if layer_type else module(probe, ids)
    if family.rotary_interleaved:  # (sin, cos) per adjacent pair: one value per dimension
        sin, cos = (t.repeat_interleave(2, dim=-1) for t in tables)
    else:
        cos, sin = tables
    return cos[0].to(probe.dtype), sin[0].to(probe.dtype)


def _scale(cfg, family: Family, head_dim: int) -> float | None:
    """The attention score scale where it differs from head_dim ** -0.5."""
    if family.attn_scale_field is None:
        return None
    scale = getattr(cfg, family.attn_scale_field) ** -0.5
    return None if abs(scale - head_dim ** -0.5) < 1e-12 else scale


def to_fast_decoder(model: torch.nn.Module) -> FastDecoder:
    """genfast's decoder over ``model``'s weights; UnsupportedModelError names what is missing."""
    cfg = model.config
    family = family_of(cfg)
    _check_covered(cfg, family)
    layers = family.decoder_layers(model)
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    eps = getattr(cfg, family.eps_field) if family.eps_field else 1e-5
    windowed = _windowed_layers(cfg)
    embed = family.get(model, family.embeddings)
    positions = cfg.max_position_embeddings
    per_type = family.rope_per_layer_type
    rope = _rope_tables(model, family, embed, positions, "full_attention" if per_type else None)
    local_rope = _rope_tables(model, family, embed, positions, "sliding_attention") if per_type else None
    kv_heads = (getattr(family.get(layers[0], family.attention), family.kv_heads_attr) if family.kv_heads_attr
                else getattr(cfg, "num_key_value_heads", None) or heads)
    shape = DecoderShape(family.name, cfg.num_hidden_layers, heads, kv_heads, head_dim, positions, eps,
                         gated=family.gated_mlp, rotary=family.rotary, activation=family.activation(cfg),
                         norm=family.norm, sliding_window=cfg.sliding_window if any(windowed) else None,
                         parallel_residual=family.uses_parallel_residual(cfg),
                         partial_rotary=rope is not None and rope[0].shape[-1] < head_dim,
                         qkv_grouped=family.qkv_grouped, rotary_interleaved=family.rotary_interleaved,
                         attn_scale=_scale(cfg, family, head_dim),
                         attn_softcap=getattr(cfg, "attn_logit_softcapping", None),
                         logit_softcap=getattr(cfg, "final_logit_softcapping", None))
    linear = _linear_from_conv1d if family.conv1d else (lambda m: m)

    def norm(module: torch.nn.Module) -> torch.nn.Module:
        if family.norm != "rms":
            return module
        weight = module.weight + family.norm_weight_offset if family.norm_weight_offset else module.weight
        return RMSNorm(weight.detach() if family.norm_weight_offset else weight, eps)

    blocks = []
    for layer, in_window in zip(layers, windowed, strict=True):
        attn = family.get(layer, family.attention)
        qk_norms = (norm(attn.q_norm), norm(attn.k_norm)) if family.qk_norm else (None, None)
        post_norms = tuple(norm(family.get(layer, n)) for n in family.post_norms) if family.post_norms else None
        blocks.append(Block(shape, norm(family.get(layer, family.norms[0])),
                            _fused_linear(*[linear(family.get(attn, n)) for n in family.qkv]),
                            linear(family.get(attn, family.out_proj)), norm(family.get(layer, family.norms[1])),
                            _fused_linear(*[linear(family.get(layer, n)) for n in family.ffn_in]),
                            linear(family.get(layer, family.ffn_out)), *qk_norms, windowed=in_window,
                            post_norms=post_norms))
    pos_embed = family.get(model, family.learned_positions) if family.learned_positions else None
    if pos_embed is not None and family.position_offset:  # a plain table from row 0 = position 0 (a view)
        pos_embed = torch.nn.Embedding.from_pretrained(pos_embed.weight[family.position_offset:], freeze=True)
    return FastDecoder(shape, embed, blocks, norm(family.get(model, family.final_norm)), model.lm_head,
                       pos_embed=pos_embed, rope_tables=rope, local_rope_tables=local_rope).eval()
