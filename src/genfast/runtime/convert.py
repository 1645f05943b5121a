"""Build a FastDecoder from a transformers causal LM (Llama family or GPT-2)."""

from __future__ import annotations

import torch

from genfast.compress.quantize.layers import QuantizedLinear
from genfast.errors import ConfigError
from genfast.runtime.decoder import Block, DecoderShape, FastDecoder

LLAMA_FAMILY = ("llama", "qwen2", "mistral", "qwen3")


class UnsupportedModelError(ConfigError):
    """genfast's own decoder does not cover this architecture."""

    default_hint = "Use --backend hf (transformers' own forward) for this model."


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


def _llama(model) -> FastDecoder:
    cfg, inner = model.config, model.model
    window = getattr(cfg, "sliding_window", None)
    if getattr(cfg, "use_sliding_window", window is not None) and window and window < cfg.max_position_embeddings:
        raise UnsupportedModelError(f"Sliding-window attention ({window} tokens) is not supported by genfast's decoder.")
    attn0 = inner.layers[0].self_attn
    heads = cfg.num_attention_heads
    head_dim = attn0.q_proj.out_features // heads
    shape = DecoderShape("llama", cfg.num_hidden_layers, heads, getattr(cfg, "num_key_value_heads", heads),
                         head_dim, cfg.max_position_embeddings, cfg.rms_norm_eps)
    if hasattr(attn0, "q_norm"):
        raise UnsupportedModelError("Per-head query/key norms (Qwen3-style) are not supported by genfast's decoder.")
    blocks = []
    for layer in inner.layers:
        a, m = layer.self_attn, layer.mlp
        blocks.append(Block(shape, RMSNorm(layer.input_layernorm.weight, shape.eps),
                            _fused_linear(a.q_proj, a.k_proj, a.v_proj), a.o_proj,
                            RMSNorm(layer.post_attention_layernorm.weight, shape.eps),
                            _fused_linear(m.gate_proj, m.up_proj), m.down_proj))
    with torch.no_grad():
        probe = inner.embed_tokens.weight[:1, None]
        positions = torch.arange(shape.max_positions, device=probe.device)[None]
        cos, sin = inner.rotary_emb(probe, positions)  # the model's own RoPE variant and scaling
    return FastDecoder(shape, inner.embed_tokens, blocks, RMSNorm(inner.norm.weight, shape.eps), model.lm_head,
                       rope_tables=(cos[0].to(probe.dtype), sin[0].to(probe.dtype)))


def _gpt2(model) -> FastDecoder:
    cfg, inner = model.config, model.transformer
    if cfg.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
        raise UnsupportedModelError(f"GPT-2 activation {cfg.activation_function!r} is not supported.")
    if cfg.scale_attn_by_inverse_layer_idx or cfg.reorder_and_upcast_attn or not cfg.scale_attn_weights:
        raise UnsupportedModelError("This GPT-2 variant's attention scaling is not supported.")
    shape = DecoderShape("gpt2", cfg.n_layer, cfg.n_head, cfg.n_head, cfg.n_embd // cfg.n_head, cfg.n_positions,
                         cfg.layer_norm_epsilon)
    blocks = [Block(shape, h.ln_1, _linear_from_conv1d(h.attn.c_attn), _linear_from_conv1d(h.attn.c_proj),
                    h.ln_2, _linear_from_conv1d(h.mlp.c_fc), _linear_from_conv1d(h.mlp.c_proj)) for h in inner.h]
    return FastDecoder(shape, inner.wte, blocks, inner.ln_f, model.lm_head, pos_embed=inner.wpe)


def to_fast_decoder(model: torch.nn.Module) -> FastDecoder:
    """genfast's decoder over ``model``'s weights; UnsupportedModelError names what is missing."""
    model_type = getattr(model.config, "model_type", None)
    if model_type in LLAMA_FAMILY:
        return _llama(model).eval()
    if model_type == "gpt2":
        return _gpt2(model).eval()
    raise UnsupportedModelError(f"genfast's decoder does not cover {model_type!r} models yet "
                                f"(it covers {', '.join((*LLAMA_FAMILY, 'gpt2'))}).")
