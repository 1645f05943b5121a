"""The demo model's corpus: this machine's Python standard library sources, split by file."""

from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

# Directories whose code is tests or vendored copies, not the library itself.
_EXCLUDED_DIRS = {"test", "tests", "idle_test", "site-packages", "lib2to3", "__pycache__"}


@dataclass(frozen=True)
class CorpusSplit:
    """Train / held-out file lists (relative to ``root``) and a hash of their contents."""

    root: Path
    train: list[str]
    heldout: list[str]
    sha256: str

    def read(self, names: list[str]) -> list[str]:
        """Return the text of each named file (undecodable bytes replaced)."""
        return [(self.root / n).read_text(encoding="utf-8", errors="replace") for n in names]


def _is_library_file(rel: Path) -> bool:
    dirs = rel.parts[:-1]
    return not any(d in _EXCLUDED_DIRS or d.startswith("test") for d in dirs)


def _goes_to_heldout(name: str, heldout_fraction: float) -> bool:
    # A hash of the path, not a random draw: the split is the same on every machine
    # and does not depend on how many files another Python version has.
    bucket = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return bucket < heldout_fraction


def stdlib_split(heldout_fraction: float = 0.05, root: Path | None = None) -> CorpusSplit:
    """Split the standard library's ``.py`` files (tests left out) into train and held-out."""
    root = Path(root or sysconfig.get_paths()["stdlib"])
    names = sorted(
        str(p.relative_to(root)) for p in root.rglob("*.py") if _is_library_file(p.relative_to(root))
    )
    train = [n for n in names if not _goes_to_heldout(n, heldout_fraction)]
    heldout = [n for n in names if _goes_to_heldout(n, heldout_fraction)]
    digest = hashlib.sha256()
    for n in names:
        digest.update(n.encode())
        digest.update((root / n).read_bytes())
    return CorpusSplit(root=root, train=train, heldout=heldout, sha256=digest.hexdigest())
