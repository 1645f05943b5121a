"""The OpenAI-compatible HTTP shell around an AsyncEngine: parse, submit, stream, format."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from genfast.errors import ConfigError
from genfast.runtime.sampling import SamplingParams
from genfast.serving.async_engine import AsyncEngine
from genfast.serving.engine_core import EngineStoppedError, QueueFullError
from genfast.serving.engine_core import Request as EngineRequest
from genfast.serving.http_errors import (
    error_response,
    install_error_handlers,
    request_body,
    route_responses,
    validation_error_response,
)
from genfast.serving.http_limits import ARRIVAL_KEY, HttpLimits, RequestLimits
from genfast.serving.metrics import CountResponses, ServingMetrics
from genfast.serving.prompts import PreparedPrompt, PromptEncoder
from genfast.serving.protocol import ChatCompletionRequest, CompletionRequest, error_body, new_id, now
from genfast.serving.responses import Formatter
from genfast.serving.server_shell import ServerShell

MAX_LOGIT_BIAS = 300
"""logit_bias entries per request."""

ENDED_BY_SERVER = {"error": "Generation failed", "timeout": "The request timed out",
                   "shutdown": "The server shut down"}
"""Finish reasons that are not an answer: streams get an error event, others an error status."""


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _sse(payload: Any) -> str:
    return f"data: {json.dumps(payload) if not isinstance(payload, str) else payload}\n\n"


class OpenAIServer(ServerShell):
    """Routes and their logic; holds the engine, tokenizer and limits.

    Give ``engine`` and ``tokenizer`` when they exist, or a ``loader`` that builds them: then the
    server answers at once (``/health`` 503 "loading") while the model loads in a thread.
    """

    def __init__(self, engine: AsyncEngine | None, tokenizer: Any, model_name: str,
                 metrics: ServingMetrics | None = None, default_max_tokens: int = 16,
                 request_timeout_s: float = 300.0, warmup: bool = True, token_healing: bool = True,
                 limits: HttpLimits | None = None, aliases: tuple[str, ...] = (),
                 loader: Callable[[], tuple[AsyncEngine, Any]] | None = None) -> None:
        self.model_name, self.aliases = model_name, {model_name, *aliases}
        self.metrics = metrics or (engine.metrics if engine else None)
        self.default_max_tokens, self.request_timeout_s, self.warmup = default_max_tokens, request_timeout_s, warmup
        self.token_healing = token_healing
        self.limits = limits or HttpLimits()
        self.loader = loader
        self.load_error: BaseException | None = None
        self.engine: AsyncEngine | None = None
        self.ready = False
        self.on_ready: Callable[[], None] | None = None
        self.on_load_error: Callable[[], None] | None = None
        if engine is not None:
            self.attach(engine, tokenizer)

    def attach(self, engine: AsyncEngine, tokenizer: Any) -> None:
        self.engine, self.tokenizer = engine, tokenizer
        core = engine.core
        limit = min(core.config.max_prompt_tokens or core.max_model_len, core.max_model_len)
        self.encoder = PromptEncoder(tokenizer, limit, self.token_healing)

    # --- lifecycle (the rest is ServerShell's) -----------------------------------------
    async def warm_up(self) -> None:
        req = self.engine.submit(self.encoder.completion("def", False).ids, SamplingParams(max_tokens=2, temperature=0))
        async for _ in self.engine.stream(req):
            pass

    def build(self) -> FastAPI:
        app = FastAPI(title="genfast", lifespan=self.lifespan)
        self.install(app)
        responses = route_responses()
        app.post("/v1/completions", responses=responses, openapi_extra=request_body(CompletionRequest))(
            self.completions)
        app.post("/v1/chat/completions", responses=responses, openapi_extra=request_body(ChatCompletionRequest))(
            self.chat_completions)
        app.get("/v1/models")(self.models)
        app.get("/health", responses={503: {"description": "Loading or shutting down."}})(self.health)
        app.get("/metrics")(self.prometheus)
        return app

    def install(self, app: FastAPI) -> None:
        """The HTTP edge on ``app``: OpenAI-shaped errors, request limits, response counting."""
        install_error_handlers(app, (CompletionRequest, ChatCompletionRequest))
        app.add_middleware(RequestLimits, limits=self.limits)
        app.add_middleware(CountResponses, metrics=self.metrics)

    # --- routes ----------------------------------------------------------------------
    async def completions(self, request: Request):
        body = await self._parse(request, CompletionRequest)
        if isinstance(body, JSONResponse):
            return body
        # healing changes the prompt's last token: not when the client scores or reads tokens
        heal = isinstance(body.prompt, str) and not body.echo and body.logprobs is None
        return await self._handle(body, request, False, self.encoder.completion, body.prompt, heal)

    async def chat_completions(self, request: Request):
        body = await self._parse(request, ChatCompletionRequest)
        if isinstance(body, JSONResponse):
            return body
        messages = [{"role": m.role, "content": m.content} for m in body.messages]
        return await self._handle(body, request, True, self.encoder.chat, messages)

    # --- shared logic ----------------------------------------------------------------
    async def _parse(self, request: Request, model):
        """The body as ``model``, or the error to answer. Sizes are checked on the parsed JSON before
        pydantic sees it: pydantic validates element by element, on the event loop."""
        if not self.ready:
            return error_response(503, "The model is still loading.", headers={"Retry-After": "1"})
        raw = await request.body()
        try:
            obj = json.loads(raw, parse_constant=_no_constants)
        except RecursionError:
            return error_response(400, "The JSON body is nested too deeply.")
        except UnicodeDecodeError:
            return error_response(400, "The body is not valid UTF-8 text.")
        except ValueError:
            return error_response(400, "The body is not valid JSON.")
        if not isinstance(obj, dict):
            return error_response(400, "The body must be a JSON object.")
        if (refusal := self._oversized(obj)) is not None:
            return refusal
        try:
            body = model.model_validate(obj)
        except ValidationError as exc:
            return validation_error_response(exc.errors())
        return self._refusal(body) or body

    def _oversized(self, obj: dict) -> JSONResponse | None:
        """Lists and maps longer than any request that can fit (one token per element at least)."""
        limit = self.encoder.max_prompt_tokens
        caps = {"logit_bias": MAX_LOGIT_BIAS, "stop": 4}
        for name, value in obj.items():
            cap = caps.get(name, limit)
            if isinstance(value, (list, dict)) and len(value) > cap:
                return error_response(400, f"{name} has {len(value)} entries; at most {cap} can be used here.",
                                      param=name)
        prompt, messages = obj.get("prompt"), obj.get("messages")
        nested = [p for p in prompt if isinstance(p, list)] if isinstance(prompt, list) else []
        nested += [m.get("content") for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
        for value in nested:
            if isinstance(value, list) and len(value) > limit:
                return error_response(400, f"A prompt part has {len(value)} entries; at most {limit} tokens fit.",
                                      param="messages" if messages else "prompt")
        return None

    def _refusal(self, body) -> JSONResponse | None:
        if body.model is not None and body.model not in self.aliases:
            return error_response(404, f"The model {body.model!r} does not exist; this server serves "
                                  f"{self.model_name!r}.", param="model", code="model_not_found")
        for i, stop in enumerate(body.stop if isinstance(body.stop, list) else [body.stop or ""]):
            try:
                stop.encode("utf-8")
            except UnicodeEncodeError:
                return error_response(400, f"stop[{i}] holds an unpaired surrogate.", param="stop")
        return None

    def _count(self, status: str) -> None:
        if self.metrics:
            self.metrics.count_request(status)

    async def _handle(self, body, request: Request, chat: bool, prepare: Callable[..., PreparedPrompt], *args):
        arrival = request.scope.get("state", {}).get(ARRIVAL_KEY, time.monotonic())
        start = time.perf_counter()
        try:
            prompt = await asyncio.to_thread(prepare, *args)  # tokenizing never blocks the event loop
            if self.metrics:
                self.metrics.stage("tokenize", time.perf_counter() - start)
            req = self.engine.submit(prompt.ids, body.sampling(self.default_max_tokens), self.request_timeout_s,
                                     arrival=arrival, first_token_mask=prompt.first_token_mask,
                                     drop_prefix=prompt.drop_prefix)
        except QueueFullError as exc:
            self._count("rejected_queue_full")
            return error_response(429, exc.message, headers={"Retry-After": "1"})
        except EngineStoppedError as exc:
            return error_response(503, exc.message, headers={"Retry-After": "1"})
        except ConfigError as exc:
            self._count("rejected_invalid")
            hint = "" if exc.hint == ConfigError.default_hint else f" {exc.hint}"  # not the CLI's hint
            return error_response(400, f"{exc.message}{hint}", param=getattr(exc, "param", None))
        fmt = Formatter(self.tokenizer, self.model_name, new_id("chatcmpl" if chat else "cmpl"), now(), chat)
        echo = prompt.text if getattr(body, "echo", False) else None
        if body.stream:
            return StreamingResponse(self._stream(req, fmt, body.include_usage, echo),
                                     media_type="text/event-stream")
        return await self._complete(req, fmt, echo, request)

    async def _complete(self, req: EngineRequest, fmt: Formatter, echo: str | None, request: Request):
        await self.engine.run_to_end(req, request.is_disconnected)
        if req.finish_reason == "timeout":
            return error_response(504, f"The request did not finish within {self.request_timeout_s:g} s.")
        if req.finish_reason == "shutdown":
            return error_response(503, "The server shut down before the request finished.")
        if req.finish_reason == "error":
            return error_response(500, f"Generation failed: {req.error}", "server_error")
        entries = [*(req.prompt_logprobs or [])] if echo is not None else []
        logprobs = fmt.logprobs(entries + req.logprobs) if req.params.logprobs is not None else None
        return fmt.response(req, (echo or "") + req.text, logprobs)

    async def _stream(self, req: EngineRequest, fmt: Formatter, include_usage: bool,
                      echo: str | None) -> AsyncIterator[str]:
        wants_logprobs = req.params.logprobs is not None
        if fmt.chat:
            yield _sse(fmt.chunk("", None, first=True))
        async for event in self.engine.stream(req):
            if echo is not None and req.finish_reason not in ENDED_BY_SERVER:  # prefill scored the prompt
                entries = fmt.logprobs(req.prompt_logprobs or []) if wants_logprobs else None
                yield _sse(fmt.chunk(echo, None, entries))
                echo = None
            if event.finished and req.finish_reason in ENDED_BY_SERVER:
                detail = f": {req.error}" if req.error else "."
                yield _sse(error_body(f"{ENDED_BY_SERVER[req.finish_reason]}{detail}", "server_error"))
                break
            logprobs = fmt.logprobs([event.logprob]) if wants_logprobs and event.logprob else None
            if event.text_delta or event.finished or logprobs:
                finish = fmt.finish_reason(req) if event.finished else None
                yield _sse(fmt.chunk(event.text_delta, finish, logprobs))
        if include_usage:
            yield _sse(fmt.usage_chunk(req))
        yield _sse("[DONE]")
