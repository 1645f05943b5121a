"""Shared logic of engines that run genfast's exported step graph with past/present KV arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from genfast.runtime.onnx_export import io_names


@dataclass
class PastKVCache:
    """Past keys/values as the engine returned them, and the shared length of the rows."""

    arrays: list
    length: int


class PastKVRuntime:
    """prefill / decode / logits over ``_infer(feeds) -> [logits, *present]`` (numpy in, numpy out)."""

    name = "past-kv"

    def __init__(self, layers: int, kv_heads: int, head_dim: int) -> None:
        self.inputs, self.outputs = io_names(layers)
        self.kv_shape = (kv_heads, head_dim)
        self.device = torch.device("cpu")

    def _infer(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def _run(self, ids: torch.Tensor, start: int, past: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        ids = ids.cpu().numpy().astype(np.int64)
        batch, length = ids.shape
        positions = np.ascontiguousarray(np.broadcast_to(np.arange(start, start + length, dtype=np.int64),
                                                         (batch, length)))
        logits, *present = self._infer(dict(zip(self.inputs, [ids, positions, *past])))
        return logits, present

    def _empty_past(self, batch: int) -> list[np.ndarray]:
        return [np.zeros((batch, self.kv_shape[0], 0, self.kv_shape[1]), dtype=np.float32)
                for _ in range(len(self.inputs) - 2)]

    def prefill(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, PastKVCache]:
        logits, present = self._run(input_ids, 0, self._empty_past(input_ids.shape[0]))
        return torch.from_numpy(np.array(logits[:, -1])), PastKVCache(present, input_ids.shape[1])

    def decode(self, tokens: torch.Tensor, cache: PastKVCache) -> tuple[torch.Tensor, PastKVCache]:
        logits, present = self._run(tokens[:, None], cache.length, cache.arrays)
        return torch.from_numpy(np.array(logits[:, -1])), PastKVCache(present, cache.length + 1)

    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        logits, _ = self._run(input_ids, 0, self._empty_past(input_ids.shape[0]))
        return torch.from_numpy(np.array(logits))
