"""Built-in backend names, imported only when used."""

from __future__ import annotations

import importlib

from genfast.backends.base import Backend
from genfast.errors import ConfigError

_BUILTIN = {
    "torch": "genfast.backends.torch_backends:TorchBackend",
    "torch-compile": "genfast.backends.torch_backends:TorchCompileBackend",
    "hf": "genfast.backends.torch_backends:HFBackend",
    "onnxruntime": "genfast.backends.onnxruntime:OnnxRuntimeBackend",
    "openvino": "genfast.backends.openvino:OpenVINOBackend",
    "tensorrt": "genfast.backends.tensorrt:TensorRTBackend",
}


def backend_names() -> list[str]:
    return list(_BUILTIN)


def get_backend(name: str) -> Backend:
    """The backend called ``name``, checked to be usable on this machine."""
    if name not in _BUILTIN:
        raise ConfigError(f"Unknown backend {name!r}.", f"Use one of: {', '.join(_BUILTIN)}.")
    module_name, _, cls = _BUILTIN[name].partition(":")
    backend = getattr(importlib.import_module(module_name), cls)()
    backend.check_available()
    return backend


def build_runtime(name: str, handle, **options):
    """Build backend ``name``'s runtime for ``handle``; ``precision`` is checked against its capabilities."""
    backend = get_backend(name)
    check_recipe(backend, [], handle.model, options.setdefault("precision", "fp32"))
    return backend.build(handle, **options)


def check_recipe(backend: Backend, configs: list, model, precision: str = "fp32") -> None:
    """The one place that decides whether ``backend`` can run ``model`` after the compression
    ``configs`` (not yet applied) at ``precision``; raises ConfigError naming the fix.

    Distillation trains float weights, so it must come before any quantization or cast step.
    """
    from genfast.compress.distill import Distill
    from genfast.compress.quantize import LAYER_QUANTIZERS, CastPrecision
    from genfast.compress.quantize.layers import QuantizedLinear
    from genfast.devices import dtype_name

    name, caps = backend.name, backend.capabilities
    if precision not in caps.precisions:
        raise ConfigError(f"The {name} backend has no precision {precision!r}.",
                          f"Use one of: {', '.join(caps.precisions)}.")
    quantized = any(isinstance(m, QuantizedLinear) for m in model.modules())
    dtype = dtype_name(next(model.parameters()).dtype)
    for config in configs:
        if isinstance(config, Distill) and (quantized or dtype != "fp32"):
            raise ConfigError("Distill comes after a quantization or cast step in the recipe; it trains float "
                              "weights.", "Put the distillation before that step.")
        if isinstance(config, LAYER_QUANTIZERS):
            if not caps.quantized_layers:
                raise ConfigError(f"--quantize makes PyTorch layers the {name} backend cannot run.",
                                  f"Use --backend torch, or --backend {name} --precision int8 alone.")
            quantized = True
        if isinstance(config, CastPrecision):
            dtype = config.dtype
    if quantized and not caps.quantized_layers:
        raise ConfigError(f"This model was quantized with genfast's PyTorch kernels, which the {name} backend "
                          "cannot run.", f"Run it on torch or torch-compile, or quantize the original with "
                          f"--backend {name} --precision int8 instead.")
    if dtype not in caps.dtypes:
        raise ConfigError(f"The {name} backend takes {', '.join(caps.dtypes)} weights, not {dtype}.",
                          "Leave out the cast, or run the fp32 original through the torch backend.")
