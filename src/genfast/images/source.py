"""Whether a ``--model`` value names an image generator (no torch import: the CLI asks first)."""

from __future__ import annotations

from pathlib import Path

DEMO_IMAGE = "demo-image"


def is_image_model(source: str) -> bool:
    """``demo-image``, or a directory holding ``unet/`` and ``scheduler/`` (a diffusers UNet2D pipeline)."""
    if source == DEMO_IMAGE:
        return True
    path = Path(source).expanduser()
    return (path / "unet").is_dir() and (path / "scheduler").is_dir()
