"""Compression through one entry point: ``compress_(model, config)`` dispatches on the config's type."""

from genfast.compress import prune, quantize  # noqa: E402,F401 - importing registers their transforms
from genfast.compress.api import compress_, recipe_of, register

__all__ = ["compress_", "recipe_of", "register"]
