"""The ``tensorrt`` runtime: the exported decoder step as a TensorRT engine on an NVIDIA GPU.

Written against TensorRT 10's named-tensor API; it runs only where an NVIDIA GPU and the
``tensorrt`` package are present, and its tests carry the ``gpu`` marker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from genfast.errors import GenfastError
from genfast.runtime.onnx_export import io_names


@dataclass
class TrtCache:
    """A sequence's past keys and values (CUDA tensors) and the shared length of its rows."""

    arrays: list
    length: int


class EngineBuildError(GenfastError):
    default_hint = "Run with --debug for TensorRT's log, or use --backend torch-compile on this GPU."


def build_engine(onnx_path: Path, layers: int, kv_heads: int, head_dim: int, max_batch: int, max_len: int,
                 fp16: bool) -> bytes:
    """Parse the ONNX graph and build a serialized engine for batch <= max_batch, length <= max_len."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT could not parse the exported graph: {errors}")
    config = builder.create_builder_config()
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    inputs, _ = io_names(layers)
    for name in inputs[:2]:  # input_ids, position_ids: (batch, seq)
        profile.set_shape(name, (1, 1), (1, min(128, max_len)), (max_batch, max_len))
    for name in inputs[2:]:  # past keys / values: (batch, kv_heads, past, head_dim); past may be empty
        profile.set_shape(name, (1, kv_heads, 0, head_dim), (1, kv_heads, min(128, max_len), head_dim),
                          (max_batch, kv_heads, max_len, head_dim))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError("TensorRT failed to build an engine for this model.")
    return bytes(serialized)


class TensorRTRuntime:
    """Prefill / decode / logits with torch CUDA tensors bound to the engine's named I/O."""

    name = "tensorrt"

    def __init__(self, engine_bytes: bytes, layers: int, kv_heads: int, head_dim: int) -> None:
        import tensorrt as trt

        self._trt = trt
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(engine_bytes)
        self.context = self.engine.create_execution_context()
        self.inputs, self.outputs = io_names(layers)
        self.kv_shape = (kv_heads, head_dim)
        self.device = torch.device("cuda")
        self._placeholder = torch.empty(1, device=self.device)  # an address for empty (past=0) tensors

    def _dtype(self, name: str) -> torch.dtype:
        trt = self._trt
        return {trt.float32: torch.float32, trt.float16: torch.float16, trt.int64: torch.int64,
                trt.int32: torch.int32}[self.engine.get_tensor_dtype(name)]

    def _run(self, ids: torch.Tensor, start: int, past: list[torch.Tensor]) -> tuple[torch.Tensor, list]:
        batch, length = ids.shape
        positions = torch.arange(start, start + length, device=self.device).expand(batch, length).contiguous()
        feeds = [ids.to(self.device, torch.int64).contiguous(), positions, *past]
        for name, tensor in zip(self.inputs, feeds):
            self.context.set_input_shape(name, tuple(tensor.shape))
            ptr = tensor.data_ptr() if tensor.numel() else self._placeholder.data_ptr()
            self.context.set_tensor_address(name, ptr)
        outs = []
        for name in self.outputs:
            out = torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=self._dtype(name), device=self.device)
            self.context.set_tensor_address(name, out.data_ptr())
            outs.append(out)
        if not self.context.execute_async_v3(torch.cuda.current_stream().cuda_stream):
            raise GenfastError("TensorRT execution failed.", "Run with --debug for TensorRT's log.")
        return outs[0], outs[1:]

    def _empty_past(self, batch: int) -> list[torch.Tensor]:
        dtype = self._dtype(self.inputs[2])
        return [torch.empty(batch, self.kv_shape[0], 0, self.kv_shape[1], dtype=dtype, device=self.device)
                for _ in range(len(self.inputs) - 2)]

    def prefill(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, TrtCache]:
        logits, present = self._run(input_ids, 0, self._empty_past(input_ids.shape[0]))
        return logits[:, -1].float(), TrtCache(present, input_ids.shape[1])

    def decode(self, tokens: torch.Tensor, cache: TrtCache) -> tuple[torch.Tensor, TrtCache]:
        logits, present = self._run(tokens[:, None], cache.length, cache.arrays)
        return logits[:, -1].float(), TrtCache(present, cache.length + 1)

    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self._run(input_ids, 0, self._empty_past(input_ids.shape[0]))[0].float()
