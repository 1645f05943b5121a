"""The architectures genfast's own decoder, kernels, export and pruning cover, described as data.

One ``Family`` per weight layout; the transformers ``model_type`` values that share it are listed
with it. Everything that differs between families (where the layers are, which norm, whether the
MLP is gated, rotary or learned positions, per-head q/k norms, how the config names its widths)
is read from here, never from string branches elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from genfast.errors import ConfigError


class UnsupportedModelError(ConfigError):
    """genfast's own decoder does not cover this architecture."""

    default_hint = "Use --backend hf (transformers' own forward) for this model."


@dataclass(frozen=True)
class Family:
    """What genfast needs to know about one architecture's layout."""

    name: str
    """genfast's name for the layout (also the key of the C layer-stack kernel's variants)."""
    model_types: tuple[str, ...]
    """transformers ``config.model_type`` values with this layout."""
    layers: str
    """Attribute path of the decoder layers from the CausalLM (``model.layers``)."""
    embeddings: str
    """Attribute path of the token embedding."""
    final_norm: str
    norm: str
    """``rms`` (RMSNorm computed in fp32) or ``layer`` (LayerNorm with bias)."""
    norms: tuple[str, str]
    """The layer's pre-attention and pre-MLP norm attributes."""
    attention: str
    """The layer's attention module attribute."""
    qkv: tuple[str, ...]
    """Query/key/value projections inside the attention module (one name when already fused)."""
    out_proj: str
    ffn_in: tuple[str, ...]
    """Projections whose output rows are FFN channels (gate first when gated)."""
    ffn_out: str
    gated_mlp: bool
    rotary: bool
    learned_positions: str | None
    """Attribute path of a learned position embedding, if any."""
    activation_field: str
    """The config field naming the MLP activation."""
    eps_field: str | None
    """The config field holding the RMSNorms' epsilon (LayerNorms carry their own)."""
    ffn_width_field: str
    layer_count_field: str
    rotary_emb: str | None = None
    """Attribute path of the model's own rotary-embedding module (its variant and scaling are used as is)."""
    conv1d: bool = False
    """Weights stored (in, out) as transformers' Conv1D (GPT-2)."""
    qk_norm: bool = False
    """Per-head RMSNorm of queries and keys before the rotary embedding (Qwen3)."""
    fused_gate_up: bool = False
    """The gated MLP's gate and up projections are one matrix, gate rows first (Phi-3)."""
    qkv_grouped: bool = False
    """A fused qkv matrix whose rows are grouped per key/value head: that group's queries, its key,
    its value, then the next group (GPT-NeoX: one query per group; Falcon)."""
    parallel_residual: bool = False
    """x + attn(norm1(x)) + mlp(norm2(x)) instead of two residual steps, always (GPT-J)."""
    parallel_residual_fields: tuple[str, ...] = ()
    """Config flags any of which turns the parallel residual on (GPT-NeoX, Falcon)."""
    post_norms: tuple[str, str] | None = None
    """Norms of the attention's and the MLP's outputs before their residual adds (Gemma 2/3)."""
    attn_scale_field: str | None = None
    """Config field q whose q ** -0.5 scales attention scores instead of head_dim ** -0.5 (Gemma 2/3)."""
    rotary_interleaved: bool = False
    """Rotary pairs are adjacent dimensions (GPT-J) and the model's rotary module returns (sin, cos)
    per pair, instead of (cos, sin) over rotate-half pairs."""
    rope_per_layer_type: bool = False
    """The rotary module takes the layer type: sliding-window layers rotate with another base (Gemma 3)."""
    kv_heads_attr: str | None = None
    """Attribute of the attention module holding the key/value head count, where the config alone
    does not say it (Falcon's multi-query layout)."""
    norm_weight_offset: float = 0.0
    """RMSNorm multiplies by (offset + weight): 1 for Gemma."""
    position_offset: int = 0
    """Learned position embeddings start at this row (OPT's 2)."""
    head_pruning: bool = True
    """Whole heads can be removed: transformers reads the head width from ``config.head_dim`` (not
    hidden_size / heads), so the smaller model reloads."""

    def get(self, root: Any, path: str) -> Any:
        """``root``'s attribute at the dotted ``path``; ``a|b`` takes the first of the two that exists."""
        if "|" in path:
            options = path.split("|")
            return self.get(root, next((p for p in options if self.has(root, p)), options[-1]))
        for part in path.split("."):
            root = getattr(root, part)
        return root

    def has(self, root: Any, path: str) -> bool:
        try:
            self.get(root, path)
        except AttributeError:
            return False
        return True

    def decoder_layers(self, model: Any):
        return self.get(model, self.layers)

    def activation(self, config: Any) -> str:
        return getattr(config, self.activation_field)

    def uses_parallel_residual(self, config: Any) -> bool:
        return self.parallel_residual or any(getattr(config, f, False) for f in self.parallel_residual_fields)


LLAMA = Family(
    name="llama", model_types=("llama", "qwen2", "mistral"), layers="model.layers",
    embeddings="model.embed_tokens", final_norm="model.norm", norm="rms",
    norms=("input_layernorm", "post_attention_layernorm"), attention="self_attn",
    qkv=("q_proj", "k_proj", "v_proj"), out_proj="o_proj", ffn_in=("mlp.gate_proj", "mlp.up_proj"),
    ffn_out="mlp.down_proj", gated_mlp=True, rotary=True, learned_positions=None, activation_field="hidden_act",
    eps_field="rms_norm_eps", rotary_emb="model.rotary_emb", ffn_width_field="intermediate_size",
    layer_count_field="num_hidden_layers")

QWEN3 = Family(**{**LLAMA.__dict__, "name": "qwen3", "model_types": ("qwen3",), "qk_norm": True})

PHI3 = Family(**{**LLAMA.__dict__, "name": "phi3", "model_types": ("phi3",), "qkv": ("qkv_proj",),
                 "ffn_in": ("mlp.gate_up_proj",), "fused_gate_up": True})

GPT_NEOX = Family(
    name="gpt_neox", model_types=("gpt_neox",), layers="gpt_neox.layers", embeddings="gpt_neox.embed_in",
    final_norm="gpt_neox.final_layer_norm", norm="layer", norms=("input_layernorm", "post_attention_layernorm"),
    attention="attention", qkv=("query_key_value",), out_proj="dense", ffn_in=("mlp.dense_h_to_4h",),
    ffn_out="mlp.dense_4h_to_h", gated_mlp=False, rotary=True, learned_positions=None, activation_field="hidden_act",
    eps_field="layer_norm_eps", rotary_emb="gpt_neox.rotary_emb", ffn_width_field="intermediate_size",
    layer_count_field="num_hidden_layers", qkv_grouped=True, parallel_residual_fields=("use_parallel_residual",),
    head_pruning=False)

GEMMA = Family(**{**LLAMA.__dict__, "name": "gemma", "model_types": ("gemma",), "norm_weight_offset": 1.0})

OPT = Family(
    name="opt", model_types=("opt",), layers="model.decoder.layers", embeddings="model.decoder.embed_tokens",
    final_norm="model.decoder.final_layer_norm", norm="layer", norms=("self_attn_layer_norm", "final_layer_norm"),
    attention="self_attn", qkv=("q_proj", "k_proj", "v_proj"), out_proj="out_proj", ffn_in=("fc1",), ffn_out="fc2",
    gated_mlp=False, rotary=False, learned_positions="model.decoder.embed_positions", position_offset=2,
    activation_field="activation_function", eps_field=None, ffn_width_field="ffn_dim",
    layer_count_field="num_hidden_layers", head_pruning=False)

GPT2 = Family(
    name="gpt2", model_types=("gpt2",), layers="transformer.h", embeddings="transformer.wte",
    final_norm="transformer.ln_f", norm="layer", norms=("ln_1", "ln_2"), attention="attn", qkv=("c_attn",),
    out_proj="c_proj", ffn_in=("mlp.c_fc",), ffn_out="mlp.c_proj", gated_mlp=False, rotary=False,
    learned_positions="transformer.wpe", activation_field="activation_function", eps_field="layer_norm_epsilon",
    ffn_width_field="n_inner",
    layer_count_field="n_layer", conv1d=True, head_pruning=False)

GEMMA2 = Family(**{**GEMMA.__dict__, "name": "gemma2", "model_types": ("gemma2",),
                   "norms": ("input_layernorm", "pre_feedforward_layernorm"),
                   "post_norms": ("post_attention_layernorm", "post_feedforward_layernorm"),
                   "attn_scale_field": "query_pre_attn_scalar", "activation_field": "hidden_activation"})

GEMMA3 = Family(**{**GEMMA2.__dict__, "name": "gemma3", "model_types": ("gemma3_text",), "qk_norm": True,
                   "rope_per_layer_type": True})

FALCON = Family(
    name="falcon", model_types=("falcon",), layers="transformer.h", embeddings="transformer.word_embeddings",
    final_norm="transformer.ln_f", norm="layer",
    norms=("ln_attn|input_layernorm", "ln_mlp|post_attention_layernorm|input_layernorm"),
    attention="self_attention", qkv=("query_key_value",), out_proj="dense", ffn_in=("mlp.dense_h_to_4h",),
    ffn_out="mlp.dense_4h_to_h", gated_mlp=False, rotary=True, learned_positions=None, activation_field="activation",
    eps_field=None, rotary_emb="transformer.rotary_emb", ffn_width_field="ffn_hidden_size",
    layer_count_field="num_hidden_layers", qkv_grouped=True,
    parallel_residual_fields=("new_decoder_architecture", "parallel_attn"), kv_heads_attr="num_kv_heads",
    head_pruning=False)

GPTJ = Family(
    name="gptj", model_types=("gptj",), layers="transformer.h", embeddings="transformer.wte",
    final_norm="transformer.ln_f", norm="layer", norms=("ln_1", "ln_1"), attention="attn",
    qkv=("q_proj", "k_proj", "v_proj"), out_proj="out_proj", ffn_in=("mlp.fc_in",), ffn_out="mlp.fc_out",
    gated_mlp=False, rotary=True, learned_positions=None, activation_field="activation_function",
    eps_field=None, rotary_emb="transformer.rotary_emb", ffn_width_field="n_inner", layer_count_field="n_layer",
    rotary_interleaved=True, parallel_residual=True, head_pruning=False)

FAMILIES = (LLAMA, QWEN3, PHI3, GEMMA, GEMMA2, GEMMA3, GPT_NEOX, FALCON, GPTJ, OPT, GPT2)

ACTIVATIONS = ("silu", "swish", "gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu")
"""MLP activations genfast's decoder computes (through transformers' own ACT2FN)."""


def covered_model_types() -> tuple[str, ...]:
    return tuple(t for f in FAMILIES for t in f.model_types)


def family_of(config: Any) -> Family:
    """The family of a transformers config; UnsupportedModelError names what is covered."""
    model_type = getattr(config, "model_type", None)
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    raise UnsupportedModelError(f"genfast's decoder does not cover {model_type!r} models yet "
                                f"(it covers {', '.join(covered_model_types())}).")
