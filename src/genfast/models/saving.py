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
        _save_own_weights(handle.model, out)
    (out / "recipe.json").write_text(recipe.to_json())
    return out


QUANTIZED_WEIGHTS_PREFIX = "genfast-"


def _save_own_weights(model, out: Path) -> None:
    """Quantized or cast layers are not what config.json describes: transformers' from_pretrained would
    build plain layers and fill the missing weights with random values, silently. Saved under another
    name, its weight files are not found and it fails loudly; genfast.load reads every ``*.safetensors``.

    The tensors keep the model's own names: save_pretrained renames some on disk for some families
    (GPT-NeoX's ``lm_head`` becomes ``embed_out``), which only from_pretrained maps back."""
    from safetensors.torch import save_model

    (out / "model.safetensors.index.json").unlink(missing_ok=True)
    for f in out.glob("*.safetensors"):
        f.unlink()
    save_model(model, str(out / f"{QUANTIZED_WEIGHTS_PREFIX}model.safetensors"))
