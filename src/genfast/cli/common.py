"""Helpers shared by CLI commands: quiet third-party logging, load the model, set threads."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from rich.console import Console

from genfast.errors import ConfigError

# Piped output has no terminal width to follow; tables need more than the default 80 columns.
BUDGET_FAILED_EXIT = 3
"""Exit code of `compare` and `optimize` when the quality budget is not met (errors exit 1)."""

console = Console() if sys.stdout.isatty() else Console(width=160)
err_console = Console(stderr=True)


def quiet_libraries() -> None:
    """Silence transformers' and the hub's progress bars and advisory logs in CLI output."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def set_threads(threads: int | None) -> None:
    if threads is None:
        return
    if threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}.")
    import torch  # not at import time: `genfast serve` opens its socket before torch loads

    torch.set_num_threads(threads)


def load_factory(target: str):
    """Call ``file.py:function`` and return what it returns (e.g. a ModuleSpec)."""
    file_part, _, func_name = target.partition(":")
    path = Path(file_part)
    if not func_name:
        raise ConfigError(f"--module needs FILE.py:FUNCTION, got {target!r}.")
    if not path.is_file():
        raise ConfigError(f"No such file: {path}.", "Pass the path of a Python file, e.g. my_model.py:build.")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    factory = getattr(module, func_name, None)
    if not callable(factory):
        raise ConfigError(f"{path} has no function {func_name!r}.")
    return factory()
