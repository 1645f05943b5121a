"""Output directories genfast writes: checked before any work, marked incomplete until whole."""

from __future__ import annotations

import os
from pathlib import Path

from genfast.errors import ConfigError

INCOMPLETE = ".genfast-incomplete"
"""Written first into an output directory and removed when it is complete: a half-written artifact
is never mistaken for a finished one (``genfast.load`` refuses it), and a rerun may resume into it."""


def check_output_dir(out_dir: Path, source_path: Path, marker: str = "recipe.json") -> None:
    """Refuse to write into the original model's files or over a directory that is not ours
    (``marker``: the file a directory of ours holds)."""
    out, src = out_dir.resolve(), source_path.resolve()
    if out == src or src in out.parents:
        raise ConfigError(f"The output {out_dir} is inside the original model's directory {source_path}.",
                          "Choose another -o directory: the original files are never modified.")
    if out in src.parents:
        raise ConfigError(f"The model {source_path} lies inside the output {out_dir}, which would be written over.",
                          "Choose an -o directory outside the model's, or copy the model elsewhere first.")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out_dir} is a file, not a directory.", "Choose an empty or new -o directory.")
    if out.exists() and any(out.iterdir()) and not (out / marker).exists() and not (out / INCOMPLETE).exists():
        raise ConfigError(f"{out_dir} exists, is not empty and is not a genfast artifact.",
                          "Choose an empty or new -o directory.")
    parent = next(p for p in (out, *out.parents) if p.exists())
    if not parent.is_dir():
        raise ConfigError(f"{parent} is a file, so {out_dir} cannot be created.", "Choose another -o directory.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"Cannot write to {parent}.", "Choose an -o directory you can write to.")


def make_output_dir(out_dir: Path) -> None:
    """Create ``out_dir``; an OS refusal (a read-only or virtual file system) is one ConfigError line."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".genfast-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"Cannot write to {out_dir}: {exc.strerror or exc}.",
                          "Choose an -o directory you can write to.") from None


def begin_output(out_dir: Path) -> None:
    """Create ``out_dir`` marked as incomplete until :func:`finish_output`."""
    make_output_dir(out_dir)
    (out_dir / INCOMPLETE).write_text("genfast is writing this directory; it is not a finished artifact yet.\n")


def finish_output(out_dir: Path) -> None:
    (out_dir / INCOMPLETE).unlink(missing_ok=True)
