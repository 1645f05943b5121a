"""Assemble an engine and HTTP app for a model, and run it with uvicorn."""

from __future__ import annotations

import errno
from collections.abc import Callable
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path

from genfast.errors import ConfigError
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
    version: int = 1


def check_port_free(host: str, port: int) -> None:
    """Fail early, with the fix, if something already listens on host:port."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"Port {port} on {host} is already in use.",
                                  "Stop the other server or pass another --port.") from None
            raise ConfigError(f"Cannot listen on {host}:{port}: {exc.strerror}.", "Check --host.") from None


def build_engine_parts(cfg: ServeConfig):
    """Load the model and build (handle, EngineCore, metrics) for ``cfg``."""
    from genfast.backends.registry import build_runtime
    from genfast.models.loading import load
    from genfast.serving.engine_core import EngineCore
    from genfast.serving.metrics import ServingMetrics

    cfg.scheduler.validate()
    handle = load(cfg.model, device=cfg.device, dtype=cfg.dtype)
    runtime = build_runtime(cfg.backend or handle.backend, handle, batch=cfg.scheduler.max_running,
                            max_cache_len=cfg.max_model_len, precision=cfg.precision or handle.precision)
    if not hasattr(runtime, "new_cache"):  # no batched row cache: each request keeps its own
        from genfast.serving.row_adapter import RowAdapter

        runtime = RowAdapter(runtime, cfg.max_model_len or handle.context_length)
    core = EngineCore(runtime, handle.tokenizer, cfg.scheduler, max_model_len=cfg.max_model_len)
    return handle, core, ServingMetrics()


def model_name(source: str) -> str:
    return source if source == "demo" else Path(source).name or source


def create_app(cfg: ServeConfig):
    """The FastAPI app for ``cfg`` (the model is loaded now; the engine starts with the app)."""
    from genfast.serving.app import OpenAIServer
    from genfast.serving.async_engine import AsyncEngine

    handle, core, metrics = build_engine_parts(cfg)
    server = OpenAIServer(AsyncEngine(core, metrics), handle.tokenizer, model_name(cfg.model), metrics,
                          default_max_tokens=cfg.default_max_tokens, request_timeout_s=cfg.request_timeout_s)
    return server.build()


def run(cfg: ServeConfig, on_loaded: Callable[[], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM; then stop admitting, finish running requests, exit 0."""
    import uvicorn

    check_port_free(cfg.host, cfg.port)
    app = create_app(cfg)
    if on_loaded:
        on_loaded()
    # uvicorn drains connections on SIGTERM/SIGINT, restores the previous handlers, then re-raises
    # the signal. With no-op handlers in place that re-raise is absorbed and a graceful stop exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning",
                timeout_graceful_shutdown=int(cfg.graceful_shutdown_s))
