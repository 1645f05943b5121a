"""OpenVINO backend: convert the exported decoder, optionally compress weights with NNCF."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

from genfast.backends.base import Capabilities
from genfast.errors import BackendUnavailableError, ConfigError
from genfast.models.handle import ModelHandle

PRECISIONS = ("fp32", "int8", "int4")


def _weight_bytes(model) -> int:
    """Bytes of the model's constant tensors (its weights, compressed or not)."""
    return sum(int(op.get_byte_size()) for op in model.get_ops() if op.get_type_name() == "Constant")


class OpenVINOBackend:
    name = "openvino"
    capabilities = Capabilities(devices=("cpu",), dtypes=("fp32",), quantization=("int8-weight", "int4-weight"),
                                extra="openvino")

    def check_available(self) -> None:
        for module in ("openvino", "nncf", "onnx"):
            if importlib.util.find_spec(module) is None:
                raise BackendUnavailableError(f"The openvino backend needs the {module!r} package.",
                                              "pip install 'genfast[openvino]'")

    def build(self, handle: ModelHandle, **options):
        """Export to ONNX, convert with ``openvino.convert_model``, compress (int8 / int4), compile."""
        import openvino as ov

        from genfast.runtime.convert import to_fast_decoder
        from genfast.runtime.onnx_export import export_onnx
        from genfast.runtime.ov_runtime import OpenVINORuntime

        precision = options.get("precision", "fp32")
        if precision not in PRECISIONS:
            raise ConfigError(f"openvino precision {precision!r} is not supported.",
                              f"Use one of: {', '.join(PRECISIONS)}.")
        if handle.device.type != "cpu":
            raise ConfigError("The openvino backend runs on the CPU here.", "Use --device cpu.")
        decoder = to_fast_decoder(handle.model)
        with tempfile.TemporaryDirectory(prefix="genfast-ov-") as tmp:
            model = ov.convert_model(str(export_onnx(decoder, Path(tmp) / "model.onnx")))
        if precision != "fp32":
            import logging

            import nncf

            nncf.set_log_level(logging.ERROR)  # no per-layer tables in genfast's output
            mode = nncf.CompressWeightsMode.INT8_ASYM if precision == "int8" else nncf.CompressWeightsMode.INT4_SYM
            kwargs = {} if precision == "int8" else {"group_size": options.get("group_size", 32), "ratio": 1.0}
            model = nncf.compress_weights(model, mode=mode, **kwargs)
        s = decoder.shape
        runtime = OpenVINORuntime(model, s.layers, s.kv_heads, s.head_dim, threads=options.get("threads"),
                                  weight_bytes=_weight_bytes(model))
        runtime.name = f"openvino-{precision}"
        return runtime
