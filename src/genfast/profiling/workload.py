"""What one profile measures: prompt lengths, output length, batch sizes, repeats."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from genfast.errors import ConfigError


@dataclass
class Workload:
    """A causal-LM workload; every (prompt length, batch size) pair is measured separately."""

    prompt_lens: list[int] = field(default_factory=lambda: [128])
    """Prompt lengths in tokens."""
    output_len: int = 128
    """New tokens generated per sequence; EOS is ignored so every run generates exactly this many."""
    batch_sizes: list[int] = field(default_factory=lambda: [1])
    warmup: int = 1
    """Runs per case done first and not counted."""
    repeats: int = 5
    """Counted runs per case."""
    seed: int = 0
    """Seed for where the prompts are drawn from the text."""
    version: int = 1

    def validate(self, context_length: int) -> None:
        """Raise ConfigError naming the bad value and the fix."""
        for name, values in (("prompt length", self.prompt_lens), ("batch size", self.batch_sizes)):
            if not values:
                raise ConfigError(f"No {name} given.", f"Give at least one {name}.")
            for v in values:
                if v < 1:
                    raise ConfigError(f"The {name} must be at least 1, got {v}.")
        if self.output_len < 1:
            raise ConfigError(f"The output length must be at least 1 token, got {self.output_len}.")
        if self.repeats < 1:
            raise ConfigError(f"Repeats must be at least 1, got {self.repeats}.")
        if self.warmup < 0:
            raise ConfigError(f"Warm-up runs cannot be negative, got {self.warmup}.")
        longest = max(self.prompt_lens)
        if longest + self.output_len > context_length:
            raise ConfigError(
                f"Prompt length {longest} + output length {self.output_len} = {longest + self.output_len} "
                f"tokens exceeds the model's context of {context_length}.",
                f"Keep prompt length + output length <= {context_length}.",
            )


def prompt_windows(token_ids: list[int], prompt_len: int, batch_size: int, seed: int) -> torch.Tensor:
    """``batch_size`` windows of ``prompt_len`` consecutive tokens at seeded random offsets."""
    ids = list(token_ids)
    while len(ids) <= prompt_len:  # a short text is repeated rather than rejected
        ids = ids + list(token_ids)
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(ids) - prompt_len, (batch_size,), generator=gen).tolist()
    # (batch, prompt_len)
    return torch.tensor([ids[s : s + prompt_len] for s in starts], dtype=torch.long)
