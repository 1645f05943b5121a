"""Export genfast's decoder to ONNX with the KV cache as explicit past / present tensors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from genfast.errors import GenfastError
from genfast.runtime.decoder import FastDecoder, attention_masks


class ExportError(GenfastError):
    """The model could not be exported; the original files are untouched."""

    default_hint = "Run with --debug for the exporter's full report, or use --backend torch."


class KVStep(torch.nn.Module):
    """One forward step: (input_ids, position_ids, past k/v per layer) -> (logits, present k/v).

    ``present`` = ``past`` with this step's keys/values appended, so one graph serves prefill
    (empty past) and decode (one token). Rows of a batch share one length.
    """

    def __init__(self, decoder: FastDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, *past: torch.Tensor):
        d = self.decoder
        x, rope = d.embed_tokens(input_ids, position_ids)
        total = past[0].shape[2] + input_ids.shape[1]
        mask, window_mask = attention_masks(total, position_ids, d.shape.sliding_window)
        present = []
        for i, block in enumerate(d.blocks):
            q, k, v = block.qkv_heads(x, d.block_rope(block, rope))
            keys = torch.cat([past[2 * i], k], dim=2)
            values = torch.cat([past[2 * i + 1], v], dim=2)
            # ONNX has no grouped-query attention op: repeat each key/value head for its query heads.
            rep = d.shape.heads // d.shape.kv_heads
            x = block.attend_and_mlp(x, q, keys.repeat_interleave(rep, dim=1), values.repeat_interleave(rep, dim=1),
                                     window_mask if block.windowed else mask, grouped=False)
            present += [keys, values]
        return (d.logits(x), *present)


def io_names(layers: int) -> tuple[list[str], list[str]]:
    past = [f"past.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    present = [f"present.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    return ["input_ids", "position_ids", *past], ["logits", *present]


def step_inputs(ids: torch.Tensor, start: int) -> tuple[np.ndarray, np.ndarray]:
    """The exported graph's ``input_ids`` and ``position_ids`` for ``ids`` (batch, T) placed from
    position ``start``, as contiguous int64 arrays."""
    ids = np.ascontiguousarray(ids.cpu().numpy().astype(np.int64))
    batch, length = ids.shape
    positions = np.broadcast_to(np.arange(start, start + length, dtype=np.int64), (batch, length))
    return ids, np.ascontiguousarray(positions)


def export_onnx(decoder: FastDecoder, path: Path) -> Path:
    """Write ``path`` (ONNX, dynamic batch / sequence / past length); raise ExportError on failure."""
    s = decoder.shape
    step = KVStep(decoder).eval()
    batch, seq, past_len = 2, 3, 4  # example sizes > 1 so the exporter keeps them symbolic
    p = decoder.embed.weight
    ids = torch.ones(batch, seq, dtype=torch.long, device=p.device)
    pos = torch.arange(past_len, past_len + seq, device=p.device).expand(batch, seq)
    past = [torch.zeros(batch, s.kv_heads, past_len, s.head_dim, dtype=p.dtype, device=p.device)
            for _ in range(2 * s.layers)]
    inputs, outputs = io_names(s.layers)
    axes = {"input_ids": {0: "batch", 1: "seq"}, "position_ids": {0: "batch", 1: "seq"},
            "logits": {0: "batch", 1: "seq"}}
    axes.update({n: {0: "batch", 2: "past"} for n in inputs[2:]})
    axes.update({n: {0: "batch", 2: "total"} for n in outputs[1:]})
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(step, (ids, pos, *past), str(path), input_names=inputs, output_names=outputs,
                              dynamic_axes=axes, dynamo=False, opset_version=17)
    except Exception as exc:  # noqa: BLE001 - exporters fail in many ways; name the first line
        path.unlink(missing_ok=True)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"ONNX export failed: {first}") from exc
    return path
