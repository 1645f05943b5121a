"""Which waiting requests join the running batch now: pure logic, no torch, no clocks."""

from __future__ import annotations

from dataclasses import dataclass

from genfast.errors import ConfigError

MODES = ("continuous", "dynamic", "sequential")


@dataclass
class SchedulerConfig:
    """How requests are batched."""

    mode: str = "continuous"
    """continuous: admit between decode steps; dynamic: batch whole requests, admit only when the
    batch has drained; sequential: one request at a time."""
    max_running: int = 16
    """Sequences decoded together (rows of the KV cache)."""
    max_queued: int = 64
    """Requests waiting beyond this are refused (HTTP 429)."""
    prefill_token_budget: int = 512
    """Prompt tokens prefilled per engine step, so newcomers do not stall running streams for long
    (one request is always admitted when a slot is free, whatever its length)."""
    max_prompt_tokens: int | None = None
    """Longer prompts are refused (HTTP 400); None: only the context limits them."""
    max_output_tokens: int | None = None
    """Larger max_tokens are refused (HTTP 400); None: only the context limits them."""
    batch_wait_s: float = 0.02
    """dynamic mode: how long the first waiting request waits for others to fill the batch."""
    version: int = 1

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"Unknown batching mode {self.mode!r}.", f"Use one of: {', '.join(MODES)}.")
        for name in ("max_running", "max_queued", "prefill_token_budget"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.batch_wait_s < 0:
            raise ConfigError(f"batch_wait_s cannot be negative, got {self.batch_wait_s}.")


def admit_count(cfg: SchedulerConfig, waiting_prompt_lens: list[int], running: int, oldest_wait_s: float) -> int:
    """How many requests from the head of the queue to admit now."""
    if not waiting_prompt_lens:
        return 0
    if cfg.mode == "sequential":
        return 1 if running == 0 else 0
    if cfg.mode == "dynamic":
        if running:
            return 0
        batch = min(len(waiting_prompt_lens), cfg.max_running)
        return batch if batch == cfg.max_running or oldest_wait_s >= cfg.batch_wait_s else 0
    free = cfg.max_running - running
    count, tokens = 0, 0
    for length in waiting_prompt_lens[:free]:
        if count and tokens + length > cfg.prefill_token_budget:
            break
        count, tokens = count + 1, tokens + length
    return count
