"""The OpenAI-compatible HTTP shell around an AsyncEngine: parse, submit, stream, format."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse

from genfast.errors import ConfigError
from genfast.serving.async_engine import AsyncEngine
from genfast.serving.engine_core import EngineStoppedError, QueueFullError
from genfast.serving.engine_core import Request as EngineRequest
from genfast.serving.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    Usage,
    error_body,
    new_id,
    now,
)

DEFAULT_CHAT_TEMPLATE = "{% for m in messages %}### {{ m.role }}:\n{{ m.content }}\n\n{% endfor %}### assistant:\n"
"""Used when the tokenizer has no chat template of its own (the demo model is a code model)."""


def _error(status: int, message: str, kind: str = "invalid_request_error", headers: dict | None = None):
    return JSONResponse(error_body(message, kind), status_code=status, headers=headers)


async def openai_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 for a malformed body, as OpenAI's 400 error."""
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return _error(400, f"Invalid request: {where or 'body'}: {first.get('msg', 'malformed')}")


def _sse(payload: Any) -> str:
    return f"data: {json.dumps(payload) if not isinstance(payload, str) else payload}\n\n"


class OpenAIServer:
    """Routes and their logic; holds the engine, tokenizer and limits."""

    def __init__(self, engine: AsyncEngine, tokenizer: Any, model_name: str, metrics=None,
                 default_max_tokens: int = 16, request_timeout_s: float = 300.0, warmup: bool = True) -> None:
        self.engine, self.tokenizer, self.model_name = engine, tokenizer, model_name
        self.metrics = metrics or engine.metrics
        self.default_max_tokens, self.request_timeout_s, self.warmup = default_max_tokens, request_timeout_s, warmup
        self.ready = False

    # --- lifecycle -------------------------------------------------------------------
    @asynccontextmanager
    async def lifespan(self, app: FastAPI):
        await self.engine.start()
        if self.warmup:  # one short request so the first user does not pay for lazy initialisation
            from genfast.runtime.sampling import SamplingParams

            req = self.engine.submit(self._encode("def"), SamplingParams(max_tokens=2, temperature=0))
            async for _ in self.engine.stream(req):
                pass
        self.ready = True
        yield
        self.ready = False
        await self.engine.stop()

    def build(self) -> FastAPI:
        app = FastAPI(title="genfast", lifespan=self.lifespan)
        app.add_exception_handler(RequestValidationError, openai_validation_error)
        app.post("/v1/completions")(self.completions)
        app.post("/v1/chat/completions")(self.chat_completions)
        app.get("/v1/models")(self.models)
        app.get("/health")(self.health)
        app.get("/metrics")(self.prometheus)
        return app

    # --- routes ----------------------------------------------------------------------
    async def models(self):
        return {"object": "list", "data": [{"id": self.model_name, "object": "model", "created": now(),
                                             "owned_by": "genfast"}]}

    async def health(self):
        if self.ready and self.engine.core.accepting:
            return {"status": "ok"}
        return JSONResponse({"status": "starting" if not self.ready else "stopping"}, status_code=503)

    async def prometheus(self):
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4")

    async def completions(self, body: CompletionRequest, request: Request):
        prompt = body.prompt if isinstance(body.prompt, str) else "".join(body.prompt[:1])
        if isinstance(body.prompt, list) and len(body.prompt) != 1:
            return _error(400, "Send one prompt per request (a list must hold exactly one string).")
        return await self._handle(body, prompt, request, chat=False)

    async def chat_completions(self, body: ChatCompletionRequest, request: Request):
        messages = [m.model_dump() for m in body.messages]
        template = getattr(self.tokenizer, "chat_template", None) or DEFAULT_CHAT_TEMPLATE
        prompt = self.tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                                    add_generation_prompt=True)
        return await self._handle(body, prompt, request, chat=True)

    # --- shared logic ----------------------------------------------------------------
    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text)["input_ids"]

    async def _handle(self, body, prompt: str, request: Request, chat: bool):
        start = time.perf_counter()
        prompt_ids = self._encode(prompt)
        if self.metrics:
            self.metrics.stage.labels("tokenize").observe(time.perf_counter() - start)
        try:
            req = self.engine.submit(prompt_ids, body.sampling(self.default_max_tokens), self.request_timeout_s)
        except QueueFullError as exc:
            self._count("rejected_queue_full")
            return _error(429, exc.message, "rate_limit_error", headers={"Retry-After": "1"})
        except EngineStoppedError as exc:
            return _error(503, exc.message, "server_error")
        except ConfigError as exc:
            self._count("rejected_invalid")
            return _error(400, f"{exc.message} {exc.hint}")
        ids = (new_id("chatcmpl" if chat else "cmpl"), now())
        if body.stream:
            return StreamingResponse(self._stream(req, ids, body.include_usage, chat),
                                     media_type="text/event-stream")
        return await self._complete(req, ids, chat, request)

    def _count(self, status: str) -> None:
        if self.metrics:
            self.metrics.requests.labels(status).inc()

    def _usage(self, req: EngineRequest) -> dict:
        return Usage(prompt_tokens=len(req.prompt_ids), completion_tokens=len(req.output_ids),
                     total_tokens=len(req.prompt_ids) + len(req.output_ids)).model_dump()

    @staticmethod
    def _finish(req: EngineRequest) -> str | None:
        return {"stop": "stop", "length": "length"}.get(req.finish_reason or "", req.finish_reason)

    async def _complete(self, req: EngineRequest, ids: tuple[str, int], chat: bool, request: Request):
        async def watch_disconnect() -> None:
            while True:
                await asyncio.sleep(0.25)
                if await request.is_disconnected():
                    self.engine.abort(req.id)
                    return

        watcher = asyncio.create_task(watch_disconnect())
        try:
            async for _ in self.engine.stream(req):
                pass
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if req.finish_reason == "error":
            return _error(500, f"Generation failed: {req.error}", "server_error")
        if req.finish_reason == "timeout":
            return _error(504, f"The request did not finish within {self.request_timeout_s:.0f} s.", "timeout")
        choice = ({"index": 0, "message": {"role": "assistant", "content": req.text},
                   "finish_reason": self._finish(req), "logprobs": None} if chat else
                  {"index": 0, "text": req.text, "finish_reason": self._finish(req), "logprobs": None})
        return {"id": ids[0], "object": "chat.completion" if chat else "text_completion", "created": ids[1],
                "model": self.model_name, "choices": [choice], "usage": self._usage(req)}

    async def _stream(self, req: EngineRequest, ids: tuple[str, int], include_usage: bool,
                      chat: bool) -> AsyncIterator[str]:
        obj = "chat.completion.chunk" if chat else "text_completion"

        def chunk(text: str | None, finish: str | None, first: bool = False) -> dict:
            if chat:
                delta = {"role": "assistant", "content": text or ""} if first else (
                    {"content": text} if text else {})
                choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            else:
                choice = {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}
            return {"id": ids[0], "object": obj, "created": ids[1], "model": self.model_name, "choices": [choice]}

        if chat:
            yield _sse(chunk("", None, first=True))
        async for event in self.engine.stream(req):
            if event.finished and req.finish_reason in ("error", "timeout"):
                yield _sse(error_body(f"Generation stopped: {req.error or req.finish_reason}", "server_error"))
                break
            if event.text_delta or event.finished:
                yield _sse(chunk(event.text_delta, self._finish(req) if event.finished else None))
        if include_usage:
            yield _sse({"id": ids[0], "object": obj, "created": ids[1], "model": self.model_name,
                        "choices": [], "usage": self._usage(req)})
        yield _sse("[DONE]")
