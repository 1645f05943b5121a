"""The registry of transforms and the recipe every transformed model carries."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from genfast.errors import ConfigError

C = TypeVar("C")
_TRANSFORMS: dict[type, Callable[[torch.nn.Module, Any, Any], torch.nn.Module]] = {}
_REAPPLY_ON_LOAD: set[str] = set()
_RECIPE_ATTR = "_genfast_recipe"


def register(config_type: type[C], reapply_on_load: bool = False) -> Callable:
    """Decorator: ``fn(model, config, tokenizer) -> model`` applies configs of ``config_type``
    (``tokenizer`` is None when a bare module was given).

    ``reapply_on_load``: the saved config does not describe the result (quantized layers, a cast),
    so loading an artifact rebuilds the model from its config, applies the step again, then loads
    the saved tensors. Pruning needs no such step: it rewrites the config itself.
    """

    def wrap(fn: Callable[[torch.nn.Module, C, Any], torch.nn.Module]) -> Callable:
        _TRANSFORMS[config_type] = fn
        if reapply_on_load:
            _REAPPLY_ON_LOAD.add(config_type.__name__)
        return fn

    return wrap


def registered_configs() -> list[type]:
    """The config types compress_ accepts (those whose modules have been imported)."""
    return list(_TRANSFORMS)


def reapplied_on_load(step: dict) -> bool:
    """Whether loading an artifact must apply this recipe step again (see ``register``)."""
    return step.get("technique") in _REAPPLY_ON_LOAD


def recipe_of(model: torch.nn.Module) -> list[dict]:
    """The steps applied to ``model`` so far, in order (saved as ``recipe.json`` with artifacts)."""
    return list(getattr(model, _RECIPE_ATTR, []))


def set_recipe(model: torch.nn.Module, steps: list[dict]) -> None:
    """Give a loaded artifact's model the recipe it was saved with."""
    setattr(model, _RECIPE_ATTR, list(steps))


def record_step(model: torch.nn.Module, config: Any) -> None:
    """Append ``config`` to the model's recipe (for steps applied outside compress_, like distillation)."""
    setattr(model, _RECIPE_ATTR, recipe_of(model) + [{"technique": type(config).__name__, **dataclasses.asdict(config)}])


def compress_(target: Any, config: Any) -> torch.nn.Module:
    """Apply the transform registered for ``type(config)`` in place and record it.

    ``target`` is a ModelHandle (its tokenizer is used for calibration text) or a module.
    """
    from genfast.models.handle import ModelHandle

    model, tokenizer = (target.model, target.tokenizer) if isinstance(target, ModelHandle) else (target, None)
    transform = _TRANSFORMS.get(type(config))
    if transform is None:
        known = ", ".join(sorted(t.__name__ for t in _TRANSFORMS)) or "none registered"
        raise ConfigError(f"No compression technique takes a {type(config).__name__}.", f"Use one of: {known}.")
    validate = getattr(config, "validate", None)
    if validate:
        validate()
    recipe = recipe_of(model)
    model = transform(model, config, tokenizer)
    step = {"technique": type(config).__name__, **dataclasses.asdict(config)}
    setattr(model, _RECIPE_ATTR, recipe + [step])
    if isinstance(target, ModelHandle):
        target.model, target.recipe = model, {**target.recipe, "steps": recipe + [step]}
    return model
