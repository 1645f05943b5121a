"""The serving engine's synchronous core: admit, prefill, decode one step, retire.

No asyncio and no HTTP here: ``step()`` advances every running request by one token and
returns what happened. Row ``i`` of the KV cache belongs to ``running[i]``; a finished
request's row is refilled by the last row, so running rows stay contiguous.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch

from genfast.errors import ConfigError
from genfast.runtime.logprobs import TokenLogprob, prompt_logprobs, token_logprob
from genfast.runtime.sampling import SamplingParams, adjust_logits, sample_row
from genfast.serving.scheduler import SchedulerConfig, admit_count
from genfast.serving.text_stream import TextStream


class QueueFullError(ConfigError):
    """The engine's queue is full; the caller should retry later."""

    default_hint = "Retry after a moment, or raise --max-queued."


class EngineStoppedError(ConfigError):
    """The engine is shutting down and admits no new requests."""


@dataclass
class Request:
    """One generation request and its progress."""

    id: str
    prompt_ids: list[int]
    params: SamplingParams
    deadline: float | None = None
    arrival: float = field(default_factory=time.monotonic)
    """When the request reached the server (the HTTP layer passes its own arrival time)."""
    output_ids: list[int] = field(default_factory=list)
    text_stream: TextStream | None = None
    first_token_mask: torch.Tensor | None = None
    """(vocab,) bool: the tokens the first output token may be (token healing)."""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    prompt_logprobs: list[TokenLogprob] | None = None
    finish_reason: str | None = None
    error: str | None = None
    generator: torch.Generator | None = None
    spare_tokens: int = 0
    """Token healing: 1 when the first token only re-chose the prompt's last piece (not counted)."""
    # stage timings (seconds), for metrics
    admitted: float | None = None
    first_token: float | None = None
    prefill_s: float = 0.0
    decode_s: float = 0.0
    detokenize_s: float = 0.0

    @property
    def text(self) -> str:
        """The output text so far, held-back characters included."""
        return self.text_stream.text if self.text_stream else ""

    @property
    def prompt_tokens(self) -> int:
        """The client's prompt length (token healing dropped its last token from ``prompt_ids``)."""
        return len(self.prompt_ids) + (self.first_token_mask is not None)

    @property
    def completion_tokens(self) -> int:
        return len(self.output_ids) - self.spare_tokens


@dataclass
class Event:
    """What one step did for one request: a new token (and text), and/or its end."""

    request: Request
    token_id: int | None
    text_delta: str
    finished: bool
    logprob: TokenLogprob | None = None


def _filled(req: Request) -> int:
    """Cache positions a running request has filled: its prompt and every token but the newest,
    which is the next step's input."""
    return len(req.prompt_ids) + len(req.output_ids) - 1


class EngineCore:
    """Continuous (or dynamic / sequential) batching over a runtime with a row-addressable cache.

    The runtime needs ``new_cache(batch)``, ``prefill(ids, cache)`` and ``decode(tokens, cache)``
    (genfast's ``torch`` and ``torch-compile`` runtimes, or a fake in tests).
    """

    def __init__(self, runtime: Any, tokenizer: Any, config: SchedulerConfig | None = None,
                 max_model_len: int | None = None) -> None:
        self.runtime, self.tokenizer = runtime, tokenizer
        self.config = config or SchedulerConfig()
        self.config.validate()
        self.cache = runtime.new_cache(self.config.max_running)
        self.max_model_len = min(max_model_len or self.cache.max_len, self.cache.max_len)
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.accepting = True
        self._ids = itertools.count()
        self.last_batch_size = 0

    # --- requests in -------------------------------------------------------------------
    def add(self, prompt_ids: list[int], params: SamplingParams, timeout_s: float | None = None,
            request_id: str | None = None, **extra) -> Request:
        """Queue a request; raise ConfigError for an impossible one, QueueFullError when full."""
        req = self.make_request(prompt_ids, params, timeout_s, request_id, waiting=len(self.waiting), **extra)
        self.waiting.append(req)
        return req

    @property
    def vocab_size(self) -> int | None:
        return len(self.tokenizer) if hasattr(self.tokenizer, "__len__") else None

    def make_request(self, prompt_ids: list[int], params: SamplingParams, timeout_s: float | None = None,
                     request_id: str | None = None, waiting: int = 0, arrival: float | None = None,
                     first_token_mask: torch.Tensor | None = None, drop_prefix: str = "") -> Request:
        """Validate a request against the limits without queueing it.

        ``waiting``: requests already waiting for a row; only those beyond the free rows count
        against ``max_queued``. ``first_token_mask`` and ``drop_prefix`` come from token healing.
        """
        if not self.accepting:
            raise EngineStoppedError("The server is shutting down.", "Send the request to another replica.")
        params.validate(self.vocab_size)
        if not prompt_ids:
            raise ConfigError("The prompt is empty.", "Send at least one token of prompt.", param="prompt")
        cfg = self.config
        if cfg.max_prompt_tokens and len(prompt_ids) > cfg.max_prompt_tokens:
            raise ConfigError(f"The prompt has {len(prompt_ids)} tokens; this server accepts at most "
                              f"{cfg.max_prompt_tokens}.", "Shorten the prompt.", param="prompt")
        if cfg.max_output_tokens and params.max_tokens > cfg.max_output_tokens:
            raise ConfigError(f"max_tokens {params.max_tokens} is above this server's limit of "
                              f"{cfg.max_output_tokens}.", f"Ask for at most {cfg.max_output_tokens} tokens.",
                              param="max_tokens")
        healing = first_token_mask is not None  # may spend one token re-choosing the prompt's last one
        if len(prompt_ids) + params.max_tokens + healing > self.max_model_len:
            raise ConfigError(
                f"Prompt of {len(prompt_ids) + healing} tokens + max_tokens {params.max_tokens} exceeds the context "
                f"of {self.max_model_len} tokens.", f"Keep prompt + max_tokens <= {self.max_model_len}.",
                param="prompt" if len(prompt_ids) + healing >= self.max_model_len else "max_tokens")
        if waiting - (cfg.max_running - len(self.running)) >= cfg.max_queued:
            raise QueueFullError(f"Every row is busy and the queue is full ({cfg.max_queued} requests waiting).")
        req = Request(id=request_id or f"req-{next(self._ids)}", prompt_ids=list(prompt_ids), params=params,
                      deadline=time.monotonic() + timeout_s if timeout_s else None,
                      first_token_mask=first_token_mask,
                      text_stream=TextStream(self.tokenizer, params.stop, drop_prefix))
        if arrival is not None:
            req.arrival = arrival
        if params.seed is not None:
            req.generator = torch.Generator().manual_seed(params.seed)
        return req

    def abort(self, request_id: str, reason: str = "abort") -> None:
        """Mark a request finished; its row and cache are freed at the next step."""
        for req in itertools.chain(self.waiting, self.running):
            if req.id == request_id and req.finish_reason is None:
                req.finish_reason = reason

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    # --- one step ----------------------------------------------------------------------
    def step(self) -> list[Event]:
        """Admit and prefill newcomers, decode one token for every running request, retire."""
        events: list[Event] = []
        now = time.monotonic()
        self._expire(now, events)
        oldest = now - self.waiting[0].arrival if self.waiting else 0.0
        n = admit_count(self.config, [len(r.prompt_ids) for r in self.waiting], len(self.running), oldest)
        for _ in range(n):
            self._prefill(self.waiting.popleft(), events)
        self._retire()
        if self.running:
            self._decode(events)
            self._retire()
        done = time.monotonic()
        for event in events:  # a token reaches its client when the step returns, not when sampled
            if event.token_id is not None and event.request.first_token is None:
                event.request.first_token = done
        return events

    def _expire(self, now: float, events: list[Event]) -> None:
        for req in list(self.waiting):
            if req.finish_reason is None and req.deadline and now > req.deadline:
                req.finish_reason = "timeout"
            if req.finish_reason is not None:  # aborted or timed out while queued
                self.waiting.remove(req)
                events.append(Event(req, None, "", True))
        for req in self.running:
            if req.finish_reason is None and req.deadline and now > req.deadline:
                req.finish_reason = "timeout"
            if req.finish_reason is not None:  # ended from outside: abort, timeout, shutdown
                events.append(Event(req, None, "", True))

    def _prefill(self, req: Request, events: list[Event]) -> None:
        row = len(self.running)
        req.admitted = time.monotonic()
        try:
            start = time.perf_counter()
            ids = torch.tensor([req.prompt_ids], dtype=torch.long, device=self.runtime.device)
            if req.params.prompt_logprobs is not None:  # one extra full-sequence forward, only when asked
                full = self.runtime.logits(ids)[0].float().cpu()
                req.prompt_logprobs = prompt_logprobs(full, req.prompt_ids, req.params.prompt_logprobs)
            if req.params.max_tokens == 0:  # the prompt is only scored
                req.prefill_s = time.perf_counter() - start
                req.finish_reason = "length"
                events.append(Event(req, None, "", True))
                return
            logits, _ = self.runtime.prefill(ids, self.cache.view(row, row + 1))
            req.prefill_s = time.perf_counter() - start
            event = self._sample_and_accept(req, logits[0].float().cpu())
        except Exception as exc:  # noqa: BLE001 - one request's failure must not stop the others
            req.finish_reason, req.error = "error", f"{type(exc).__name__}: {exc}"
            events.append(Event(req, None, "", True))
            return
        self.running.append(req)
        events.append(event)

    def _decode(self, events: list[Event]) -> None:
        n = len(self.running)
        self.last_batch_size = n
        view = self.cache.view(0, n)
        view.lengths = [_filled(r) for r in self.running]
        tokens = torch.tensor([r.output_ids[-1] for r in self.running], device=self.runtime.device)
        start = time.perf_counter()
        try:
            logits, _ = self.runtime.decode(tokens, view)
            logits = logits.float().cpu()
        except Exception as exc:  # noqa: BLE001 - fail this batch's requests, keep serving
            for req in self.running:
                req.finish_reason, req.error = "error", f"{type(exc).__name__}: {exc}"
                events.append(Event(req, None, "", True))
            return
        elapsed = time.perf_counter() - start
        for i, req in enumerate(self.running):
            req.decode_s += elapsed
            try:
                events.append(self._sample_and_accept(req, logits[i]))
            except Exception as exc:  # noqa: BLE001
                req.finish_reason, req.error = "error", f"{type(exc).__name__}: {exc}"
                events.append(Event(req, None, "", True))

    def _sample_and_accept(self, req: Request, logits: torch.Tensor) -> Event:
        """Pick the next token from one row of raw logits (vocab,) and record it."""
        mask = req.first_token_mask if not req.output_ids else None
        token = sample_row(adjust_logits(logits, req.params, req.output_ids, mask), req.params, req.generator)
        logprob = token_logprob(logits, token, req.params.logprobs) if req.params.logprobs is not None else None
        if logprob is not None:
            req.logprobs.append(logprob)
        return self._accept(req, token, logprob)

    def _accept(self, req: Request, token: int, logprob: TokenLogprob | None = None) -> Event:
        """Record ``token``, update the text, and decide whether the request is done."""
        req.output_ids.append(token)
        start = time.perf_counter()
        delta = req.text_stream.add(token)
        eos = getattr(self.tokenizer, "eos_token_id", None)
        if req.text_stream.stopped:
            req.finish_reason = "stop"
        elif not req.params.ignore_eos and token == eos:
            req.finish_reason = "stop"
        elif len(req.output_ids) == 1 and req.first_token_mask is not None and not req.text:
            req.spare_tokens = 1  # healing only re-chose the prompt's last token: no new text yet
        elif req.completion_tokens >= req.params.max_tokens:
            req.finish_reason = "length"
        if req.finish_reason is not None:
            delta += req.text_stream.flush()
        req.detokenize_s += time.perf_counter() - start
        return Event(req, token, delta, req.finish_reason is not None, logprob)

    def _retire(self) -> None:
        """Drop finished rows, moving the last row into each freed slot."""
        i = 0
        while i < len(self.running):
            if self.running[i].finish_reason is None:
                i += 1
                continue
            last = len(self.running) - 1
            if i != last:
                self.cache.move_row(last, i, _filled(self.running[last]))
                self.running[i] = self.running[last]
            self.running.pop()
