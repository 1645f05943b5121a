"""A stage timer shared by every runtime: the same stage names mean the same work everywhere."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from genfast.devices import synchronize

TOKENIZE, PREFILL, DECODE_FORWARD, SAMPLE, DETOKENIZE = (
    "tokenize", "prefill", "decode_forward", "sample", "detokenize")
STAGES = (TOKENIZE, PREFILL, DECODE_FORWARD, SAMPLE, DETOKENIZE)


class StageTimer:
    """Accumulates wall time per named stage, synchronising the device at each boundary.

    Each ``stage()`` block is one event; ``events[name]`` keeps every duration so
    per-step distributions (inter-token latency) can be computed.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.events: dict[str, list[float]] = defaultdict(list)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            self.events[name].append(time.perf_counter() - start)

    def total(self, name: str) -> float:
        return sum(self.events.get(name, ()))


class NullTimer(StageTimer):
    """A timer that measures nothing and costs nothing (no device sync)."""

    def __init__(self) -> None:
        super().__init__("cpu")

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        yield
