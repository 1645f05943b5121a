"""Serve any Runtime: each request keeps its own cache in a row slot, rows decode one by one.

genfast's `torch` runtimes batch rows of different lengths in one cache; other engines
(transformers' forward, ONNX Runtime, OpenVINO, TensorRT) keep one length per cache. This adapter
gives EngineCore the row interface over them, so scheduling, streaming and cancellation work
the same; the decode step then runs one forward per running request instead of one per batch.
"""

from __future__ import annotations

from typing import Any

import torch


class RowSlots:
    """``batch`` slots, each holding one request's own cache, with EngineCore's cache interface."""

    def __init__(self, batch: int, max_len: int, slots: list | None = None, start: int = 0) -> None:
        self.slots = slots if slots is not None else [None] * batch
        self.start, self.max_len = start, max_len

    def view(self, start: int, stop: int) -> RowSlots:
        return RowSlots(stop - start, self.max_len, self.slots, self.start + start)

    def move_row(self, src: int, dst: int, length: int) -> None:
        self.slots[self.start + dst] = self.slots[self.start + src]

    def __getitem__(self, row: int) -> Any:
        return self.slots[self.start + row]

    def __setitem__(self, row: int, cache: Any) -> None:
        self.slots[self.start + row] = cache


class RowAdapter:
    """EngineCore's runtime interface (new_cache / prefill into a row / decode rows) over any Runtime."""

    def __init__(self, runtime: Any, max_len: int) -> None:
        self.runtime, self.max_len = runtime, max_len
        self.device = runtime.device
        self.name = f"{getattr(runtime, 'name', 'runtime')} (per-request caches)"

    def new_cache(self, batch: int, max_len: int | None = None) -> RowSlots:
        return RowSlots(batch, max_len or self.max_len)

    def prefill(self, input_ids: torch.Tensor, rows: RowSlots) -> tuple[torch.Tensor, RowSlots]:
        logits, cache = self.runtime.prefill(input_ids)
        rows[0] = cache
        return logits, rows

    def decode(self, tokens: torch.Tensor, rows: RowSlots) -> tuple[torch.Tensor, RowSlots]:
        out = []
        for i in range(len(tokens)):
            logits, rows[i] = self.runtime.decode(tokens[i:i + 1], rows[i])
            out.append(logits)
        return torch.cat(out), rows

    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.runtime.logits(input_ids)
