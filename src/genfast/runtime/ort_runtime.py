"""The ``onnxruntime`` runtime: genfast's exported decoder step run by ONNX Runtime on the CPU."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genfast.runtime.onnx_export import io_names


@dataclass
class OrtCache:
    """Past keys/values as ONNX Runtime returned them, and the shared length of the rows."""

    arrays: list[np.ndarray]
    length: int


class OrtRuntime:
    """Prefill / decode / logits over one ONNX graph with past/present KV tensors."""

    name = "onnxruntime"

    def __init__(self, path: Path, layers: int, kv_heads: int, head_dim: int, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs, self.outputs = io_names(layers)
        self.kv_shape = (kv_heads, head_dim)
        self.device = torch.device("cpu")
        self.path = path
        from genfast.runtime.graph_bytes import onnx_weight_bytes_per_step

        self.weight_bytes_per_step = onnx_weight_bytes_per_step(path)

    def _run(self, ids: np.ndarray, start: int, past: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        batch, length = ids.shape
        positions = np.broadcast_to(np.arange(start, start + length, dtype=np.int64), (batch, length))
        feeds = dict(zip(self.inputs, [ids, np.ascontiguousarray(positions), *past]))
        logits, *present = self.session.run(None, feeds)
        return logits, present

    def _empty_past(self, batch: int) -> list[np.ndarray]:
        return [np.zeros((batch, self.kv_shape[0], 0, self.kv_shape[1]), dtype=np.float32)
                for _ in range(len(self.inputs) - 2)]

    def prefill(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, OrtCache]:
        ids = input_ids.cpu().numpy().astype(np.int64)
        logits, present = self._run(ids, 0, self._empty_past(ids.shape[0]))
        return torch.from_numpy(logits[:, -1].copy()), OrtCache(present, ids.shape[1])

    def decode(self, tokens: torch.Tensor, cache: OrtCache) -> tuple[torch.Tensor, OrtCache]:
        ids = tokens.cpu().numpy().astype(np.int64)[:, None]
        logits, present = self._run(ids, cache.length, cache.arrays)
        return torch.from_numpy(logits[:, -1].copy()), OrtCache(present, cache.length + 1)

    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        ids = input_ids.cpu().numpy().astype(np.int64)
        logits, _ = self._run(ids, 0, self._empty_past(ids.shape[0]))
        return torch.from_numpy(logits)
