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


class Block(torch.nn.Module):
    """One decoder layer: norm -> attention -> residual -> norm -> MLP -> residual."""

    def __init__(self, shape: DecoderShape, norm1: torch.nn.Module, qkv: torch.nn.Linear, out: torch.nn.Linear,
                 norm2: torch.nn.Module, up: torch.nn.Linear, down: torch.nn.Linear,
                 q_norm: torch.nn.Module | None = None, k_norm: torch.nn.Module | None = None,
                 windowed: bool = False) -> None:
        super().__init__()
        from transformers.activations import ACT2FN

        self.shape = shape
        self.windowed = windowed
        """Attends through the sliding window (the decoder passes this block the window's mask)."""
        self.norm1, self.qkv, self.out, self.norm2, self.up, self.down = norm1, qkv, out, norm2, up, down
        self.q_norm, self.k_norm = q_norm, k_norm
        self.act = ACT2FN[shape.activation]

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        if self.shape.gated:
            gate, up = self.up(x).chunk(2, dim=-1)  # fused gate|up projection
            return self.down(self.act(gate) * up)
        return self.down(self.act(self.up(x)))

    def qkv_heads(self, x: torch.Tensor, rope: tuple | None):
        """Projected, rotated q (batch, heads, T, head_dim) and k, v (batch, kv_heads, T, head_dim)."""
        s = self.shape
        b, t, _ = x.shape
        q, k, v = self.qkv(self.norm1(x)).split([s.heads * s.head_dim, s.kv_heads * s.head_dim,
                                                s.kv_heads * s.head_dim], dim=-1)
        q = q.view(b, t, s.heads, s.head_dim)
        k = k.view(b, t, s.kv_heads, s.head_dim)
        if self.q_norm is not None:  # per-head norms before the rotary embedding (Qwen3)
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        v = v.view(b, t, s.kv_heads, s.head_dim).transpose(1, 2)
        if rope is not None:
            q, k = apply_rope(q, rope), apply_rope(k, rope)
        return q, k, v

    def attend_and_mlp(self, x: torch.Tensor, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                       mask: torch.Tensor | None, grouped: bool = True) -> torch.Tensor:
        """Attention over keys/values (grouped: kv_heads of them; else already one per query head), MLP."""
        s = self.shape
        attn = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, is_causal=mask is None,
                                              enable_gqa=grouped and s.kv_heads != s.heads)
        return self.project_and_mlp(x, attn)

    def project_and_mlp(self, x: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        """Output projection of the heads' results (batch, heads, T, head_dim), residual, MLP."""
        b, t, _ = x.shape
        attended = self.out(attn.transpose(1, 2).reshape(b, t, self.shape.heads * self.shape.head_dim))
        if self.shape.parallel_residual:
            return x + attended + self.mlp(self.norm2(x))
        x = x + attended
        return x + self.mlp(self.norm2(x))

    def forward(self, x: torch.Tensor, layer: int, positions: torch.Tensor, rope: tuple | None,
                mask: torch.Tensor | None, cache: StaticKVCache, kv_len: int,
                filled: torch.Tensor | None = None) -> torch.Tensor:
        """``filled``: each row's filled cache slots after this write, given for one-token steps."""
        q, k, v = self.qkv_heads(x, rope)
        cache.write(layer, positions, k, v)
        keys, values = cache.k[layer], cache.v[layer]
        if filled is not None and not self.windowed and decode_attention.supports(q, keys, values):
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


def apply_rope(x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotary embedding in transformers' rotate-half convention; cos/sin are (batch, 1, T, rotary_dim).

    A rotary_dim below head_dim (partial rotary: Phi, GPT-NeoX) rotates only the first dimensions."""
    cos, sin = rope
    if cos.shape[-1] < x.shape[-1]:
        rotary = cos.shape[-1]
        return torch.cat((apply_rope(x[..., :rotary], rope), x[..., rotary:]), dim=-1)
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class FastDecoder(torch.nn.Module):
    """Embedding -> blocks -> final norm -> LM head, reading and writing a StaticKVCache."""

    def __init__(self, shape: DecoderShape, embed: torch.nn.Embedding, blocks: list[Block],
                 norm: torch.nn.Module, head: torch.nn.Linear, pos_embed: torch.nn.Embedding | None = None,
                 rope_tables: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        super().__init__()
        self.shape = shape
        self.embed, self.blocks, self.norm, self.head, self.pos_embed = (
            embed, torch.nn.ModuleList(blocks), norm, head, pos_embed)
        if rope_tables is not None:
            # (max_positions, head_dim)
            self.register_buffer("rope_cos", rope_tables[0], persistent=False)
            self.register_buffer("rope_sin", rope_tables[1], persistent=False)
        # plain Linear layers decode through genfast's fp32 GEMV (quantized ones have kernels of their own)
        plain = [(parent, name, child) for parent in self.modules() for name, child in parent.named_children()
                 if type(child) is torch.nn.Linear]
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
        """Token (+ learned position) embeddings and the RoPE cos/sin (batch, 1, T, head_dim) if used."""
        x = self.embed(tokens)
        if self.pos_embed is not None:
            x = x + self.pos_embed(positions)
        rope = None
        if self.shape.rotary:
            rope = (self.rope_cos[positions][:, None], self.rope_sin[positions][:, None])
        return x, rope

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
                x = block(x, i, positions, rope, window_mask if block.windowed else mask, cache, kv_len, filled)
        if last_only:
            x = x[:, -1:]
        return self.head(self.norm(x))
