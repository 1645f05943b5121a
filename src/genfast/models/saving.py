"""Save a (compressed) model as a directory that ``genfast.load`` and transformers' tokenizer read back."""

from __future__ import annotations

from pathlib import Path

from genfast.compress.recipe import Recipe
from genfast.models.handle import ModelHandle


def save(handle: ModelHandle, directory: str | Path, recipe: Recipe | None = None) -> Path:
    """Weights, tokenizer, generation config and ``recipe.json`` (what was done to the model, and
    the backend and precision that run it; default: the handle's) in ``directory``; returns it."""
    from genfast.compress.api import recipe_of

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    handle.model.save_pretrained(out)
    handle.tokenizer.save_pretrained(out)
    handle.generation_config.save_pretrained(out)
    recipe = recipe or Recipe(steps=recipe_of(handle.model), backend=handle.backend, precision=handle.precision)
    (out / "recipe.json").write_text(recipe.to_json())
    return out
