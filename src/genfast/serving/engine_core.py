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
from genfast.runtime.sampling import SamplingParams, sample_row
from genfast.serving.scheduler import SchedulerConfig, admit_count


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
    output_ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None
    error: str | None = None
    generator: torch.Generator | None = None
    # stage timings (seconds), for metrics
    admitted: float | None = None
    first_token: float | None = None
    prefill_s: float = 0.0
    decode_s: float = 0.0
    detokenize_s: float = 0.0


@dataclass
class Event:
    """What one step did for one request: a new token (and text), and/or its end."""

    request: Request
    token_id: int | None
    text_delta: str
    finished: bool


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
            request_id: str | None = None) -> Request:
        """Queue a request; raise ConfigError for an impossible one, QueueFullError when full."""
        req = self.make_request(prompt_ids, params, timeout_s, request_id, queued=len(self.waiting))
        self.waiting.append(req)
        return req

    def make_request(self, prompt_ids: list[int], params: SamplingParams, timeout_s: float | None = None,
                     request_id: str | None = None, queued: int = 0) -> Request:
        """Validate a request against the limits (``queued`` already waiting) without queueing it."""
        if not self.accepting:
            raise EngineStoppedError("The server is shutting down.", "Send the request to another replica.")
        params.validate()
        if not prompt_ids:
            raise ConfigError("The prompt is empty.", "Send at least one token of prompt.")
        cfg = self.config
        if cfg.max_prompt_tokens and len(prompt_ids) > cfg.max_prompt_tokens:
            raise ConfigError(f"The prompt has {len(prompt_ids)} tokens; this server accepts at most "
                              f"{cfg.max_prompt_tokens}.", "Shorten the prompt.")
        if cfg.max_output_tokens and params.max_tokens > cfg.max_output_tokens:
            raise ConfigError(f"max_tokens {params.max_tokens} is above this server's limit of "
                              f"{cfg.max_output_tokens}.", f"Ask for at most {cfg.max_output_tokens} tokens.")
        if len(prompt_ids) + params.max_tokens > self.max_model_len:
            raise ConfigError(
                f"Prompt of {len(prompt_ids)} tokens + max_tokens {params.max_tokens} exceeds the context "
                f"of {self.max_model_len} tokens.", f"Keep prompt + max_tokens <= {self.max_model_len}.")
        if queued >= self.config.max_queued:
            raise QueueFullError(f"The queue is full ({self.config.max_queued} requests waiting).")
        req = Request(id=request_id or f"req-{next(self._ids)}", prompt_ids=list(prompt_ids), params=params,
                      deadline=time.monotonic() + timeout_s if timeout_s else None)
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
            if req.finish_reason in ("abort", "timeout"):
                events.append(Event(req, None, "", True))

    def _prefill(self, req: Request, events: list[Event]) -> None:
        row = len(self.running)
        req.admitted = time.monotonic()
        try:
            start = time.perf_counter()
            ids = torch.tensor([req.prompt_ids], dtype=torch.long, device=self.runtime.device)
            logits, _ = self.runtime.prefill(ids, self.cache.view(row, row + 1))
            req.prefill_s = time.perf_counter() - start
            token = sample_row(logits[0].cpu(), req.params, req.generator)
        except Exception as exc:  # noqa: BLE001 - one request's failure must not stop the others
            req.finish_reason, req.error = "error", f"{type(exc).__name__}: {exc}"
            events.append(Event(req, None, "", True))
            return
        self.running.append(req)
        req.first_token = time.monotonic()
        events.append(self._accept(req, token))

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
                token = sample_row(logits[i], req.params, req.generator)
            except Exception as exc:  # noqa: BLE001
                req.finish_reason, req.error = "error", f"{type(exc).__name__}: {exc}"
                events.append(Event(req, None, "", True))
                continue
            events.append(self._accept(req, token))

    def _accept(self, req: Request, token: int) -> Event:
        """Record ``token``, update the text, and decide whether the request is done."""
        req.output_ids.append(token)
        start = time.perf_counter()
        text = self.tokenizer.decode(req.output_ids, skip_special_tokens=True)
        req.detokenize_s += time.perf_counter() - start
        eos = getattr(self.tokenizer, "eos_token_id", None)
        if not req.params.ignore_eos and token == eos:
            req.finish_reason = "stop"
        elif len(req.output_ids) >= req.params.max_tokens:
            req.finish_reason = "length"
        if text.endswith("\ufffd") and req.finish_reason is None:
            return Event(req, token, "", False)  # an unfinished UTF-8 character: wait for the next token
        for stop in req.params.stop:
            cut = text.find(stop, max(0, len(req.text) - len(stop)))
            if cut != -1:
                text, req.finish_reason = text[:cut], "stop"
                break
        delta, req.text = text[len(req.text):], text
        return Event(req, token, delta, req.finish_reason is not None)

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
