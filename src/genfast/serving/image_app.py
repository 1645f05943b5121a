"""OpenAI's images API over an image generator: ``POST /v1/images/generations`` (b64 PNGs), with the
text server's edge (limits, OpenAI-shaped errors, 429, timeouts, metrics, drain on SIGTERM)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import secrets
import time
from collections.abc import Callable

import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from genfast.errors import ConfigError
from genfast.serving.async_engine import AsyncEngine
from genfast.serving.engine_core import EngineStoppedError, QueueFullError
from genfast.serving.http_errors import (
    error_response,
    install_error_handlers,
    request_body,
    route_responses,
    validation_error_response,
)
from genfast.serving.http_limits import ARRIVAL_KEY, HttpLimits, RequestLimits
from genfast.serving.metrics import CountResponses, ImageMetrics
from genfast.serving.protocol import IMAGE_SEEDS, ImageGenerationRequest, now
from genfast.serving.server_shell import ServerShell

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def label_of(prompt: str, classes: int | None) -> int | None:
    """The class a prompt names ("7", "seven"); None for an unconditional model; ConfigError otherwise."""
    if classes is None:
        return None
    text = prompt.strip().lower()
    # isdecimal, not isdigit: superscripts and circled digits are "digits" int() cannot read
    label = int(text) if text.isdecimal() and len(text) <= 3 else (DIGIT_WORDS.index(text) if text in DIGIT_WORDS
                                                                  else None)
    if label is None or label >= classes:
        raise ConfigError(f"The prompt must name one of this model's classes, 0-{classes - 1} (e.g. \"7\"); "
                          f"got {prompt[:40]!r}.", param="prompt")
    return label


def png_b64(image: torch.Tensor) -> str:
    """A uint8 image (channels, h, w) as a base64 PNG."""
    from PIL import Image

    array = image.permute(1, 2, 0).numpy()
    picture = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class ImageServer(ServerShell):
    """Routes and lifecycle of an image server; the same surface ``serving.server.run`` drives."""

    def __init__(self, model_name: str, metrics: ImageMetrics, loader: Callable[[], tuple[AsyncEngine, object]],
                 request_timeout_s: float = 300.0, limits: HttpLimits | None = None,
                 aliases: tuple[str, ...] = (), warmup: bool = True) -> None:
        self.model_name, self.aliases = model_name, {model_name, *aliases}
        self.metrics, self.loader = metrics, loader
        self.request_timeout_s, self.limits, self.warmup = request_timeout_s, limits or HttpLimits(), warmup
        self.engine: AsyncEngine | None = None
        self.handle = None
        self.ready = False
        self.load_error: BaseException | None = None
        self.on_ready: Callable[[], None] | None = None
        self.on_load_error: Callable[[], None] | None = None

    def attach(self, engine: AsyncEngine, handle) -> None:
        self.engine, self.handle = engine, handle

    async def warm_up(self) -> None:
        req = self.engine.submit([0] if self.handle.num_classes else [], [0])
        async for _ in self.engine.stream(req):
            pass

    def build(self) -> FastAPI:
        app = FastAPI(title="genfast", lifespan=self.lifespan)
        install_error_handlers(app, (ImageGenerationRequest,))
        app.add_middleware(RequestLimits, limits=self.limits)
        app.add_middleware(CountResponses, metrics=self.metrics)
        app.post("/v1/images/generations", responses=route_responses(),
                 openapi_extra=request_body(ImageGenerationRequest))(self.generations)
        app.get("/v1/models")(self.models)
        app.get("/health", responses={503: {"description": "Loading or shutting down."}})(self.health)
        app.get("/metrics")(self.prometheus)
        return app

    async def _body(self, request: Request) -> ImageGenerationRequest | JSONResponse:
        if not self.ready:
            return error_response(503, "The model is still loading.", headers={"Retry-After": "1"})
        try:
            obj = json.loads(await request.body())
        except (ValueError, RecursionError):
            return error_response(400, "The body is not valid JSON.")
        if not isinstance(obj, dict):
            return error_response(400, "The body must be a JSON object.")
        try:
            body = ImageGenerationRequest.model_validate(obj)
        except ValidationError as exc:
            return validation_error_response(exc.errors())
        h = self.handle
        if body.model is not None and body.model not in self.aliases:
            return error_response(404, f"The model {body.model!r} does not exist; this server serves "
                                  f"{self.model_name!r}.", param="model", code="model_not_found")
        if body.response_format == "url":
            return error_response(400, "response_format 'url' is not supported: genfast hosts no image URLs. "
                                  "Use b64_json.", param="response_format")
        own = f"{h.image_size}x{h.image_size}"
        if body.size not in (None, own, "auto"):
            return error_response(400, f"size {body.size!r} is not this model's; it draws {own} images.",
                                  param="size")
        return body

    async def generations(self, request: Request):
        body = await self._body(request)
        if isinstance(body, JSONResponse):
            return body
        arrival = request.scope.get("state", {}).get(ARRIVAL_KEY, time.monotonic())
        try:
            label = label_of(body.prompt, self.handle.num_classes)
            first = body.seed if body.seed is not None else secrets.randbelow(IMAGE_SEEDS)
            req = self.engine.submit([label] * body.n if label is not None else [],
                                     [(first + i) % IMAGE_SEEDS for i in range(body.n)], self.request_timeout_s,
                                     arrival=arrival)
        except QueueFullError as exc:
            self.metrics.count_request("rejected_queue_full")
            return error_response(429, exc.message, headers={"Retry-After": "1"})
        except EngineStoppedError as exc:
            return error_response(503, exc.message, headers={"Retry-After": "1"})
        except ConfigError as exc:
            self.metrics.count_request("rejected_invalid")
            return error_response(400, exc.message, param=getattr(exc, "param", None))
        await self.engine.run_to_end(req, request.is_disconnected)
        if req.finish_reason == "timeout":
            return error_response(504, f"The request did not finish within {self.request_timeout_s:g} s.")
        if req.finish_reason == "shutdown":
            return error_response(503, "The server shut down before the request finished.")
        if req.finish_reason != "stop":
            return error_response(500, f"Generation failed: {req.error or req.finish_reason}", "server_error")
        images = await asyncio.to_thread(lambda: [png_b64(image) for image in req.images])
        return {"created": now(), "data": [{"b64_json": b64, "revised_prompt": None} for b64 in images]}
