"""ONNX Runtime backend: export genfast's decoder once, run it fp32 or dynamic-int8 on the CPU."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from genfast.backends.base import Capabilities, require_cpu, require_modules
from genfast.models.handle import ModelHandle

class OnnxRuntimeBackend:
    name = "onnxruntime"
    capabilities = Capabilities(devices=("cpu",), dtypes=("fp32",), precisions=("fp32", "int8"), extra="onnx")

    def check_available(self) -> None:
        require_modules(self.name, ("onnx", "onnxruntime"), self.capabilities.extra)

    def build(self, handle: ModelHandle, **options):
        """Export to ``options['export_dir']`` (default: a temporary directory) and load it."""
        from genfast.runtime.convert import to_fast_decoder
        from genfast.runtime.onnx_export import export_onnx
        from genfast.runtime.ort_runtime import OrtRuntime

        precision = options.get("precision", "fp32")
        require_cpu(handle, self.name)
        tmp = None
        if options.get("export_dir"):
            directory = Path(options["export_dir"])
        else:
            tmp = tempfile.TemporaryDirectory(prefix="genfast-onnx-")
            directory = Path(tmp.name)
        decoder = to_fast_decoder(handle.model)
        path = export_onnx(decoder, directory / "model.onnx")
        if precision == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            int8_path = directory / "model.int8.onnx"
            root = logging.getLogger()
            level = root.level
            root.setLevel(logging.ERROR)  # the quantizer logs advice on the root logger
            try:
                quantize_dynamic(str(path), str(int8_path), weight_type=QuantType.QInt8)
            finally:
                root.setLevel(level)
            path = int8_path
        s = decoder.shape
        runtime = OrtRuntime(path, s.layers, s.kv_heads, s.head_dim, threads=options.get("threads"))
        runtime.name = f"onnxruntime-{precision}"
        runtime._tmp = tmp  # keeps the exported files alive as long as the runtime
        return runtime
