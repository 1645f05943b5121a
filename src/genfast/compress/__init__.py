"""Compression through one entry point: ``compress_(model, config)`` dispatches on the config's type."""

from genfast.compress.api import compress_, recipe_of, register
from genfast.compress import prune, quantize  # noqa: E402,F401 - importing registers their transforms

__all__ = ["compress_", "recipe_of", "register"]
