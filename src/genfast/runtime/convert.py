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


def _blocks_from_per_head(qkv: torch.nn.Module, heads: int, head_dim: int) -> torch.nn.Module:
    """Rows (head, q|k|v, dim) reordered to (q|k|v, head, dim): the layout the decoder splits."""
    if isinstance(qkv, QuantizedLinear):
        raise UnsupportedModelError("genfast's decoder cannot reorder a quantized per-head qkv projection.")

    def reorder(t: torch.Tensor) -> torch.Tensor:
        return t.detach().reshape(heads, 3, head_dim, -1).transpose(0, 1).reshape(t.shape)

    out = torch.nn.Linear(qkv.in_features, qkv.out_features, bias=qkv.bias is not None,
                          device=qkv.weight.device, dtype=qkv.weight.dtype)
    out.weight = torch.nn.Parameter(reorder(qkv.weight), requires_grad=False)
    if qkv.bias is not None:
        out.bias = torch.nn.Parameter(reorder(qkv.bias[:, None])[:, 0], requires_grad=False)
    return out


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
    if getattr(cfg, "attn_logit_softcapping", None) or getattr(cfg, "final_logit_softcapping", None):
        raise UnsupportedModelError("Attention / logit soft-capping is not supported by genfast's decoder.")


def _rope_tables(model, family: Family, embed: torch.nn.Module, positions: int) -> tuple | None:
    """(cos, sin) of every position, (positions, rotary_dim), from the model's own rotary module (its
    variant and scaling as they are); None without rotary embeddings."""
    if not family.rotary:
        return None
    with torch.no_grad():
        probe = embed.weight[:1, None]
        cos, sin = family.get(model, family.rotary_emb)(probe, torch.arange(positions, device=probe.device)[None])
    return cos[0].to(probe.dtype), sin[0].to(probe.dtype)


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
    rope = _rope_tables(model, family, embed, cfg.max_position_embeddings)
    shape = DecoderShape(family.name, cfg.num_hidden_layers, heads, getattr(cfg, "num_key_value_heads", None) or heads,
                         head_dim, cfg.max_position_embeddings, eps, gated=family.gated_mlp, rotary=family.rotary,
                         activation=family.activation(cfg), norm=family.norm,
                         sliding_window=cfg.sliding_window if any(windowed) else None,
                         parallel_residual=bool(family.parallel_residual_field
                                                and getattr(cfg, family.parallel_residual_field)),
                         partial_rotary=rope is not None and rope[0].shape[-1] < head_dim)
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
        qkv = _fused_linear(*[linear(family.get(attn, n)) for n in family.qkv])
        if family.qkv_per_head:
            qkv = _blocks_from_per_head(qkv, heads, head_dim)
        blocks.append(Block(shape, norm(family.get(layer, family.norms[0])), qkv,
                            linear(family.get(attn, family.out_proj)), norm(family.get(layer, family.norms[1])),
                            _fused_linear(*[linear(family.get(layer, n)) for n in family.ffn_in]),
                            linear(family.get(layer, family.ffn_out)), *qk_norms, windowed=in_window))
    pos_embed = family.get(model, family.learned_positions) if family.learned_positions else None
    if pos_embed is not None and family.position_offset:  # a plain table from row 0 = position 0 (a view)
        pos_embed = torch.nn.Embedding.from_pretrained(pos_embed.weight[family.position_offset:], freeze=True)
    return FastDecoder(shape, embed, blocks, norm(family.get(model, family.final_norm)), model.lm_head,
                       pos_embed=pos_embed, rope_tables=rope).eval()
