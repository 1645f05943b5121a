"""Log-probabilities of chosen tokens and their most likely alternatives, from raw logits."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TokenLogprob:
    """One position: the token that was chosen (or given), its log-probability and the top alternatives."""

    token_id: int
    logprob: float | None
    """None for a prompt's first token, which nothing predicts."""
    top: list[tuple[int, float]]
    """(token id, log-probability), most likely first."""


def token_logprob(logits: torch.Tensor, token: int, top_n: int) -> TokenLogprob:
    """``logits`` (vocab,) as the model gave them (before temperature, bias or penalties)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    top: list[tuple[int, float]] = []
    if top_n:
        values, ids = logp.topk(min(top_n, logp.numel()))
        top = list(zip(ids.tolist(), values.tolist(), strict=True))
    return TokenLogprob(int(token), float(logp[token]), top)


def prompt_logprobs(logits: torch.Tensor, prompt_ids: list[int], top_n: int) -> list[TokenLogprob]:
    """Per prompt position; ``logits`` (seq, vocab) of a full forward. The first token has none."""
    out = [TokenLogprob(prompt_ids[0], None, [])]
    for pos in range(1, len(prompt_ids)):
        out.append(token_logprob(logits[pos - 1], prompt_ids[pos], top_n))
    return out
