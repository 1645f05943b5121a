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


class Backend(Protocol):
    name: str
    capabilities: Capabilities

    def check_available(self) -> None:
        """Raise BackendUnavailableError (with the install hint) if this backend cannot run here."""
        ...

    def build(self, handle: ModelHandle, **options: Any) -> Runtime:
        """A Runtime over ``handle``'s model; ``options`` are backend-specific."""
        ...
