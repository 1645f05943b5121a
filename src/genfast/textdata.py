"""Real text to draw prompts and evaluation windows from, available offline."""

from __future__ import annotations

import sysconfig
from pathlib import Path

from genfast import envs


def demo_heldout_text() -> str | None:
    """The held-out text shipped with the demo model, if the model is installed."""
    path = envs.demo_model_dir() / "heldout.txt"
    return path.read_text(encoding="utf-8") if path.is_file() else None


def stdlib_text(max_chars: int = 200_000) -> str:
    """Python standard library source, a few files in a fixed order (present on every machine)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, size = [], 0
    for name in ("textwrap.py", "argparse.py", "functools.py", "dataclasses.py", "pathlib.py"):
        path = root / name
        if path.is_file() and size < max_chars:
            text = path.read_text(encoding="utf-8", errors="replace")
            parts.append(text)
            size += len(text)
    return "\n".join(parts)[:max_chars]


def training_text(max_chars: int = 2_000_000, seed: int = 0) -> str:
    """Broad code for training-like uses (distillation): standard-library files of the demo's
    training split in a seeded random order, never its held-out files."""
    import random

    from genfast.models.demo.corpus import stdlib_split

    split = stdlib_split()
    names = sorted(n for n in split.train if not n.startswith("encodings/"))
    random.Random(seed).shuffle(names)
    parts, size = [], 0
    for name in names:
        if size >= max_chars:
            break
        text = (split.root / name).read_text(encoding="utf-8", errors="replace")
        parts.append(text)
        size += len(text)
    return "\n".join(parts)[:max_chars]


def reference_text() -> str:
    """Held-out demo text when available, else standard library source."""
    return demo_heldout_text() or stdlib_text()
