"""genfast's own decoder forward for the families in ``models.families``, over a static KV cache.

The weights are the transformers model's own tensors (no copy except fused projections);
the forward is a few named ops per layer, with positions given per row so sequences of
different lengths can share a batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genfast.kernels import decode_attention, decode_layer
from genfast.kernels.fp32_gemv import GemvLinear
from genfast.runtime.kv_cache import StaticKVCache


@dataclass(frozen=True)
class DecoderShape:
    family: str
    """The ``models.families`` layout name (llama, qwen3, gpt2)."""
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    max_positions: int
    eps: float
    gated: bool = True
    """MLP is down(act(gate(x)) * up(x)) with gate|up fused; else down(act(up(x)))."""
    rotary: bool = True
    activation: str = "silu"
    """A transformers ACT2FN name."""
    norm: str = "rms"
    """``rms`` or ``layer``."""
    parallel_residual: bool = False
    """x + attn(norm1(x)) + mlp(norm2(x)) (GPT-NeoX) instead of two residual steps."""
    partial_rotary: bool = False
    """The rotary embedding turns only the first dimensions of each head (Phi, GPT-NeoX)."""
    sliding_window: int | None = None
    """Windowed layers attend to the last ``sliding_window`` positions only (Mistral; some Qwen2 layers)."""
    qkv_grouped: bool = False
    """The fused qkv output is grouped per key/value head (its queries, key, value: GPT-NeoX, Falcon)."""
    rotary_interleaved: bool = False
    """Rotary pairs are adjacent dimensions (GPT-J) rather than the two halves."""
    attn_scale: float | None = None
    """Attention score scale where it is not head_dim ** -0.5 (Gemma 2/3)."""
    attn_softcap: float | None = None
    """Scores become cap * tanh(score / cap) before the softmax (Gemma 2)."""
    logit_softcap: float | None = None
    """Logits become cap * tanh(logit / cap) (Gemma 2)."""

    @property
    def plain_attention(self) -> bool:
        """Softmax(q k^T / sqrt(head_dim)) v: what genfast's attention kernels compute."""
        return self.attn_scale is None and self.attn_softcap is None


TANH_GELUS = ("gelu_new", "gelu_fast", "gelu_pytorch_tanh")
"""transformers' names of one function, GELU's tanh approximation: their composed formulas ran
7x slower than PyTorch's one kernel (128 x 3072 activations: 1.8 vs 0.23 ms, same values to 2e-7)."""


def _tanh_gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


class Block(torch.nn.Module):
    """One decoder layer: norm -> attention -> residual -> norm -> MLP -> residual."""

    def __init__(self, shape: DecoderShape, norm1: torch.nn.Module, qkv: torch.nn.Linear, out: torch.nn.Linear,
                 norm2: torch.nn.Module, up: torch.nn.Linear, down: torch.nn.Linear,
                 q_norm: torch.nn.Module | None = None, k_norm: torch.nn.Module | None = None,
                 windowed: bool = False, post_norms: tuple[torch.nn.Module, torch.nn.Module] | None = None) -> None:
        super().__init__()
        from transformers.activations import ACT2FN

        self.shape = shape
        self.windowed = windowed
        """Attends through the sliding window (the decoder passes this block the window's mask)."""
        self.norm1, self.qkv, self.out, self.norm2, self.up, self.down = norm1, qkv, out, norm2, up, down
        self.q_norm, self.k_norm = q_norm, k_norm
        self.post_norms = None if post_norms is None else torch.nn.ModuleList(post_norms)
        """Norms of the attention's and the MLP's outputs before the residual adds (Gemma 2/3)."""
        self.act = _tanh_gelu if shape.activation in TANH_GELUS else ACT2FN[shape.activation]

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        if self.shape.gated:
            gate, up = self.up(x).chunk(2, dim=-1)  # fused gate|up projection
            return self.down(self.act(gate) * up)
        return self.down(self.act(self.up(x)))

    def qkv_heads(self, x: torch.Tensor, rope: tuple | None):
        """Projected, rotated q (batch, heads, T, head_dim) and k, v (batch, kv_heads, T, head_dim)."""
        s = self.shape
        b, t, _ = x.shape
        qkv = self.qkv(self.norm1(x))
        if s.qkv_grouped:  # (group, its queries | key | value, head_dim)
            per_group = s.heads // s.kv_heads
            qkv = qkv.view(b, t, s.kv_heads, per_group + 2, s.head_dim)
            q = qkv[:, :, :, :per_group].reshape(b, t, s.heads, s.head_dim)
            k, v = qkv[:, :, :, per_group], qkv[:, :, :, per_group + 1]
        else:
            q, k, v = qkv.split([s.heads * s.head_dim, s.kv_heads * s.head_dim, s.kv_heads * s.head_dim], dim=-1)
            q = q.view(b, t, s.heads, s.head_dim)
            k = k.view(b, t, s.kv_heads, s.head_dim)
        if self.q_norm is not None:  # per-head norms before the rotary embedding (Qwen3)
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        v = v.view(b, t, s.kv_heads, s.head_dim).transpose(1, 2)
        if rope is not None:
            q, k = apply_rope(q, rope, s.rotary_interleaved), apply_rope(k, rope, s.rotary_interleaved)
        return q, k, v

    def attend_and_mlp(self, x: torch.Tensor, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                       mask: torch.Tensor | None, grouped: bool = True) -> torch.Tensor:
        """Attention over keys/values (grouped: kv_heads of them; else already one per query head), MLP."""
        s = self.shape
        if s.attn_softcap is not None:
            attn = softcapped_attention(q, keys, values, mask, s.attn_scale or s.head_dim ** -0.5, s.attn_softcap)
        else:
            attn = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, is_causal=mask is None,
                                                  enable_gqa=grouped and s.kv_heads != s.heads, scale=s.attn_scale)
        return self.project_and_mlp(x, attn)

    def project_and_mlp(self, x: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        """Output projection of the heads' results (batch, heads, T, head_dim), residual, MLP."""
        b, t, _ = x.shape
        attended = self.out(attn.transpose(1, 2).reshape(b, t, self.shape.heads * self.shape.head_dim))
        post_attn, post_mlp = self.post_norms if self.post_norms is not None else (None, None)
        if post_attn is not None:
            attended = post_attn(attended)
        if self.shape.parallel_residual:
            return x + attended + self.mlp(self.norm2(x))
        x = x + attended
        mlp = self.mlp(self.norm2(x))
        return x + (mlp if post_mlp is None else post_mlp(mlp))

    def forward(self, x: torch.Tensor, layer: int, positions: torch.Tensor, rope: tuple | None,
                mask: torch.Tensor | None, cache: StaticKVCache, kv_len: int,
                filled: torch.Tensor | None = None) -> torch.Tensor:
        """``filled``: each row's filled cache slots after this write, given for one-token steps."""
        q, k, v = self.qkv_heads(x, rope)
        cache.write(layer, positions, k, v)
        keys, values = cache.k[layer], cache.v[layer]
        if (filled is not None and not self.windowed and self.shape.plain_attention
                and decode_attention.supports(q, keys, values)):
            # each row reads its own slots
            return self.project_and_mlp(x, decode_attention.decode_attention(q, keys, values, filled))
        return self.attend_and_mlp(x, q, keys[:, :, :kv_len], values[:, :, :kv_len], mask)


def attention_masks(kv_len: int, positions: torch.Tensor,
                    window: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(batch, 1, T, kv_len) masks: key slot j is visible to a query at position p when j <= p, and in
    windowed layers also when p - j < window (None without a window)."""
    slots = torch.arange(kv_len, device=positions.device)[None, None, None, :]
    causal = slots <= positions[:, None, :, None]
    return causal, (causal & (slots > positions[:, None, :, None] - window)) if window else None


def softcapped_attention(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None,
                         scale: float, cap: float) -> torch.Tensor:
    """Attention with scores cap * tanh(score / cap) (no fused kernel has it); keys/values may have
    fewer heads than q (grouped), mask (batch, 1, T, S) or None for causal from slot 0."""
    rep = q.shape[1] // keys.shape[1]
    if rep > 1:
        keys, values = keys.repeat_interleave(rep, dim=1), values.repeat_interleave(rep, dim=1)
    scores = torch.tanh(q @ keys.transpose(-1, -2) * (scale / cap)) * cap  # (batch, heads, T, S)
    if mask is None:
        t, s = scores.shape[-2:]
        mask = torch.ones(t, s, dtype=torch.bool, device=q.device).tril(s - t)
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores.float(), dim=-1).to(values.dtype) @ values


def apply_rope(x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], interleaved: bool = False) -> torch.Tensor:
    """Rotary embedding; cos/sin are (batch, 1, T, rotary_dim). Pairs are the two halves
    (transformers' rotate-half) or, ``interleaved``, adjacent dimensions (GPT-J).

    A rotary_dim below head_dim (partial rotary: Phi, GPT-NeoX, GPT-J) rotates only the first dimensions."""
    cos, sin = rope
    if cos.shape[-1] < x.shape[-1]:
        rotary = cos.shape[-1]
        return torch.cat((apply_rope(x[..., :rotary], rope, interleaved), x[..., rotary:]), dim=-1)
    if interleaved:
        rotated = torch.stack((-x[..., 1::2], x[..., ::2]), dim=-1).flatten(-2)
    else:
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class FastDecoder(torch.nn.Module):
    """Embedding -> blocks -> final norm -> LM head, reading and writing a StaticKVCache."""

    def __init__(self, shape: DecoderShape, embed: torch.nn.Embedding, blocks: list[Block],
                 norm: torch.nn.Module, head: torch.nn.Linear, pos_embed: torch.nn.Embedding | None = None,
                 rope_tables: tuple[torch.Tensor, torch.Tensor] | None = None,
                 local_rope_tables: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        super().__init__()
        self.shape = shape
        self.embed, self.blocks, self.norm, self.head, self.pos_embed = (
            embed, torch.nn.ModuleList(blocks), norm, head, pos_embed)
        if rope_tables is not None:
            # (max_positions, head_dim)
            self.register_buffer("rope_cos", rope_tables[0], persistent=False)
            self.register_buffer("rope_sin", rope_tables[1], persistent=False)
        self.local_rope = local_rope_tables is not None
        """Sliding-window layers rotate with tables of their own (Gemma 3's local base)."""
        if local_rope_tables is not None:
            self.register_buffer("local_rope_cos", local_rope_tables[0], persistent=False)
            self.register_buffer("local_rope_sin", local_rope_tables[1], persistent=False)
        # plain Linear layers decode through genfast's fp32 GEMV (quantized ones have kernels of their own)
        # (Linear subclasses such as Falcon's only restate Linear's math)
        plain = [(parent, name, child) for parent in self.modules() for name, child in parent.named_children()
                 if isinstance(child, torch.nn.Linear) and not isinstance(child, GemvLinear)]
        for parent, name, child in plain:
            setattr(parent, name, GemvLinear.sharing(child))
        # the modules are fixed from here on: decode steps run the whole stack as one operator where it covers them
        self.native_plans = decode_layer.plan_layers(self, self.blocks)

    def new_cache(self, batch: int, max_len: int | None = None) -> StaticKVCache:
        s = self.shape
        p = self.embed.weight
        return StaticKVCache.allocate(s.layers, batch, s.kv_heads, max_len or s.max_positions, s.head_dim, p.dtype,
                                      p.device)

    def embed_tokens(self, tokens: torch.Tensor, positions: torch.Tensor):
        """Token (+ learned position) embeddings and the RoPE cos/sin (batch, 1, T, head_dim) if used:
        one pair, or (global, local) pairs when windowed layers have their own."""
        x = self.embed(tokens)
        if self.pos_embed is not None:
            x = x + self.pos_embed(positions)
        rope = None
        if self.shape.rotary:
            rope = (self.rope_cos[positions][:, None], self.rope_sin[positions][:, None])
            if self.local_rope:
                rope = (rope, (self.local_rope_cos[positions][:, None], self.local_rope_sin[positions][:, None]))
        return x, rope

    def block_rope(self, block: Block, rope):
        """The rotary tables ``block`` uses, out of what :meth:`embed_tokens` returned."""
        return rope[1 if block.windowed else 0] if self.local_rope else rope

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Final norm, LM head (and the logit soft-cap where the model has one)."""
        logits = self.head(self.norm(x))
        cap = self.shape.logit_softcap
        return logits if cap is None else torch.tanh(logits / cap) * cap

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor, cache: StaticKVCache, kv_len: int,
                causal_from_zero: bool = False, last_only: bool = True) -> torch.Tensor:
        """Logits for ``tokens`` (batch, T) at ``positions`` (batch, T); fills the cache.

        ``kv_len`` is how many cache slots attention reads (the longest row after this write).
        ``causal_from_zero`` says every row starts at position 0 with an empty cache, so plain
        causal attention over the new tokens is exact and no mask is built.
        """
        x, rope = self.embed_tokens(tokens, positions)
        if self.native_plans is not None and decode_layer.supports(x, cache):
            x = decode_layer.decode_layers(x, positions, rope, cache, self.native_plans)
        else:
            mask = window_mask = None  # causal_from_zero: SDPA's own causal attention is exact
            if not causal_from_zero or self.shape.sliding_window:
                mask, window_mask = attention_masks(kv_len, positions, self.shape.sliding_window)
                mask = None if causal_from_zero else mask
            filled = positions[:, 0] + 1 if tokens.shape[1] == 1 else None  # once per step, not per layer
            for i, block in enumerate(self.blocks):
                x = block(x, i, positions, self.block_rope(block, rope), window_mask if block.windowed else mask,
                          cache, kv_len, filled)
        if last_only:
            x = x[:, -1:]
        return self.logits(x)
