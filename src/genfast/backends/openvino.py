"""OpenVINO backend: convert the exported decoder, optionally compress weights with NNCF."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

from genfast.backends.base import Capabilities, require_cpu, require_modules
from genfast.models.handle import ModelHandle


class OpenVINOBackend:
    name = "openvino"
    capabilities = Capabilities(devices=("cpu",), dtypes=("fp32",), precisions=("fp32", "bf16", "int8", "int4"),
                                extra="openvino")

    def check_available(self) -> None:
        require_modules(self.name, ("openvino", "nncf", "onnx"), self.capabilities.extra)

    def build(self, handle: ModelHandle, **options):
        """Export to ONNX, convert with ``openvino.convert_model``, compress (int8 / int4), compile."""
        import openvino as ov

        from genfast.runtime.convert import to_fast_decoder
        from genfast.runtime.graph_bytes import openvino_weight_bytes_per_step
        from genfast.runtime.onnx_export import export_onnx
        from genfast.runtime.ov_runtime import OpenVINORuntime

        precision = options.get("precision", "fp32")
        require_cpu(handle, self.name)
        decoder = to_fast_decoder(handle.model)
        if options.get("export_cache"):  # an export of the same content is reused
            from genfast.runtime.export_cache import cached_export

            model = ov.convert_model(str(cached_export(decoder, Path(options["export_cache"])) / "model.onnx"))
        else:
            with tempfile.TemporaryDirectory(prefix="genfast-ov-") as tmp:
                model = ov.convert_model(str(export_onnx(decoder, Path(tmp) / "model.onnx")))
        if precision == "bf16":
            from genfast.errors import BackendUnavailableError

            if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
                raise BackendUnavailableError("This CPU does not compute bf16, so OpenVINO bf16 would be emulated.",
                                              "Use --precision fp32 (or int8 / int4) here.")
        if precision in ("int8", "int4"):
            import logging

            import nncf

            nncf.set_log_level(logging.ERROR)  # no per-layer tables in genfast's output
            mode = nncf.CompressWeightsMode.INT8_ASYM if precision == "int8" else nncf.CompressWeightsMode.INT4_SYM
            kwargs = {} if precision == "int8" else {"group_size": options.get("group_size", 32), "ratio": 1.0}
            # NNCF draws its own progress bar on the console; genfast's output stays one line per result.
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                model = nncf.compress_weights(model, mode=mode, **kwargs)
        s = decoder.shape
        # fp32 means fp32; the compressed-weight precisions keep the plugin's choice of activations
        activations = {"fp32": "f32", "bf16": "bf16"}.get(precision)
        runtime = OpenVINORuntime(model, s.layers, s.kv_heads, s.head_dim, threads=options.get("threads"),
                                  weight_bytes=openvino_weight_bytes_per_step(model), activations=activations)
        runtime.name = f"openvino-{precision}"
        return runtime
