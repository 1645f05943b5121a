"""PyTorch backends: ``hf`` (transformers' forward), ``torch`` (genfast's decoder), ``torch-compile``."""

from __future__ import annotations

import time
import warnings

import torch

from genfast.backends.base import Capabilities
from genfast.models.handle import ModelHandle
from genfast.runtime.base import Runtime

_TORCH_CAPS = Capabilities(devices=("cpu", "cuda", "mps", "xpu"), dtypes=("fp32", "fp16", "bf16"),
                           quantized_layers=True)


def autocast_dtype(handle: ModelHandle, options: dict) -> torch.dtype | None:
    """The ``autocast`` option as a dtype, refused on CPUs that would only emulate it."""
    from genfast.devices import precision_warning, resolve_dtype
    from genfast.errors import ConfigError

    name = options.get("autocast")
    if not name:
        return None
    dtype = resolve_dtype(name)
    warning = precision_warning(handle.device, dtype)
    if warning:
        raise ConfigError(f"Autocast to {name} is not native on this CPU: {warning}", "Leave --autocast off here.")
    return dtype


class HFBackend:
    """transformers' own forward with its dynamic KV cache; works for every causal LM."""

    name = "hf"
    capabilities = _TORCH_CAPS

    def check_available(self) -> None:
        return None

    def build(self, handle: ModelHandle, **options) -> Runtime:
        from genfast.runtime.hf import HFRuntime

        return HFRuntime(handle.model)


class TorchBackend:
    """genfast's decoder and static KV cache; falls back to ``hf`` (with a warning) off its families."""

    name = "torch"
    capabilities = _TORCH_CAPS

    def check_available(self) -> None:
        return None

    def build(self, handle: ModelHandle, **options) -> Runtime:
        from genfast.runtime.convert import UnsupportedModelError
        from genfast.runtime.torch_runtime import TorchRuntime

        try:
            return TorchRuntime(handle.model, max_cache_len=options.get("max_cache_len"),
                                autocast=autocast_dtype(handle, options))
        except UnsupportedModelError as exc:
            warnings.warn(f"{exc.message} Using transformers' forward (backend hf) instead.", stacklevel=2)
            return HFBackend().build(handle)


class TorchCompileBackend:
    """The ``torch`` runtime with its decode step compiled by ``torch.compile``.

    Compilation happens in ``build`` (a warm-up step per batch size seen later), and its time
    is reported apart as ``runtime.compile_time_s``. If the compiler is unavailable, the eager
    runtime is returned with a warning.
    """

    name = "torch-compile"
    capabilities = _TORCH_CAPS

    def check_available(self) -> None:
        return None

    def build(self, handle: ModelHandle, **options) -> Runtime:
        from genfast.runtime.compiled import CompiledTorchRuntime

        runtime = CompiledTorchRuntime(handle.model, max_cache_len=options.get("max_cache_len"),
                                       mode=options.get("compile_mode"), autocast=autocast_dtype(handle, options))
        start = time.perf_counter()
        try:
            runtime.warm_up(batch=options.get("batch", 1))
        except Exception as exc:  # noqa: BLE001 - inductor reports missing compilers in many ways
            warnings.warn(f"torch.compile failed ({type(exc).__name__}: {str(exc)[:200]}); using eager torch.",
                          stacklevel=2)
            return TorchBackend().build(handle, **options)
        runtime.compile_time_s = time.perf_counter() - start
        return runtime

