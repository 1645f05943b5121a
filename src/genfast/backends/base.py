"""The Backend protocol: a named engine that builds a Runtime for a model handle."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from genfast.models.handle import ModelHandle
from genfast.runtime.base import Runtime


@dataclass(frozen=True)
class Capabilities:
    """What a backend accepts; checked before building so a mismatch is a clear error."""

    devices: tuple[str, ...]
    dtypes: tuple[str, ...]
    quantization: tuple[str, ...] = ()
    extra: str | None = None
    """The ``pip install genfast[extra]`` that provides it, if optional."""
    notes: dict[str, Any] = field(default_factory=dict)


def check_cpu_precision(handle: ModelHandle, backend: str, precision: str, allowed: tuple[str, ...]) -> None:
    """The checks shared by CPU-only backends with named precisions."""
    from genfast.errors import ConfigError

    if precision not in allowed:
        raise ConfigError(f"{backend} precision {precision!r} is not supported.", f"Use one of: {', '.join(allowed)}.")
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
