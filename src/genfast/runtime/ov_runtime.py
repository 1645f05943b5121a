"""The ``openvino`` runtime: genfast's exported decoder step compiled by OpenVINO for the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genfast.runtime.onnx_export import io_names
from genfast.runtime.ort_runtime import OrtCache


class OpenVINORuntime:
    """Prefill / decode / logits over one OpenVINO model with past/present KV inputs."""

    name = "openvino"

    def __init__(self, model, layers: int, kv_heads: int, head_dim: int, threads: int | None = None,
                 weight_bytes: int | None = None) -> None:
        import openvino as ov

        config = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = ov.Core().compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.inputs, self.outputs = io_names(layers)
        self.kv_shape = (kv_heads, head_dim)
        self.device = torch.device("cpu")
        self.weight_bytes_per_step = weight_bytes

    def _run(self, ids: np.ndarray, start: int, past: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        batch, length = ids.shape
        positions = np.ascontiguousarray(np.broadcast_to(np.arange(start, start + length, dtype=np.int64),
                                                         (batch, length)))
        result = self.request.infer(dict(zip(self.inputs, [ids, positions, *past])))
        outs = [result[self.compiled.output(name)] for name in self.outputs]
        return outs[0], [np.array(o) for o in outs[1:]]

    def _empty_past(self, batch: int) -> list[np.ndarray]:
        return [np.zeros((batch, self.kv_shape[0], 0, self.kv_shape[1]), dtype=np.float32)
                for _ in range(len(self.inputs) - 2)]

    def prefill(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, OrtCache]:
        ids = input_ids.cpu().numpy().astype(np.int64)
        logits, present = self._run(ids, 0, self._empty_past(ids.shape[0]))
        return torch.from_numpy(np.array(logits[:, -1])), OrtCache(present, ids.shape[1])

    def decode(self, tokens: torch.Tensor, cache: OrtCache) -> tuple[torch.Tensor, OrtCache]:
        ids = tokens.cpu().numpy().astype(np.int64)[:, None]
        logits, present = self._run(ids, cache.length, cache.arrays)
        return torch.from_numpy(np.array(logits[:, -1])), OrtCache(present, cache.length + 1)

    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        ids = input_ids.cpu().numpy().astype(np.int64)
        logits, _ = self._run(ids, 0, self._empty_past(ids.shape[0]))
        return torch.from_numpy(np.array(logits))
