"""Structured pruning that shrinks the matrices: FFN channels and whole decoder layers.

Importance comes from a little calibration text (standard-library code, not the held-out
evaluation text), and the model's config is updated so the result saves and reloads with
transformers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genfast.compress.api import register
from genfast.errors import ConfigError
from genfast.models.families import Family, UnsupportedModelError, covered_model_types, family_of


def _family(model) -> Family:
    try:
        return family_of(model.config)
    except UnsupportedModelError:
        raise ConfigError(f"Structured pruning cannot find the layers of a "
                          f"{getattr(model.config, 'model_type', None)!r} model.",
                          f"It supports {', '.join(covered_model_types())}.") from None


def _layers(model) -> torch.nn.ModuleList:
    return _family(model).decoder_layers(model)


def _calibration_ids(model, tokenizer, tokens: int) -> torch.Tensor:
    """``tokens`` ids of standard-library code (random ids when no tokenizer was given): (1, tokens)."""
    if tokenizer is not None:
        from genfast.textdata import stdlib_text

        return torch.tensor([tokenizer(stdlib_text(20 * tokens))["input_ids"][:tokens]])
    vocab = model.get_input_embeddings().num_embeddings
    return torch.randint(0, vocab, (1, tokens), generator=torch.Generator().manual_seed(0))


@dataclass
class PruneFFN:
    fraction: float = 0.25
    """Share of each layer's FFN intermediate channels removed, in [0, 1)."""
    calibration_tokens: int = 256
    version: int = 1

    def validate(self) -> None:
        if not 0 <= self.fraction < 1:
            raise ConfigError(f"FFN prune fraction must be in [0, 1), got {self.fraction}.", "e.g. --prune ffn=0.25")


@dataclass
class PruneLayers:
    count: int = 1
    """Decoder layers removed (the ones whose output differs least from their input)."""
    calibration_tokens: int = 256
    version: int = 1

    def validate(self) -> None:
        if self.count < 0:
            raise ConfigError(f"Cannot remove {self.count} layers.", "e.g. --prune layers=1")


def _ffn_parts(layer, family: Family):
    """(weights whose output rows are channels, weight whose input columns are channels)."""
    return [family.get(layer, name) for name in family.ffn_in], family.get(layer, family.ffn_out)


def _channel_activity(model, ids: torch.Tensor, family: Family) -> list[torch.Tensor]:
    """Mean |input| of each layer's FFN output projection, per channel, on calibration ids."""
    acts, hooks = [], []
    for layer in _layers(model):
        _, down = _ffn_parts(layer, family)
        store: list[torch.Tensor] = []
        acts.append(store)
        hooks.append(down.register_forward_hook(lambda m, inp, out, s=store: s.append(inp[0].abs().mean((0, 1)))))
    try:
        with torch.no_grad():
            model(input_ids=ids.to(model.device))
    finally:
        for h in hooks:
            h.remove()
    return [s[0] for s in acts]


def _keep_rows(linear, keep: torch.Tensor) -> None:
    """Keep output channels ``keep`` of a Linear (weight rows) or Conv1D (weight columns)."""
    if isinstance(linear, torch.nn.Linear):
        linear.weight = torch.nn.Parameter(linear.weight.data[keep].clone())
        linear.out_features = len(keep)
    else:  # GPT-2 Conv1D stores (in, out)
        linear.weight = torch.nn.Parameter(linear.weight.data[:, keep].clone())
        linear.nf = len(keep)
    if linear.bias is not None:
        linear.bias = torch.nn.Parameter(linear.bias.data[keep].clone())


def _keep_inputs(linear, keep: torch.Tensor) -> None:
    """Keep input channels ``keep`` of a Linear (weight columns) or Conv1D (weight rows)."""
    if isinstance(linear, torch.nn.Linear):
        linear.weight = torch.nn.Parameter(linear.weight.data[:, keep].clone())
        linear.in_features = len(keep)
    else:
        linear.weight = torch.nn.Parameter(linear.weight.data[keep].clone())


@register(PruneFFN)
@torch.no_grad()
def prune_ffn(model, cfg: PruneFFN, tokenizer=None):
    family = _family(model)
    activity = _channel_activity(model, _calibration_ids(model, tokenizer, cfg.calibration_tokens), family)
    channels = 0 if family.conv1d else 1  # the down projection's dimension that holds the FFN channels
    width = _ffn_parts(_layers(model)[0], family)[1].weight.shape[channels]
    keep_n = width - int(round(cfg.fraction * width))
    for layer, act in zip(_layers(model), activity, strict=True):
        ups, down = _ffn_parts(layer, family)
        keep = (act * down.weight.norm(dim=1 - channels)).topk(keep_n).indices.sort().values
        for up in ups:  # a fused gate|up matrix keeps the same channels in both halves
            _keep_rows(up, torch.cat([keep, keep + width]) if family.fused_gate_up else keep)
        _keep_inputs(down, keep)
    setattr(model.config, family.ffn_width_field, keep_n)
    return model


@register(PruneLayers)
@torch.no_grad()
def prune_layers(model, cfg: PruneLayers, tokenizer=None):
    layers = _layers(model)
    if cfg.count >= len(layers):
        raise ConfigError(f"Cannot remove {cfg.count} of {len(layers)} layers.",
                          f"Remove at most {len(layers) - 1}.")
    if cfg.count == 0:
        return model
    ids = _calibration_ids(model, tokenizer, cfg.calibration_tokens).to(model.device)
    states = model(input_ids=ids, output_hidden_states=True).hidden_states  # embeddings + one per layer
    # A layer whose output points the same way as its input does little: cosine close to 1.
    change = [1 - torch.nn.functional.cosine_similarity(states[i], states[i + 1], dim=-1).mean().item()
              for i in range(len(layers))]
    drop = set(sorted(range(len(layers)), key=lambda i: change[i])[:cfg.count])
    kept = torch.nn.ModuleList(layer for i, layer in enumerate(layers) if i not in drop)
    family = _family(model)
    for new_index, layer in enumerate(kept):
        attn = family.get(layer, family.attention)
        if hasattr(attn, "layer_idx"):
            attn.layer_idx = new_index  # the KV cache is indexed by layer
    parent, name = family.layers.rsplit(".", 1)
    setattr(family.get(model, parent), name, kept)
    setattr(model.config, family.layer_count_field, len(kept))
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = [t for i, t in enumerate(model.config.layer_types) if i not in drop]
    return model


@dataclass
class PruneHeads:
    fraction: float = 0.25
    """Share of attention removed, in whole key/value groups (a KV head and the query heads that
    share it), so grouped-query attention keeps its ratio. Families whose config sets head_dim."""
    calibration_tokens: int = 256
    version: int = 1

    def validate(self) -> None:
        if not 0 <= self.fraction < 1:
            raise ConfigError(f"Head prune fraction must be in [0, 1), got {self.fraction}.", "e.g. --prune heads=0.25")


def _head_rows(groups: torch.Tensor, rep: int, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of the query heads of the kept key/value ``groups``, and of those groups' keys (or values)."""
    q_heads = (groups[:, None] * rep + torch.arange(rep)).flatten()
    q_rows = (q_heads[:, None] * head_dim + torch.arange(head_dim)).flatten()
    kv_rows = (groups[:, None] * head_dim + torch.arange(head_dim)).flatten()
    return q_rows, kv_rows


@register(PruneHeads)
@torch.no_grad()
def prune_heads(model, cfg: PruneHeads, tokenizer=None):
    family = _family(model)
    if not family.head_pruning:
        raise ConfigError(f"Head pruning does not cover {family.name} models: transformers derives their head "
                          "width from hidden_size / heads, so a model with fewer heads would not reload.",
                          "Use --prune ffn=... or layers=....")
    c = model.config
    heads = c.num_attention_heads
    kv_heads = getattr(c, "num_key_value_heads", None) or heads
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // heads
    layers = family.decoder_layers(model)
    rep = heads // kv_heads
    drop_n = int(round(cfg.fraction * kv_heads))
    if drop_n >= kv_heads:
        raise ConfigError(f"Pruning {cfg.fraction:.0%} would remove all {kv_heads} key/value groups.",
                          f"Use a fraction below {(kv_heads - 1) / kv_heads + 0.5 / kv_heads:.2f}.")
    if drop_n == 0 and cfg.fraction > 0:
        raise ConfigError(f"heads={cfg.fraction:g} of {kv_heads} key/value groups removes none: heads go in "
                          f"whole groups of {rep} query heads, so the smallest step is {1 / kv_heads:.2g}.",
                          f"Use heads={1 / kv_heads:.2g} or more, or prune ffn / layers instead.")
    if drop_n == 0:
        return model
    attns = [family.get(layer, family.attention) for layer in layers]
    outs = [family.get(a, family.out_proj) for a in attns]
    # Importance of a group: mean |input| of the output projection over its heads' channels x those columns' norms.
    acts, hooks = [], []
    for out in outs:
        store: list[torch.Tensor] = []
        acts.append(store)
        hooks.append(out.register_forward_hook(lambda m, inp, o, s=store: s.append(inp[0].abs().mean((0, 1)))))
    try:
        model(input_ids=_calibration_ids(model, tokenizer, cfg.calibration_tokens).to(model.device))
    finally:
        for h in hooks:
            h.remove()
    for attn, out, store in zip(attns, outs, acts, strict=True):
        score = (store[0] * out.weight.norm(dim=0)).view(kv_heads, rep * head_dim).sum(-1)
        q_rows, kv_rows = _head_rows(score.topk(kv_heads - drop_n).indices.sort().values, rep, head_dim)
        projections = [family.get(attn, n) for n in family.qkv]
        if len(projections) == 3:
            for projection, rows in zip(projections, (q_rows, kv_rows, kv_rows), strict=True):
                _keep_rows(projection, rows)
        else:  # one (q | k | v) matrix
            q_width, kv_width = heads * head_dim, kv_heads * head_dim
            _keep_rows(projections[0], torch.cat([q_rows, q_width + kv_rows, q_width + kv_width + kv_rows]))
        _keep_inputs(out, q_rows)
        # counts some attention modules keep from their config (Phi-3 splits its fused output by them)
        for name, value in (("num_heads", heads - drop_n * rep), ("num_key_value_heads", kv_heads - drop_n)):
            if hasattr(attn, name):
                setattr(attn, name, value)
    c.num_attention_heads, c.num_key_value_heads = heads - drop_n * rep, kv_heads - drop_n
    c.head_dim = head_dim  # no longer hidden_size / heads
    return model
