"""genfast: profile, compress, accelerate, verify and serve generative models.

Names are imported lazily, so ``import genfast`` stays cheap and has no side effects.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load": "genfast.models.loading",
    "from_model": "genfast.models.loading",
    "save": "genfast.models.saving",
    "compress_": "genfast.compress.api",
    "ModelHandle": "genfast.models.handle",
    "ModuleSpec": "genfast.models.handle",
    "profile": "genfast.profiling.llm:profile_llm",
    "profile_module": "genfast.profiling.module",
    "Workload": "genfast.profiling.workload",
    "compare": "genfast.quality.compare",
    "QualityBudget": "genfast.quality.budget",
    "GenfastError": "genfast.errors",
    "tune": "genfast.tuning.search",
    "TuneOptions": "genfast.tuning.search",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'genfast' has no attribute {name!r}")
    module_name, _, attr = _EXPORTS[name].partition(":")
    return getattr(importlib.import_module(module_name), attr or name)


def __dir__() -> list[str]:
    return __all__
