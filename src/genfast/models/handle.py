"""What genfast knows about a loaded model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class ModelHandle:
    """A causal LM with its tokenizer, generation config and origin."""

    model: torch.nn.Module
    tokenizer: Any
    generation_config: Any
    source: str
    """What the user asked for: ``demo``, a directory, or a hub id."""
    path: str | None = None
    """The local directory the weights came from, when there is one."""
    recipe: dict = field(default_factory=dict)
    """What was done to the model since loading (compression steps), saved beside artifacts."""

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def context_length(self) -> int:
        """Maximum number of positions (prompt + output) the model supports."""
        cfg = self.config
        for name in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
            value = getattr(cfg, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return 2048

    @property
    def backend(self) -> str:
        """The backend an artifact's recipe names (``torch`` for a plain model)."""
        return self.recipe.get("backend", "torch")

    @property
    def precision(self) -> str:
        """The backend precision an artifact's recipe names (``fp32`` for a plain model)."""
        return self.recipe.get("precision", "fp32")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype


@dataclass
class ModuleSpec:
    """Any ``nn.Module`` generator: preprocess(raw) -> model input, forward, postprocess(output).

    ``preprocess`` and ``postprocess`` default to the identity; ``raw_input`` is what the
    user's application would receive (a prompt string, a noise seed, an image path...).
    """

    module: torch.nn.Module
    raw_input: Any
    preprocess: Callable[[Any], Any] = lambda x: x
    postprocess: Callable[[Any], Any] = lambda y: y
    name: str = "module"
