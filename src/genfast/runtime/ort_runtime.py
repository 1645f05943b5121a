"""The ``onnxruntime`` runtime: genfast's exported decoder step run by ONNX Runtime on the CPU.

Keys and values stay ONNX Runtime's own values between steps (IO binding): a step's present
outputs are bound as the next step's past inputs, so only the logits come out to numpy; before,
every step copied the whole cache out of the session and back in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genfast.runtime.onnx_export import io_names, step_inputs


@dataclass
class OrtCache:
    """A sequence's keys and values as ONNX Runtime values (past.0.key, past.0.value, ...)."""

    values: list
    length: int


class OrtRuntime:
    """One ONNX Runtime session, graph optimisations on, ``threads`` intra-op threads."""

    name = "onnxruntime"

    def __init__(self, path: Path, layers: int, kv_heads: int, head_dim: int, threads: int | None = None) -> None:
        import onnxruntime as ort

        from genfast.runtime.graph_bytes import onnx_weight_bytes_per_step

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.path = path
        self.inputs, self.outputs = io_names(layers)
        self.kv_shape = (kv_heads, head_dim)
        self.device = torch.device("cpu")
        self.weight_bytes_per_step = onnx_weight_bytes_per_step(path)

    def _run(self, ids: torch.Tensor, start: int, past: list | None) -> tuple[np.ndarray, list]:
        from onnxruntime import OrtValue

        ids, positions = step_inputs(ids, start)
        if past is None:  # a new sequence: empty past of this batch
            empty = np.zeros((ids.shape[0], self.kv_shape[0], 0, self.kv_shape[1]), dtype=np.float32)
            past = [OrtValue.ortvalue_from_numpy(empty)] * (len(self.inputs) - 2)
        binding = self.session.io_binding()
        binding.bind_cpu_input("input_ids", ids)
        binding.bind_cpu_input("position_ids", positions)
        for name, value in zip(self.inputs[2:], past, strict=True):
            binding.bind_ortvalue_input(name, value)
        for name in self.outputs:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        logits, *present = binding.get_outputs()
        return logits.numpy(), present

    def prefill(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, OrtCache]:
        logits, present = self._run(input_ids, 0, None)
        return torch.from_numpy(np.array(logits[:, -1])), OrtCache(present, input_ids.shape[1])

    def decode(self, tokens: torch.Tensor, cache: OrtCache) -> tuple[torch.Tensor, OrtCache]:
        logits, present = self._run(tokens[:, None], cache.length, cache.values)
        return torch.from_numpy(np.array(logits[:, -1])), OrtCache(present, cache.length + 1)

    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        logits, _ = self._run(input_ids, 0, None)
        return torch.from_numpy(np.array(logits))
