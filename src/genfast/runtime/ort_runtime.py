"""The ``onnxruntime`` runtime: genfast's exported decoder step run by ONNX Runtime on the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genfast.runtime.past_kv import PastKVRuntime


class OrtRuntime(PastKVRuntime):
    """One ONNX Runtime session, graph optimisations on, ``threads`` intra-op threads."""

    name = "onnxruntime"

    def __init__(self, path: Path, layers: int, kv_heads: int, head_dim: int, threads: int | None = None) -> None:
        import onnxruntime as ort

        from genfast.runtime.graph_bytes import onnx_weight_bytes_per_step

        super().__init__(layers, kv_heads, head_dim)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.path = path
        self.weight_bytes_per_step = onnx_weight_bytes_per_step(path)

    def _infer(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, feeds)
