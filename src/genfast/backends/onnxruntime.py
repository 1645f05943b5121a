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
        """Export to ``options['export_dir']`` (default: a temporary directory) and load it; with
        ``options['export_cache']``, reuse an export of the same content from that directory."""
        from genfast.runtime.convert import to_fast_decoder
        from genfast.runtime.export_cache import cached_export
        from genfast.runtime.onnx_export import export_onnx
        from genfast.runtime.ort_runtime import OrtRuntime

        precision = options.get("precision", "fp32")
        require_cpu(handle, self.name)
        tmp = None
        decoder = to_fast_decoder(handle.model)
        if options.get("export_cache"):
            directory = cached_export(decoder, Path(options["export_cache"]))
            path = directory / "model.onnx"
        else:
            if options.get("export_dir"):
                directory = Path(options["export_dir"])
            else:
                tmp = tempfile.TemporaryDirectory(prefix="genfast-onnx-")
                directory = Path(tmp.name)
            path = export_onnx(decoder, directory / "model.onnx")
        if precision == "int8":
            int8_path = directory / "model.int8.onnx"
            if not int8_path.is_file():
                _quantize_dynamic(path, int8_path)
            path = int8_path
        s = decoder.shape
        runtime = OrtRuntime(path, s.layers, s.kv_heads, s.head_dim, threads=options.get("threads"))
        runtime.name = f"onnxruntime-{precision}"
        runtime._tmp = tmp  # keeps the exported files alive as long as the runtime
        return runtime


def _quantize_dynamic(path: Path, out: Path) -> None:
    """ONNX Runtime's dynamic int8 quantization of ``path`` into ``out`` (written whole or not at all)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    partial = out.with_suffix(".partial.onnx")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs advice on the root logger
    try:
        quantize_dynamic(str(path), str(partial), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    partial.rename(out)
