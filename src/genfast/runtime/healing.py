"""Token healing: a prompt that ends mid-token (a trailing space, half a word) is re-tokenized.

BPE tokenizers put a space at the start of the next word's token, so ``"def "`` ends on a lone
space token the model rarely saw before a name. Healing drops the prompt's last token and lets
the first generated token be any token that starts with the dropped text.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable

import torch

from genfast.runtime.sampling import greedy


@functools.lru_cache(maxsize=8)
def token_strings(tokenizer) -> tuple[str, ...]:
    """Every token of the vocabulary, decoded on its own (cached per tokenizer)."""
    return tuple(tokenizer.decode([i]) for i in range(len(tokenizer)))


def heal(tokenizer, prompt: str) -> tuple[list[int], torch.Tensor | None]:
    """Prompt ids without their last token, and a (vocab,) mask of the allowed first tokens.

    Returns the ids unchanged and no mask when the prompt is a single token.
    """
    ids = tokenizer(prompt)["input_ids"]
    if len(ids) < 2:
        return ids, None
    return ids[:-1], tokens_starting_with(tokenizer, tokenizer.decode(ids[-1:]))


@functools.lru_cache(maxsize=8)
def _sorted_vocabulary(tokenizer) -> tuple[list[str], torch.Tensor]:
    strings = token_strings(tokenizer)
    order = sorted(range(len(strings)), key=strings.__getitem__)
    return [strings[i] for i in order], torch.tensor(order, dtype=torch.long)


def tokens_starting_with(tokenizer, text: str) -> torch.Tensor:
    """(vocab,) bool: the tokens whose text starts with ``text`` (a contiguous run of the sorted
    vocabulary, found by bisection: a server does this per request)."""
    strings, order = _sorted_vocabulary(tokenizer)
    lo = bisect.bisect_left(strings, text)
    hi = bisect.bisect_left(strings, text + "\U0010ffff", lo)
    mask = torch.zeros(len(strings), dtype=torch.bool)
    mask[order[lo:hi]] = True
    return mask


def healing_sampler(allowed: torch.Tensor | None,
                    sample: Callable[[torch.Tensor], torch.Tensor] = greedy) -> Callable[[torch.Tensor], torch.Tensor]:
    """A sampler whose first call only picks tokens in ``allowed``; later calls are ``sample``."""
    first = [True]

    def step(logits: torch.Tensor) -> torch.Tensor:
        if first[0] and allowed is not None:
            first[0] = False
            mask = torch.full((logits.shape[-1],), float("-inf"), device=logits.device)
            mask[: len(allowed)][allowed.to(logits.device)] = 0.0
            return sample(logits + mask)
        return sample(logits)

    return step


def complete(runtime, tokenizer, prompt: str, new_tokens: int) -> str:
    """Greedy completion of ``prompt`` with token healing; returns prompt + completion."""
    from genfast.runtime.generate import generate

    ids, allowed = heal(tokenizer, prompt)
    out = generate(runtime, torch.tensor([ids], device=runtime.device), new_tokens, sample=healing_sampler(allowed))
    healed_text = tokenizer.decode(ids)
    return healed_text + tokenizer.decode(out[0].tolist())
