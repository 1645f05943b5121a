"""Knowledge distillation: teach a student (a smaller config, or a pruned copy) the teacher's distributions.

loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, text)

Seeded batches, periodic held-out evaluation, resumable checkpoints and a time budget, like the
demo model's training.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from genfast.errors import ConfigError, DataError
from genfast.training import evaluate_loss, seeded_windows, warmup_cosine_lr


@dataclass
class Distill:
    steps: int = 200
    temperature: float = 2.0
    alpha: float = 0.5
    """Weight of the KL term; 1 - alpha weighs the cross-entropy on the text itself."""
    batch_size: int = 8
    seq_len: int = 128
    lr: float = 3e-4
    """Peak learning rate: linear warm-up, then cosine decay to ``min_lr_ratio * lr``."""
    warmup_steps: int = 20
    min_lr_ratio: float = 0.1
    schedule_steps: int | None = None
    """Length of the decay (default: ``steps``); lets a run stopped early be replayed exactly."""
    eval_every: int = 50
    ckpt_every: int = 50
    max_minutes: float | None = None
    seed: int = 0
    version: int = 1

    def validate(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.seq_len < 2:
            raise ConfigError("Distillation needs steps >= 1, batch_size >= 1 and seq_len >= 2.")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be positive, got {self.temperature}.")
        if not 0 <= self.alpha <= 1:
            raise ConfigError(f"alpha must be in [0, 1], got {self.alpha}.")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1 or self.warmup_steps < 0:
            raise ConfigError("Distillation needs lr > 0, min_lr_ratio in [0, 1] and warmup_steps >= 0.")

    def lr_at(self, step: int) -> float:
        """Learning rate of step ``step`` (0-based): warm-up, then cosine decay."""
        decay = (self.schedule_steps or self.steps) - self.warmup_steps
        return warmup_cosine_lr(step, self.lr, self.lr * self.min_lr_ratio, self.warmup_steps, decay)


def distill_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                 temperature: float, alpha: float) -> torch.Tensor:
    """Logits (batch, seq, vocab) predicting ``labels`` (batch, seq)."""
    t = temperature
    vocab = student_logits.shape[-1]
    kl = F.kl_div(F.log_softmax(student_logits.reshape(-1, vocab) / t, -1),
                  F.log_softmax(teacher_logits.reshape(-1, vocab) / t, -1), log_target=True, reduction="batchmean")
    ce = F.cross_entropy(student_logits.reshape(-1, vocab), labels.reshape(-1))
    return alpha * t * t * kl + (1 - alpha) * ce


def distill(teacher, student, tokenizer, train_text: str, eval_text: str, cfg: Distill,
            work_dir: Path | None = None, log: Callable[[str], None] = lambda _: None) -> list[dict]:
    """Train ``student`` in place towards ``teacher``; returns the evaluation history."""
    cfg.validate()
    device = next(student.parameters()).device
    train_ids = torch.tensor(tokenizer(train_text)["input_ids"])
    eval_ids = torch.tensor(tokenizer(eval_text)["input_ids"])
    if len(train_ids) <= cfg.seq_len + 1 or len(eval_ids) < cfg.seq_len:
        raise DataError(f"Distillation text is shorter than one window of {cfg.seq_len} tokens.",
                        "Give more text or a smaller seq_len.")
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=0.0)
    step, history = 0, []
    ckpt = work_dir / "distill.pt" if work_dir else None
    if ckpt and ckpt.exists():
        saved = torch.load(ckpt, weights_only=False)
        student.load_state_dict(saved["student"])
        opt.load_state_dict(saved["opt"])
        step, history = saved["step"], saved["history"]
        log(f"resumed distillation at step {step}")
    teacher.eval()
    student.train()
    start, loss = time.perf_counter(), None
    with _progress_bar(cfg.steps, step) as advance:
        while step < cfg.steps:
            if cfg.max_minutes and time.perf_counter() - start > cfg.max_minutes * 60:
                log(f"time budget reached at step {step}")
                break
            for group in opt.param_groups:
                group["lr"] = cfg.lr_at(step)
            batch = seeded_windows(train_ids, step, cfg.seed, cfg.batch_size, cfg.seq_len + 1).to(device)
            inputs, labels = batch[:, :-1], batch[:, 1:]
            with torch.no_grad():
                teacher_logits = teacher(input_ids=inputs).logits
            loss = distill_loss(student(input_ids=inputs).logits, teacher_logits, labels, cfg.temperature, cfg.alpha)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            advance()
            if step % cfg.eval_every == 0 or step == cfg.steps:
                history.append(_evaluate(student, eval_ids, cfg, step, loss.item(), log))
            if ckpt and step % cfg.ckpt_every == 0:
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                torch.save({"student": student.state_dict(), "opt": opt.state_dict(), "step": step,
                            "history": history, "config": asdict(cfg)}, ckpt.with_suffix(".tmp"))
                ckpt.with_suffix(".tmp").replace(ckpt)
    if step and (not history or history[-1]["step"] != step):  # stopped by the time budget between evaluations
        history.append(_evaluate(student, eval_ids, cfg, step, loss.item() if loss is not None else math.nan, log))
    student.eval()
    return history


def _evaluate(student, eval_ids: torch.Tensor, cfg: Distill, step: int, loss: float, log) -> dict:
    ppl = math.exp(evaluate_loss(student, eval_ids, cfg.seq_len, windows=16))
    log(f"distill step {step}: loss {loss:.3f}, held-out perplexity {ppl:.2f}")
    return {"step": step, "loss": loss, "heldout_perplexity": ppl}


@contextmanager
def _progress_bar(total: int, done: int):
    """A rich progress bar on an interactive stderr (nothing in logs and tests); yields advance()."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    with Progress(TextColumn("distilling"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("distill", total=total, completed=done)
        yield lambda: bar.advance(task)
