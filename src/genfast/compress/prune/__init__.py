"""Pruning: unstructured (honest about speed) and structured (smaller matrices)."""

from genfast.compress.prune import structured, unstructured  # noqa: F401 - registers the transforms
from genfast.compress.prune.structured import PruneFFN, PruneHeads, PruneLayers
from genfast.compress.prune.unstructured import PruneUnstructured

__all__ = ["PruneFFN", "PruneHeads", "PruneLayers", "PruneUnstructured"]
