"""Expensive steps run once: a pruned-and-healed model is saved under the search's cache and every
candidate that starts with the same steps loads it instead of healing again."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from genfast.compress.recipe import Recipe
from genfast.models.handle import ModelHandle


def source_fingerprint(source: str) -> str:
    """What identifies a model's files cheaply: its config and each file's name, size and mtime."""
    from genfast.models.loading import resolve_model_path

    path = resolve_model_path(source)
    h = hashlib.sha256((path / "config.json").read_bytes())
    for f in sorted(path.iterdir()):
        if f.is_file():
            stat = f.stat()
            h.update(f"{f.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _split(steps: list[dict]) -> tuple[list[dict], list[dict]]:
    """(the steps up to the last distillation, the rest): the first part is worth caching."""
    last = max((i for i, s in enumerate(steps) if s["technique"] == "Distill"), default=-1)
    return steps[:last + 1], steps[last + 1:]


def load_candidate(source: str, original: ModelHandle, recipe: Recipe, cache_dir: Path,
                   device: str = "cpu") -> ModelHandle:
    """A fresh copy of ``source`` with ``recipe``'s steps applied, its healed prefix from the cache."""
    from genfast.models.loading import load
    from genfast.models.saving import save
    from genfast.tuning import trial

    configs = trial.plan(recipe, original.model)
    prefix, _ = _split(recipe.steps)
    if not prefix:
        candidate = load(source, device=device)
        trial.apply_steps(original, candidate, configs, cache_dir)
        return candidate
    key = hashlib.sha256((source_fingerprint(source) + json.dumps(prefix, sort_keys=True)).encode()).hexdigest()[:16]
    done, work = cache_dir / f"prefix-{key}", cache_dir / f"prefix-{key}.work"
    if (done / "recipe.json").is_file():
        candidate = load(str(done), device=device)
    else:
        candidate = load(source, device=device)
        trial.apply_steps(original, candidate, configs[:len(prefix)], work)  # resumable in work/.distill
        save(candidate, work / "model")
        shutil.rmtree(done, ignore_errors=True)
        (work / "model").rename(done)
        shutil.rmtree(work, ignore_errors=True)
    trial.apply_steps(original, candidate, configs[len(prefix):], cache_dir)
    return candidate
