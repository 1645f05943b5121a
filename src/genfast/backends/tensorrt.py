"""TensorRT: NVIDIA GPUs only; where none (or no ``tensorrt`` package) is present, a one-line error."""

from __future__ import annotations

import importlib.util

import torch

from genfast.backends.base import Capabilities
from genfast.errors import BackendUnavailableError


class TensorRTBackend:
    name = "tensorrt"
    capabilities = Capabilities(devices=("cuda",), dtypes=("fp32", "fp16"), precisions=("fp32", "fp16"), extra="tensorrt")

    def check_available(self) -> None:
        if not torch.cuda.is_available():
            raise BackendUnavailableError("The tensorrt backend needs an NVIDIA GPU and none is visible to torch.",
                                          "Use --backend torch or onnxruntime on this machine.")
        if importlib.util.find_spec("tensorrt") is None:
            raise BackendUnavailableError("The tensorrt package is not installed.",
                                          "pip install 'genfast[tensorrt]' (needs an NVIDIA driver and CUDA).")

    def build(self, handle, **options):
        """Export the decoder to ONNX, build an engine (fp16 with ``precision='fp16'``), load it."""
        import tempfile
        from pathlib import Path

        from genfast.runtime.convert import to_fast_decoder
        from genfast.runtime.onnx_export import export_onnx
        from genfast.runtime.trt_runtime import TensorRTRuntime, build_engine

        precision = options.get("precision", "fp32")
        decoder = to_fast_decoder(handle.model)
        s = decoder.shape
        max_len = options.get("max_cache_len") or s.max_positions
        with tempfile.TemporaryDirectory(prefix="genfast-trt-") as tmp:
            path = export_onnx(decoder, Path(tmp) / "model.onnx")
            engine = build_engine(path, s.layers, s.kv_heads, s.head_dim, max_batch=options.get("batch", 1) or 1,
                                  max_len=max_len, fp16=precision == "fp16")
        return TensorRTRuntime(engine, s.layers, s.kv_heads, s.head_dim)
