"""The only reader of ``GENFAST_*`` environment variables."""

from __future__ import annotations

import os
from pathlib import Path


def demo_model_dir() -> Path:
    """Directory of the bundled demo model (``GENFAST_DEMO_DIR`` overrides it, e.g. in tests)."""
    override = os.environ.get("GENFAST_DEMO_DIR")
    if override:
        return Path(override)
    return Path(__file__).parent / "models" / "demo" / "weights"


def demo_student_dir() -> Path:
    """Directory of the bundled distilled student of the demo model."""
    return Path(__file__).parent / "models" / "demo" / "student"


def hub_connect_timeout_s() -> float:
    """Seconds to wait for the model hub before calling it unreachable (``GENFAST_HUB_TIMEOUT``)."""
    return float(os.environ.get("GENFAST_HUB_TIMEOUT", "3"))


def debug() -> bool:
    """Whether ``GENFAST_DEBUG=1`` asks the CLI for full tracebacks."""
    return os.environ.get("GENFAST_DEBUG", "") not in ("", "0", "false")
