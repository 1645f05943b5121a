"""Load an artifact whose saved config does not describe its layers (quantized, cast).

The model is built from its config, the recipe's ``reapply_on_load`` steps are applied again to
give it the right modules and dtypes, then the saved tensors are loaded over it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from genfast.errors import ModelLoadError


def needs_restore(recipe: dict) -> bool:
    """Whether ``recipe``'s artifact must be loaded by ``restore`` rather than ``from_pretrained``."""
    from genfast.compress.api import reapplied_on_load

    return any(reapplied_on_load(step) for step in recipe.get("steps", []))


def _saved_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise ModelLoadError(f"No .safetensors weights in {path}.", "Save the artifact again with genfast optimize.")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(file))
    return state


def restore(path: Path, recipe: dict, dtype: torch.dtype) -> torch.nn.Module:
    """The artifact in ``path`` with the layers its recipe gave it, weights loaded."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from genfast.compress.api import compress_, reapplied_on_load
    from genfast.compress.recipe import step_config

    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path), dtype=dtype)
    for step in recipe["steps"]:
        if reapplied_on_load(step):
            compress_(model, step_config(step))
    missing, unexpected = model.load_state_dict(_saved_tensors(path), strict=False)
    model.tie_weights()  # a head left unquantized shares the embedding, and is not saved twice
    # either side of a tie may be the one saved (the other is the same tensor)
    ties = getattr(model, "_tied_weights_keys", None) or ()
    tied = {*ties, *ties.values()} if isinstance(ties, dict) else set(ties)
    missing = [key for key in missing if key not in tied]
    if missing or unexpected:
        names = ", ".join((missing or unexpected)[:3])
        raise ModelLoadError(f"The weights in {path} do not match its recipe.json "
                             f"({'missing' if missing else 'unexpected'}: {names}).",
                             "Re-create the artifact with genfast optimize; do not edit recipe.json by hand.")
    return model.eval()
