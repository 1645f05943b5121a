"""Save a (compressed) model as a directory that ``genfast.load`` and transformers' tokenizer read back."""

from __future__ import annotations

from pathlib import Path

from genfast.compress.recipe import Recipe
from genfast.compress.restore import needs_restore
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
    if needs_restore({"steps": recipe.steps}):
        _hide_from_transformers(out)
    (out / "recipe.json").write_text(recipe.to_json())
    return out


QUANTIZED_WEIGHTS_PREFIX = "genfast-"


def _hide_from_transformers(out: Path) -> None:
    """Quantized or cast layers are not what config.json describes: transformers' from_pretrained would
    build plain layers and fill the missing weights with random values, silently. Renamed, its weight
    files are not found and it fails loudly; genfast.load reads every ``*.safetensors`` file."""
    (out / "model.safetensors.index.json").unlink(missing_ok=True)
    for f in out.glob("*.safetensors"):
        if not f.name.startswith(QUANTIZED_WEIGHTS_PREFIX):
            f.rename(out / (QUANTIZED_WEIGHTS_PREFIX + f.name))
