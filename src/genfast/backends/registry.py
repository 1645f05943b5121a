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
    return backend.build(handle, **options)
