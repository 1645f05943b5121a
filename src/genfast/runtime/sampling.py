"""Turning logits into the next token: greedy, or temperature / top-k / top-p with a seed,
after OpenAI's logit bias and presence / frequency penalties."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from genfast.errors import ConfigError

GREEDY_BELOW = 1e-5
SEED_RANGE = (-(2**63), 2**63 - 1)
"""What torch.Generator.manual_seed takes without overflowing (int64)."""


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """The most likely token per row: (batch, vocab) -> (batch,)."""
    return logits.argmax(dim=-1)


@dataclass
class SamplingParams:
    """Per-request decoding settings, as in OpenAI's API."""

    max_tokens: int = 16
    """0 is allowed: the prompt is only scored (with ``prompt_logprobs``)."""
    temperature: float = 1.0
    """0 means greedy."""
    top_k: int = 0
    """Keep the k most likely tokens; 0 keeps all."""
    top_p: float = 1.0
    """Keep the smallest set of tokens whose probability adds up to top_p."""
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    ignore_eos: bool = False
    logit_bias: dict[int, float] = field(default_factory=dict)
    """Added to a token's logit before sampling (OpenAI: -100 bans, +100 forces)."""
    presence_penalty: float = 0.0
    """Subtracted once from the logit of every token already generated."""
    frequency_penalty: float = 0.0
    """Subtracted from a token's logit per time it was already generated."""
    logprobs: int | None = None
    """Return each generated token's log-probability and this many most likely alternatives."""
    prompt_logprobs: int | None = None
    """The same for every prompt token (after the first)."""

    def validate(self, vocab_size: int | None = None) -> None:
        if self.max_tokens < 0:
            raise ConfigError(f"max_tokens must be at least 1, got {self.max_tokens}.", param="max_tokens")
        if self.max_tokens == 0 and self.prompt_logprobs is None:
            raise ConfigError("max_tokens must be at least 1, got 0.",
                              "max_tokens 0 only scores a prompt: send echo with logprobs.", param="max_tokens")
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}.", param="temperature")
        if self.top_k < 0:
            raise ConfigError(f"top_k must be >= 0, got {self.top_k}.", param="top_k")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}.", param="top_p")
        if self.seed is not None and not SEED_RANGE[0] <= self.seed <= SEED_RANGE[1]:
            raise ConfigError(f"seed {self.seed} is outside the 64-bit signed range.", "Use a smaller seed.",
                              param="seed")
        for name in ("presence_penalty", "frequency_penalty"):
            if not -2.0 <= getattr(self, name) <= 2.0:
                raise ConfigError(f"{name} must be in [-2, 2], got {getattr(self, name)}.", param=name)
        for token, bias in self.logit_bias.items():
            if vocab_size is not None and not 0 <= token < vocab_size:
                raise ConfigError(f"logit_bias names token {token}, outside the vocabulary of {vocab_size}.",
                                  param="logit_bias")
            if not -100.0 <= bias <= 100.0:
                raise ConfigError(f"logit_bias values must be in [-100, 100], got {bias} for token {token}.",
                                  param="logit_bias")

    @property
    def is_greedy(self) -> bool:
        # below 1e-5 (as vLLM) dividing the logits by the temperature only overflows: it is greedy
        return self.temperature < GREEDY_BELOW or self.top_k == 1

    @property
    def adjusts_logits(self) -> bool:
        return bool(self.logit_bias or self.presence_penalty or self.frequency_penalty)


def adjust_logits(logits: torch.Tensor, params: SamplingParams, output_ids: list[int],
                  allowed: torch.Tensor | None = None) -> torch.Tensor:
    """One row of logits (vocab,) after the bias, the penalties and an optional mask of allowed tokens."""
    if not params.adjusts_logits and allowed is None:
        return logits
    logits = logits.float().clone()
    vocab = logits.shape[-1]
    if params.logit_bias:
        ids = torch.tensor(list(params.logit_bias), dtype=torch.long)
        logits[ids] += torch.tensor(list(params.logit_bias.values()))
    if output_ids and (params.presence_penalty or params.frequency_penalty):
        counts = torch.bincount(torch.tensor(output_ids, dtype=torch.long), minlength=vocab)[:vocab].float()
        logits -= counts * params.frequency_penalty + (counts > 0).float() * params.presence_penalty
    if allowed is not None:
        mask = torch.zeros(vocab, dtype=torch.bool)
        mask[: len(allowed)] = allowed[:vocab]
        logits = logits.masked_fill(~mask, float("-inf"))
    return logits


def sample_row(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> int:
    """One token from one row of logits (vocab,)."""
    if params.is_greedy:
        return int(logits.argmax())
    scores = logits.float() / params.temperature
    if params.top_k:
        kth = torch.topk(scores, min(params.top_k, scores.numel())).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_scores, order = scores.sort(descending=True)
        cumulative = sorted_scores.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_scores.softmax(-1) >= params.top_p  # keep the token that crosses top_p
        drop[0] = False  # the most likely token always stays, however small top_p (rounding)
        scores = scores.scatter(0, order[drop], float("-inf"))
    probs = scores.softmax(-1)
    return int(torch.multinomial(probs, 1, generator=generator))
