"""Compare a candidate with its reference on the same held-out text."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from genfast.errors import ConfigError, DataError
from genfast.profiling.workload import prompt_windows
from genfast.quality.adapters import as_runtime
from genfast.quality.budget import QualityBudget
from genfast.quality.stats import bootstrap
from genfast.runtime.base import Runtime
from genfast.runtime.generate import generate

SCHEMA = "genfast.quality/1"


@dataclass
class QualitySettings:
    """How much held-out data a comparison uses."""

    window: int = 128
    """Tokens per perplexity / KL window."""
    max_windows: int = 64
    """At most this many non-overlapping windows, evenly spread over the text."""
    batch_size: int = 8
    prompts: int = 16
    """Prompts for the greedy-generation agreement."""
    prompt_len: int = 32
    new_tokens: int = 32
    resamples: int = 1000
    """Bootstrap resamples for the 95 % confidence intervals."""
    seed: int = 0
    version: int = 1

    def validate(self) -> None:
        for name in ("window", "max_windows", "batch_size", "prompts", "prompt_len", "new_tokens", "resamples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"Quality setting {name} must be at least 1, got {getattr(self, name)}.")
        if self.window < 2:
            raise ConfigError("The perplexity window needs at least 2 tokens.")


def eval_windows(token_ids: list[int], window: int, max_windows: int) -> torch.Tensor:
    """Non-overlapping windows (n, window) evenly spread over ``token_ids``."""
    n = len(token_ids) // window
    if n == 0:
        raise DataError(f"The evaluation text has {len(token_ids)} tokens, fewer than one window of {window}.",
                        "Use a longer text or a smaller window.")
    picks = np.linspace(0, n - 1, min(n, max_windows)).round().astype(int)
    return torch.tensor([token_ids[i * window:(i + 1) * window] for i in picks], dtype=torch.long)


def _check_vocab(tokenizer: Any, ref_logits: torch.Tensor, cand_logits: torch.Tensor) -> None:
    if ref_logits.shape[-1] != cand_logits.shape[-1]:
        raise DataError(f"Vocabulary mismatch: the reference scores {ref_logits.shape[-1]} tokens, "
                        f"the candidate {cand_logits.shape[-1]}.", "Compare models that share one tokenizer.")
    if len(tokenizer) > ref_logits.shape[-1]:
        raise DataError(f"Vocabulary mismatch: the tokenizer has {len(tokenizer)} tokens but the model "
                        f"scores only {ref_logits.shape[-1]}.", "Use the tokenizer saved with the model.")


def token_metrics(reference: Runtime, candidate: Runtime, windows: torch.Tensor, tokenizer: Any,
                  batch_size: int, on_batch: Callable[[], None] | None = None) -> dict[str, np.ndarray]:
    """Per-window mean NLL of both models, mean KL(ref || cand) and top-1 agreement."""
    parts: dict[str, list[torch.Tensor]] = {"ref_nll": [], "cand_nll": [], "kl": [], "top1": []}
    for chunk in windows.split(batch_size):
        # (batch, window - 1, vocab): predictions for positions 1..window-1
        ref = reference.logits(chunk.to(reference.device))[:, :-1].float().cpu()
        cand = candidate.logits(chunk.to(candidate.device))[:, :-1].float().cpu()
        _check_vocab(tokenizer, ref, cand)
        logp_ref, logp_cand = F.log_softmax(ref, -1), F.log_softmax(cand, -1)
        targets = chunk[:, 1:, None]
        parts["ref_nll"].append(-logp_ref.gather(-1, targets).squeeze(-1).mean(1))
        parts["cand_nll"].append(-logp_cand.gather(-1, targets).squeeze(-1).mean(1))
        parts["kl"].append((logp_ref.exp() * (logp_ref - logp_cand)).sum(-1).clamp_min(0).mean(1))
        parts["top1"].append((ref.argmax(-1) == cand.argmax(-1)).float().mean(1))
        if on_batch:
            on_batch()
    return {k: torch.cat(v).double().numpy() for k, v in parts.items()}


def greedy_agreement(reference: Runtime, candidate: Runtime, prompts: torch.Tensor,
                     new_tokens: int) -> tuple[np.ndarray, list[int | None]]:
    """Per prompt: share of generated positions equal to the reference's, first divergence (None: none)."""
    ref = generate(reference, prompts.to(reference.device), new_tokens).cpu()
    cand = generate(candidate, prompts.to(candidate.device), new_tokens).cpu()
    same = ref == cand  # (prompts, new_tokens)
    first = [None if bool(row.all()) else int((~row).nonzero()[0]) for row in same]
    return same.double().mean(1).numpy(), first


def _check_context(settings: QualitySettings, *models: Any) -> None:
    """Windows and greedy prompts must fit every model's context (beyond it positions are garbage)."""
    contexts = [m.context_length for m in models if isinstance(getattr(m, "context_length", None), int)]
    if not contexts:
        return
    context = min(contexts)
    if settings.window > context:
        raise ConfigError(f"The perplexity window of {settings.window} tokens is longer than the model's context "
                          f"of {context}.", f"Use --window {context} or less.")
    if settings.prompt_len + settings.new_tokens > context:
        raise ConfigError(f"Greedy prompts of {settings.prompt_len} + {settings.new_tokens} tokens exceed the "
                          f"model's context of {context}.", "Use fewer --new-tokens.")


def compare(reference: Any, candidate: Any, tokenizer: Any, text: str | None = None,
            settings: QualitySettings | None = None, budget: QualityBudget | None = None,
            on_progress: Callable[[int, int], None] | None = None) -> dict:
    """Measure how ``candidate`` differs from ``reference`` and check it against ``budget``.

    Both may be a Runtime, a ModelHandle, a transformers model, or a function ids -> logits.
    Returns a JSON-ready dict; ``result["budget"]["passed"]`` is the verdict.
    """
    from genfast.textdata import reference_text

    settings = settings or QualitySettings()
    settings.validate()
    budget = budget or QualityBudget()
    _check_context(settings, reference, candidate)
    ref_rt, cand_rt = as_runtime(reference), as_runtime(candidate)
    token_ids = tokenizer(text if text is not None else reference_text())["input_ids"]
    windows = eval_windows(token_ids, settings.window, settings.max_windows)
    steps = math.ceil(len(windows) / settings.batch_size) + 1
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if on_progress:
            on_progress(done, steps)

    m = token_metrics(ref_rt, cand_rt, windows, tokenizer, settings.batch_size, tick)
    prompts = prompt_windows(token_ids, settings.prompt_len, settings.prompts, settings.seed)
    greedy, first = greedy_agreement(ref_rt, cand_rt, prompts, settings.new_tokens)
    tick()

    n, boot = len(windows), dict(resamples=settings.resamples, seed=settings.seed)
    ppl_ref = bootstrap(lambda i: math.exp(m["ref_nll"][i].mean()), n, **boot)
    ppl_cand = bootstrap(lambda i: math.exp(m["cand_nll"][i].mean()), n, **boot)
    # Paired: the same resampled windows for both models, so shared noise cancels.
    ppl_change = bootstrap(lambda i: math.exp(m["cand_nll"][i].mean() - m["ref_nll"][i].mean()) - 1, n, **boot)
    kl = bootstrap(lambda i: float(m["kl"][i].mean()), n, **boot)
    top1 = bootstrap(lambda i: float(m["top1"][i].mean()), n, **boot)
    greedy_est = bootstrap(lambda i: float(greedy[i].mean()), len(greedy), **boot)

    figures = {"ppl_increase": ppl_change.value, "top1_agreement": top1.value, "kl": kl.value,
               "greedy_agreement": greedy_est.value}
    failures = budget.check(figures)
    diverged = [f for f in first if f is not None]
    return {
        "schema": SCHEMA,
        "settings": asdict(settings),
        "windows": n,
        "perplexity": {"reference": ppl_ref.to_dict(), "candidate": ppl_cand.to_dict(),
                       "relative_change": ppl_change.to_dict(), "significant": ppl_change.excludes(0.0)},
        "kl": kl.to_dict(),
        "top1_agreement": top1.to_dict(),
        "greedy": {"agreement": greedy_est.to_dict(), "first_divergence": first,
                   "identical_prompts": len(first) - len(diverged),
                   "median_first_divergence": float(np.median(diverged)) if diverged else None},
        "budget": {**asdict(budget), "passed": not failures, "failures": failures},
    }
