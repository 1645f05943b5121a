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
    precision = options.setdefault("precision", "fp32")
    allowed = backend.capabilities.precisions
    if precision not in allowed:
        raise ConfigError(f"The {name} backend has no precision {precision!r}.", f"Use one of: {', '.join(allowed)}.")
    _check_model_fits(name, backend.capabilities, handle.model)
    return backend.build(handle, **options)


def _check_model_fits(name: str, caps, model) -> None:
    """A model cast or quantized by genfast's torch transforms runs only where its layers are understood."""
    from genfast.compress.quantize.layers import QuantizedLinear
    from genfast.devices import dtype_name

    if not caps.quantized_layers and any(isinstance(m, QuantizedLinear) for m in model.modules()):
        raise ConfigError(f"This model was quantized with genfast's PyTorch kernels, which the {name} backend "
                          "cannot run.", f"Run it on torch or torch-compile, or quantize the original with "
                          f"--backend {name} --precision int8 instead.")
    dtype = dtype_name(next(model.parameters()).dtype)
    if dtype not in caps.dtypes:
        raise ConfigError(f"The {name} backend takes {', '.join(caps.dtypes)} weights; this model's are {dtype}.",
                          "Run the fp32 original through it, or use the torch backend.")
