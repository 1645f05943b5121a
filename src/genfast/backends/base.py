"""The Backend protocol: a named engine that builds a Runtime for a model handle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from genfast.models.handle import ModelHandle
from genfast.runtime.base import Runtime


@dataclass(frozen=True)
class Capabilities:
    """What a backend accepts; the registry checks a build's options against it."""

    devices: tuple[str, ...]
    dtypes: tuple[str, ...]
    """Weight dtypes of the model it accepts (``--dtype``)."""
    precisions: tuple[str, ...] = ("fp32",)
    """What ``precision=`` may ask of it (int8 / int4: the backend quantizes)."""
    quantized_layers: bool = False
    """Runs models quantized by genfast's PyTorch transforms (Int8WeightOnly, DynamicInt8, ...)."""
    extra: str | None = None
    """The ``pip install genfast[extra]`` that provides it, if optional."""


def require_modules(backend: str, modules: tuple[str, ...], extra: str) -> None:
    """BackendUnavailableError naming the missing package and its ``pip install genfast[extra]``."""
    import importlib.util

    from genfast.errors import BackendUnavailableError

    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise BackendUnavailableError(f"The {backend} backend needs the {module!r} package.",
                                          f"pip install 'genfast[{extra}]'")


def require_cpu(handle: ModelHandle, backend: str) -> None:
    from genfast.errors import ConfigError

    if handle.device.type != "cpu":
        raise ConfigError(f"The {backend} backend runs on the CPU here.", "Use --device cpu.")


class Backend(Protocol):
    name: str
    capabilities: Capabilities

    def check_available(self) -> None:
        """Raise BackendUnavailableError (with the install hint) if this backend cannot run here."""
        ...

    def build(self, handle: ModelHandle, **options: Any) -> Runtime:
        """A Runtime over ``handle``'s model; ``options`` are backend-specific."""
        ...
