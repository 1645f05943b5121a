"""Small pieces shared by everything genfast trains (the demo model, distilled students)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch


@dataclass
class TrainState:
    """Progress of a resumable training run, saved inside its checkpoint."""

    step: int = 0
    elapsed_s: float = 0.0
    history: list[dict] = field(default_factory=list)


def save_checkpoint(path: Path, state: TrainState, **parts) -> None:
    """Each part's ``state_dict()`` (model, optimizer...) and ``state``, written atomically: a run
    killed mid-save keeps the previous checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save({**{name: part.state_dict() for name, part in parts.items()}, "state": asdict(state)}, tmp)
    tmp.replace(path)


def print_line(msg: str) -> None:
    """The trainers' default log: one flushed line."""
    print(msg, flush=True)


def warmup_cosine_lr(step: int, peak: float, floor: float, warmup_steps: int, decay_steps: int,
                     time_fraction: float = 0.0) -> float:
    """Learning rate of step ``step`` (0-based): linear warm-up to ``peak``, then cosine decay to
    ``floor`` over ``decay_steps``, or faster when ``time_fraction`` (share of a time budget used)
    is further along, so a time-limited run still ends at a low rate."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = min(1.0, max((step - warmup_steps) / max(1, decay_steps), time_fraction))
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * progress))


def seeded_windows(ids: torch.Tensor, step: int, seed: int, batch: int, length: int) -> torch.Tensor:
    """``batch`` windows of ``length`` tokens at random offsets, seeded by (seed, step): (batch, length).

    Seeded per step, so a resumed run sees exactly the batches it would have seen.
    """
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    starts = torch.randint(0, len(ids) - length - 1, (batch,), generator=gen)
    return torch.stack([ids[s : s + length] for s in starts.tolist()]).long()


@torch.no_grad()
def evaluate_loss(model, eval_ids: torch.Tensor, seq_len: int, windows: int) -> float:
    """Mean next-token cross-entropy over the first ``windows`` non-overlapping windows."""
    was_training = model.training
    model.eval()
    n = min(windows, len(eval_ids) // seq_len)
    x = eval_ids[: n * seq_len].view(n, seq_len).long().to(next(model.parameters()).device)
    losses = [model(input_ids=chunk, labels=chunk).loss.item() for chunk in x.split(8)]
    model.train(was_training)
    return sum(losses) / len(losses)
