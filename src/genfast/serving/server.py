"""Assemble an engine and HTTP app for a model, and run it with uvicorn."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from genfast.errors import Interrupted
from genfast.serving.engine_thread import EngineThread
from genfast.serving.http_limits import HttpLimits
from genfast.serving.listen import listen
from genfast.serving.scheduler import SchedulerConfig


@dataclass
class ServeConfig:
    """Everything ``genfast serve`` needs; saved nowhere, printed at start."""

    model: str = "demo"
    backend: str | None = None
    """None: the artifact's recipe backend, else torch."""
    precision: str | None = None
    """Backend precision (int8 / int4 for onnxruntime and openvino)."""
    device: str = "cpu"
    dtype: str = "fp32"
    host: str = "127.0.0.1"
    port: int = 8000
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    max_model_len: int | None = None
    """Prompt + output tokens per request (default: the model's context)."""
    default_max_tokens: int = 16
    request_timeout_s: float = 300.0
    graceful_shutdown_s: float = 30.0
    http: HttpLimits = field(default_factory=HttpLimits)
    token_healing: bool = True
    """Completions whose prompt ends mid-token (a trailing space) are healed."""
    served_model_name: str | None = None
    """The ``model`` clients send (default: the model directory's name, or ``demo``)."""
    version: int = 1


def build_engine_parts(cfg: ServeConfig):
    """Load the model and build (handle, EngineCore) for ``cfg``."""
    from genfast.backends.registry import build_runtime
    from genfast.models.loading import load
    from genfast.serving.engine_core import EngineCore

    cfg.scheduler.validate()
    handle = load(cfg.model, device=cfg.device, dtype=cfg.dtype)
    runtime = build_runtime(cfg.backend or handle.backend, handle, batch=cfg.scheduler.max_running,
                            max_cache_len=cfg.max_model_len, precision=cfg.precision or handle.precision)
    if not hasattr(runtime, "new_cache"):  # no batched row cache: each request keeps its own
        from genfast.serving.row_adapter import RowAdapter

        runtime = RowAdapter(runtime, cfg.max_model_len or handle.context_length)
    core = EngineCore(runtime, handle.tokenizer, cfg.scheduler, max_model_len=cfg.max_model_len)
    return handle, core


def model_name(cfg: ServeConfig) -> str:
    """The name clients send as ``model``: --served-model-name, else the source's last path part."""
    if cfg.served_model_name:
        return cfg.served_model_name
    return cfg.model if cfg.model in ("demo", "demo-image") else Path(cfg.model).name or cfg.model


def build_image_server(cfg: ServeConfig, warmup: bool = True):
    """The ImageServer for an image generator; its model loads as the server starts."""
    from genfast.images.model import load_image_model
    from genfast.images.runners import build_denoiser
    from genfast.serving.async_engine import AsyncEngine
    from genfast.serving.image_app import ImageServer
    from genfast.serving.image_engine import ImageEngineConfig, ImageEngineCore
    from genfast.serving.metrics import ImageMetrics

    metrics = ImageMetrics(model_name(cfg))
    config = ImageEngineConfig(max_batch_images=max(cfg.scheduler.max_running, 10),
                               max_queued=cfg.scheduler.max_queued)
    config.validate()

    thread = EngineThread()

    def build():
        handle = load_image_model(cfg.model)
        built = build_denoiser(handle, cfg.backend or handle.recipe.get("engine", "torch"),
                               cfg.precision or handle.recipe.get("precision", "fp32"),
                               export_dir=handle.path if (handle.path / "unet.onnx").is_file() else None)
        core = ImageEngineCore(handle, built.denoise, config)
        core.built = built  # keeps an exported graph's files alive with the engine
        return AsyncEngine(core, metrics, thread), handle

    def load():
        return thread.run(build)

    return ImageServer(model_name(cfg), metrics, load, request_timeout_s=cfg.request_timeout_s, limits=cfg.http,
                       aliases=(cfg.model,), warmup=warmup)


def build_server(cfg: ServeConfig, eager: bool, warmup: bool = True):
    """The OpenAIServer for ``cfg``: its model loaded now (``eager``), or by the server as it starts.
    Image generators get an ImageServer, which always loads as it starts."""
    from genfast.images.source import is_image_model

    if is_image_model(cfg.model):
        return build_image_server(cfg, warmup)
    from genfast.serving.app import OpenAIServer
    from genfast.serving.async_engine import AsyncEngine
    from genfast.serving.metrics import ServingMetrics

    metrics = ServingMetrics(model_name(cfg))  # exists before the model, so responses while loading count

    thread = EngineThread()

    def build():
        handle, core = build_engine_parts(cfg)
        return AsyncEngine(core, metrics, thread), handle.tokenizer

    def load():
        return thread.run(build)

    options = dict(default_max_tokens=cfg.default_max_tokens, request_timeout_s=cfg.request_timeout_s,
                   token_healing=cfg.token_healing, limits=cfg.http, aliases=(cfg.model,), warmup=warmup,
                   metrics=metrics)
    if eager:
        engine, tokenizer = load()
        return OpenAIServer(engine, tokenizer, model_name(cfg), **options)
    return OpenAIServer(None, None, model_name(cfg), loader=load, **options)


def create_app(cfg: ServeConfig):
    """The FastAPI app for ``cfg``, its model loaded now (the engine starts with the app)."""
    return build_server(cfg, eager=True).build()


def _draining_server(config, api, grace_s: float):
    """uvicorn's Server with genfast's shutdown: the first SIGTERM / SIGINT stops admitting (503,
    ``/health`` 503) while the socket stays open, lets running requests finish for up to
    ``grace_s``, then exits; a second signal cuts the remaining streams with an error event."""
    import uvicorn

    class Server(uvicorn.Server):
        draining = False
        cut_by: int | None = None

        async def startup(self, sockets=None) -> None:
            self.loop = asyncio.get_running_loop()
            await super().startup(sockets)

        def handle_exit(self, sig: int, frame) -> None:  # runs in the main thread, as a signal handler
            if self.should_exit:
                return  # already leaving
            if api.engine is None or not api.ready:  # still loading: nothing served, stopped like any command
                self.cut_by = sig
                self.should_exit = True
            elif not self.draining:
                self.draining = True
                api.engine.core.accepting = False
                self.loop.call_soon_threadsafe(lambda: self.loop.create_task(self._drain()))
            else:
                self.cut_by = sig
                self.loop.call_soon_threadsafe(self._cut)

        async def _drain(self) -> None:
            deadline = time.monotonic() + grace_s
            while api.engine.busy and time.monotonic() < deadline and self.cut_by is None:
                await asyncio.sleep(0.05)
            if api.engine.busy:
                self._cut()
            await asyncio.sleep(0.2)  # let the streams write their last events
            self.should_exit = True

        def _cut(self) -> None:
            for request_id in api.engine.request_ids():
                api.engine.abort(request_id, "shutdown")

    return Server(config)


def run(cfg: ServeConfig, on_loaded: Callable[[], None] | None = None, sock: socket.socket | None = None) -> None:
    """Serve until SIGINT/SIGTERM; then stop admitting, finish running requests, exit 0.

    The socket is open before the model loads (``sock``, from ``listen``, may be opened earlier
    still), so ``/health`` answers 503 while it loads.
    """
    import uvicorn

    from genfast.serving.http_limits import guarded_http_protocol

    sock = sock or listen(cfg.host, cfg.port)
    cfg.http.validate()
    cfg.scheduler.validate()
    api = build_server(cfg, eager=False)
    api.on_ready = on_loaded
    config = uvicorn.Config(api.build(), host=cfg.host, port=cfg.port, log_level="warning",
                            http=guarded_http_protocol(cfg.http, api.metrics.count_response),
                            timeout_keep_alive=cfg.http.keep_alive_s,  # type: ignore[arg-type]
                            timeout_graceful_shutdown=int(cfg.graceful_shutdown_s))
    server = _draining_server(config, api, cfg.graceful_shutdown_s)
    api.on_load_error = lambda: setattr(server, "should_exit", True)
    server.run(sockets=[sock])
    if api.load_error is not None:
        raise api.load_error
    if server.cut_by is not None and not api.ready and not server.draining:
        raise Interrupted("The server stopped while the model was loading; nothing was served.",
                          "Run the command again.", terminated=server.cut_by == signal.SIGTERM)
    if server.cut_by is not None:
        raise Interrupted("The server stopped before every request finished; the streams still open got an "
                          "error event.", "Let the drain finish (one SIGTERM) to end requests cleanly.",
                          terminated=server.cut_by == signal.SIGTERM)
