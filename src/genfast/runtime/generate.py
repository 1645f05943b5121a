"""The decode loop: prefill once, then decode one token at a time, each step timed by stage."""

from __future__ import annotations

from collections.abc import Callable

import torch

from genfast.profiling.timer import DECODE_FORWARD, PREFILL, SAMPLE, NullTimer, StageTimer
from genfast.runtime.base import Runtime
from genfast.runtime.sampling import greedy


def generate(
    runtime: Runtime,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    sample: Callable[[torch.Tensor], torch.Tensor] = greedy,
    timer: StageTimer | None = None,
) -> torch.Tensor:
    """Generate exactly ``max_new_tokens`` per sequence (EOS is not a stop): (batch, new)."""
    timer = timer or NullTimer()
    with timer.stage(PREFILL):
        logits, cache = runtime.prefill(input_ids)
    with timer.stage(SAMPLE):
        token = sample(logits)
    new_tokens = [token]
    for _ in range(max_new_tokens - 1):
        with timer.stage(DECODE_FORWARD):
            logits, cache = runtime.decode(token, cache)
        with timer.stage(SAMPLE):
            token = sample(logits)
        new_tokens.append(token)
    return torch.stack(new_tokens, dim=1)
