"""The ``openvino`` runtime: genfast's exported decoder step compiled by OpenVINO for the CPU."""

from __future__ import annotations

import numpy as np

from genfast.runtime.past_kv import PastKVRuntime


class OpenVINORuntime(PastKVRuntime):
    """One compiled OpenVINO model (latency hint), ``threads`` inference threads, activations computed
    in ``activations`` (``f32``, ``bf16``, or None: the plugin's choice)."""

    name = "openvino"

    def __init__(self, model, layers: int, kv_heads: int, head_dim: int, threads: int | None = None,
                 weight_bytes: int | None = None, activations: str | None = "f32") -> None:
        import openvino as ov

        super().__init__(layers, kv_heads, head_dim)
        # without the hint the CPU plugin computes in bf16 wherever the CPU has it, "fp32" included
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if activations:
            config["INFERENCE_PRECISION_HINT"] = activations
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = ov.Core().compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.weight_bytes_per_step = weight_bytes

    def _infer(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        result = self.request.infer(feeds)
        return [np.array(result[self.compiled.output(name)]) for name in self.outputs]
