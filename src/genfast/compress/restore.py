"""Load an artifact whose saved config does not describe its layers (quantized, cast).

The model is built from its config with its parameters on the meta device (no memory, no random
init), the recipe's ``reapply_on_load`` steps give it the right modules and dtypes (still on meta),
then the saved tensors are assigned in place: no fp32 copy of a quantized matrix is ever made,
and each saved tensor is held once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from genfast.errors import ModelLoadError


def needs_restore(recipe: dict) -> bool:
    """Whether ``recipe``'s artifact must be loaded by ``restore`` rather than ``from_pretrained``."""
    from genfast.compress.api import reapplied_on_load

    return any(reapplied_on_load(step) for step in recipe.get("steps", []))


def _saved_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the artifact, mapped from its files (measured: copying them out raised the
    peak by a quarter and left the steady state about the same)."""
    from safetensors.torch import load_file

    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise ModelLoadError(f"No .safetensors weights in {path}.", "Save the artifact again with genfast optimize.")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(file))
    return state


@contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Modules built inside get their parameters on the meta device; buffers are built for real
    (rotary tables and masks their constructors compute, which no checkpoint holds)."""
    register = torch.nn.Module.register_parameter

    def register_on_meta(module: torch.nn.Module, name: str, param: torch.nn.Parameter | None) -> None:
        if param is not None and param.device.type != "meta":
            param = torch.nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register(module, name, param)

    torch.nn.Module.register_parameter = register_on_meta
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = register


def _matched(state: dict[str, torch.Tensor], slots: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` in the dtypes of the model's ``slots``, each tied slot given the tensor saved
    under any of its names (safetensors keeps one name per shared tensor)."""
    state = {key: value.to(slots[key].dtype) if key in slots and value.is_floating_point() else value
             for key, value in state.items()}
    shared: dict[int, list[str]] = {}
    for key, slot in slots.items():
        shared.setdefault(id(slot), []).append(key)
    for keys in shared.values():
        saved = next((state[key] for key in keys if key in state), None)
        if saved is not None:
            state.update({key: saved for key in keys if key not in state})
    return state


def restore(path: Path, recipe: dict, dtype: torch.dtype) -> torch.nn.Module:
    """The artifact in ``path`` with the layers its recipe gave it, weights loaded."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from genfast.compress.api import compress_, reapplied_on_load
    from genfast.compress.recipe import step_config

    with parameters_on_meta():
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path), dtype=dtype)
    for step in recipe["steps"]:
        if reapplied_on_load(step):
            compress_(model, step_config(step))
    slots = model.state_dict(keep_vars=True)
    missing, unexpected = model.load_state_dict(_matched(_saved_tensors(path), slots), strict=False, assign=True)
    model.tie_weights()  # assign wraps each name in its own Parameter (same storage); one again
    missing += [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if missing or unexpected:
        names = ", ".join(list(dict.fromkeys(missing or unexpected))[:3])
        raise ModelLoadError(f"The weights in {path} do not match its recipe.json "
                             f"({'missing' if missing else 'unexpected'}: {names}).",
                             "Re-create the artifact with genfast optimize; do not edit recipe.json by hand.")
    return model.eval()
