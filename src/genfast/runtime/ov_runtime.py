"""The ``openvino`` runtime: genfast's exported decoder step compiled by OpenVINO for the CPU.

The keys and values stay inside OpenVINO between steps: the graph's past inputs and present
outputs become the model's state (its ReadValue / Assign pairs), held by the sequence's own infer
request, as optimum-intel keeps them. A step then feeds only its token ids and positions; before,
every step copied the whole cache in and out through numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from genfast.runtime.onnx_export import io_names, step_inputs


@dataclass
class StatefulCache:
    """A sequence's keys and values, inside its infer request; ``length`` positions filled."""

    request: object
    length: int


def make_stateful(model, layers: int, kv_heads: int, head_dim: int) -> None:
    """Turn ``model``'s past/present pairs into state, each starting empty for the batch being fed."""
    import openvino.opset13 as ops
    from openvino._offline_transformations import apply_make_stateful_transformation

    inputs, outputs = io_names(layers)
    apply_make_stateful_transformation(model, dict(zip(inputs[2:], outputs[1:], strict=True)))
    batch = ops.gather(ops.shape_of(model.input("input_ids"), output_type="i64"), ops.constant([0]), ops.constant(0))
    empty = ops.concat([batch, ops.constant(np.array([kv_heads, 0, head_dim], dtype=np.int64))], axis=0)
    for op in model.get_ops():
        if op.get_type_name() == "ReadValue":  # its first value: (batch, kv_heads, 0, head_dim) zeros
            op.set_arguments([ops.broadcast(ops.constant(0.0, dtype=op.get_output_element_type(0)), empty)])
    model.validate_nodes_and_infer_types()


class OpenVINORuntime:
    """One compiled OpenVINO model (latency hint), ``threads`` inference threads, activations computed
    in ``activations`` (``f32``, ``bf16``, or None: the plugin's choice); one infer request per sequence."""

    name = "openvino"

    def __init__(self, model, layers: int, kv_heads: int, head_dim: int, threads: int | None = None,
                 weight_bytes: int | None = None, activations: str | None = "f32") -> None:
        import openvino as ov

        make_stateful(model, layers, kv_heads, head_dim)
        # without the hint the CPU plugin computes in bf16 wherever the CPU has it, "fp32" included
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if activations:
            config["INFERENCE_PRECISION_HINT"] = activations
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = ov.Core().compile_model(model, "CPU", config)
        self.logits_output = self.compiled.output("logits")
        self.device = torch.device("cpu")
        self.weight_bytes_per_step = weight_bytes

    def _step(self, request, ids: torch.Tensor, start: int) -> np.ndarray:
        ids, positions = step_inputs(ids, start)
        return request.infer({"input_ids": ids, "position_ids": positions})[self.logits_output]

    def _new_sequence(self):
        request = self.compiled.create_infer_request()
        request.reset_state()
        return request

    def prefill(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, StatefulCache]:
        request = self._new_sequence()
        logits = self._step(request, input_ids, 0)
        return torch.from_numpy(np.array(logits[:, -1])), StatefulCache(request, input_ids.shape[1])

    def decode(self, tokens: torch.Tensor, cache: StatefulCache) -> tuple[torch.Tensor, StatefulCache]:
        logits = self._step(cache.request, tokens[:, None], cache.length)
        return torch.from_numpy(np.array(logits[:, -1])), StatefulCache(cache.request, cache.length + 1)

    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.array(self._step(self._new_sequence(), input_ids, 0)))
