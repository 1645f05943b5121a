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


def demo_image_dir() -> Path:
    """Directory of the bundled image demo (``GENFAST_DEMO_IMAGE_DIR`` overrides it, e.g. in tests)."""
    override = os.environ.get("GENFAST_DEMO_IMAGE_DIR")
    if override:
        return Path(override)
    return Path(__file__).parent / "models" / "demo_image" / "weights"


def hub_connect_timeout_s() -> float:
    """Seconds to wait for the model hub before calling it unreachable (``GENFAST_HUB_TIMEOUT``)."""
    return float(os.environ.get("GENFAST_HUB_TIMEOUT", "3"))


def cache_dir() -> Path:
    """Where genfast caches what it builds per machine, e.g. compiled kernels (``GENFAST_CACHE_DIR``)."""
    override = os.environ.get("GENFAST_CACHE_DIR")
    if override:
        return Path(override)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "genfast"


def native_kernels() -> bool:
    """Whether genfast may build and use its own C kernels (``GENFAST_NATIVE_KERNELS=0`` turns them off)."""
    return os.environ.get("GENFAST_NATIVE_KERNELS", "1") not in ("0", "false")


def debug() -> bool:
    """Whether ``GENFAST_DEBUG=1`` asks the CLI for full tracebacks."""
    return os.environ.get("GENFAST_DEBUG", "") not in ("", "0", "false")
