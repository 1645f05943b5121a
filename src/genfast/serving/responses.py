"""OpenAI response bodies and stream chunks, built from the engine's requests and events."""

from __future__ import annotations

from typing import Any

from genfast.runtime.logprobs import TokenLogprob
from genfast.serving.engine_core import Request
from genfast.serving.protocol import Usage
from genfast.serving.token_bytes import token_bytes


class Formatter:
    """One request's response shapes; ``chat`` picks chat.completion(.chunk) over text_completion."""

    def __init__(self, tokenizer: Any, model_name: str, response_id: str, created: int, chat: bool) -> None:
        self.tokenizer, self.model_name, self.id, self.created, self.chat = (
            tokenizer, model_name, response_id, created, chat)
        self.sent = bytearray()
        """The bytes of every token already described, for completions' ``text_offset``."""

    def _token(self, token_id: int) -> str:
        """A token's text; one that is part of a UTF-8 character is named ``token_id:N`` (as vLLM does),
        since its text alone is not a string and would collide with others in ``top_logprobs``."""
        text = self.tokenizer.decode([token_id])
        return f"token_id:{token_id}" if "\ufffd" in text else text

    # --- logprobs ------------------------------------------------------------------------
    def logprobs(self, entries: list[TokenLogprob]) -> dict:
        """Completions' {tokens, token_logprobs, top_logprobs, text_offset} or chat's {content: [...]}."""
        if self.chat:
            return {"content": [self._chat_entry(e) for e in entries], "refusal": None}
        tokens, values, tops, offsets = [], [], [], []
        for entry in entries:
            tokens.append(self._token(entry.token_id))
            values.append(entry.logprob)
            tops.append(None if entry.logprob is None else {self._token(t): lp for t, lp in entry.top})
            offsets.append(len(self.sent.decode("utf-8", "ignore")))  # characters, a split one not yet
            self.sent += token_bytes(self.tokenizer, entry.token_id)
        return {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}

    def _chat_entry(self, entry: TokenLogprob) -> dict:
        def one(token_id: int, logprob: float) -> dict:
            return {"token": self._token(token_id), "logprob": logprob,
                    "bytes": list(token_bytes(self.tokenizer, token_id))}

        return {**one(entry.token_id, entry.logprob), "top_logprobs": [one(t, lp) for t, lp in entry.top]}

    # --- bodies ------------------------------------------------------------------------------
    @staticmethod
    def usage(req: Request) -> dict:
        return Usage(prompt_tokens=req.prompt_tokens, completion_tokens=req.completion_tokens,
                     total_tokens=req.prompt_tokens + req.completion_tokens).model_dump()

    @staticmethod
    def finish_reason(req: Request) -> str | None:
        return req.finish_reason if req.finish_reason in ("stop", "length") else None

    def _envelope(self, obj: str, choices: list[dict], **extra) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model_name,
                "choices": choices, **extra}

    def response(self, req: Request, text: str, logprobs: dict | None) -> dict:
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text},
                      "finish_reason": self.finish_reason(req), "logprobs": logprobs}
            return self._envelope("chat.completion", [choice], usage=self.usage(req))
        choice = {"index": 0, "text": text, "finish_reason": self.finish_reason(req), "logprobs": logprobs}
        return self._envelope("text_completion", [choice], usage=self.usage(req))

    def chunk(self, text: str, finish: str | None, logprobs: dict | None = None, first: bool = False) -> dict:
        if self.chat:
            delta = {"role": "assistant", "content": text} if first else ({"content": text} if text else {})
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": logprobs}
            return self._envelope("chat.completion.chunk", [choice])
        choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": logprobs}
        return self._envelope("text_completion", [choice])

    def usage_chunk(self, req: Request) -> dict:
        return self._envelope("chat.completion.chunk" if self.chat else "text_completion", [],
                              usage=self.usage(req))
