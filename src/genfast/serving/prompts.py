"""From a request's prompt to token ids, cheaply bounded: the server's preprocess stage.

A prompt far too long for the limits is refused from its length in characters, before the
tokenizer sees it: no token of this vocabulary covers more than ``longest_token`` characters, so
a prompt of more than ``limit x longest_token`` characters cannot fit in ``limit`` tokens.
Tokenizing (and token healing) then runs in a worker thread, off the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from genfast.errors import ConfigError
from genfast.runtime.healing import token_strings, tokens_starting_with

DEFAULT_CHAT_TEMPLATE = "{% for m in messages %}### {{ m.role }}:\n{{ m.content }}\n\n{% endfor %}### assistant:\n"
"""Used when the tokenizer has no chat template of its own (the demo model is a code model)."""


@dataclass
class PreparedPrompt:
    """What the engine needs from a prompt."""

    ids: list[int]
    text: str
    """The prompt as text (for echo)."""
    first_token_mask: torch.Tensor | None = None
    drop_prefix: str = ""
    """Token healing: the prompt's last token was dropped; the output starts with this text."""


def check_text(text: str, param: str) -> None:
    """Refuse text that cannot be encoded (a lone surrogate such as "\\ud800" is valid JSON)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(f"{param} holds an unpaired surrogate (\\u{ord(exc.object[exc.start]):04x}), "
                          "which is not Unicode text.", "Send valid UTF-8 text.", param=param.split("[")[0]) from None


class PromptEncoder:
    """Turns completion prompts and chat messages into ids under a token limit."""

    def __init__(self, tokenizer: Any, max_prompt_tokens: int, token_healing: bool = True) -> None:
        self.tokenizer = tokenizer
        self.max_prompt_tokens = max_prompt_tokens
        self.token_healing = token_healing
        self.vocab_size = len(tokenizer)
        self.special_ids = set(getattr(tokenizer, "all_special_ids", ()))
        # +1: SentencePiece decodes a lone token without the space it carries
        self.longest_token = max(len(s) for s in token_strings(tokenizer)) + 1

    def check_length(self, text: str) -> None:
        """Refuse, without tokenizing, a prompt that cannot fit in ``max_prompt_tokens``."""
        if len(text) > self.max_prompt_tokens * self.longest_token:
            raise ConfigError(f"The prompt has {len(text)} characters; at most {self.max_prompt_tokens} tokens "
                              f"fit, which is at most {self.max_prompt_tokens * self.longest_token} characters "
                              "with this tokenizer.", "Shorten the prompt.", param="prompt")

    def completion(self, prompt: str | list[int], heal_tokens: bool) -> PreparedPrompt:
        """A completion prompt (text or token ids); healed when asked and the server allows it."""
        if isinstance(prompt, list):
            bad = [t for t in prompt if not 0 <= t < self.vocab_size]
            if bad:
                raise ConfigError(f"prompt token {bad[0]} is outside the vocabulary of {self.vocab_size}.",
                                  param="prompt")
            return PreparedPrompt(list(prompt), self.tokenizer.decode(prompt))
        check_text(prompt, "prompt")
        self.check_length(prompt)
        ids = self.tokenizer(prompt)["input_ids"]
        if heal_tokens and self.token_healing and len(ids) >= 2 and ids[-1] not in self.special_ids:
            tail = self.tokenizer.decode(ids[-1:])
            if tail and "\ufffd" not in tail:  # half a character cannot be matched by a token's text
                allowed = tokens_starting_with(self.tokenizer, tail)
                if int(allowed.sum()) > 1:  # else only the dropped token itself fits: healing changes nothing
                    return PreparedPrompt(ids[:-1], prompt, allowed, tail)
        return PreparedPrompt(ids, prompt)

    def chat(self, messages: list[dict]) -> PreparedPrompt:
        """Chat messages through the tokenizer's template (else genfast's default)."""
        for i, message in enumerate(messages):
            check_text(message["content"], f"messages[{i}].content")
            self.check_length(message["content"])
        template = getattr(self.tokenizer, "chat_template", None) or DEFAULT_CHAT_TEMPLATE
        text = self.tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                                  add_generation_prompt=True)
        self.check_length(text)
        return PreparedPrompt(self.tokenizer(text)["input_ids"], text)
