"""Scale-out: the same engine as Ray Serve replicas behind one HTTP endpoint.

Each replica loads the model and runs its own AsyncEngine (continuous batching inside the
replica); Ray Serve routes requests between replicas, queues at most ``max_queued`` per
replica, and autoscales between ``min_replicas`` and ``max_replicas``.
"""

import importlib.util
import os
import signal
import threading

# Imported at module level on purpose: FastAPI resolves the route annotations below from this
# module's globals. The module itself is only imported for `genfast serve --ray`.
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError

from genfast.errors import BackendUnavailableError
from genfast.serving.protocol import ChatCompletionRequest, CompletionRequest
from genfast.serving.server import ServeConfig


def require_ray() -> None:
    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("ray.serve") is None:
        raise BackendUnavailableError("Ray Serve is not installed.", "pip install 'genfast[ray]'")


def build_deployment(cfg: ServeConfig, min_replicas: int = 1, max_replicas: int = 1):
    """A bound Ray Serve application serving ``cfg.model`` with genfast's OpenAI routes."""
    require_ray()
    from ray import serve

    from genfast.serving.app import openai_validation_error

    app = FastAPI(title="genfast (Ray Serve)")
    app.add_exception_handler(RequestValidationError, openai_validation_error)

    @serve.deployment(
        autoscaling_config={"min_replicas": min_replicas, "max_replicas": max_replicas,
                            "target_ongoing_requests": cfg.scheduler.max_running},
        max_ongoing_requests=cfg.scheduler.max_running + cfg.scheduler.max_queued,
        max_queued_requests=cfg.scheduler.max_queued,
    )
    @serve.ingress(app)
    class GenfastReplica:
        def __init__(self, serve_cfg: ServeConfig) -> None:
            from genfast.serving.app import OpenAIServer
            from genfast.serving.async_engine import AsyncEngine
            from genfast.serving.server import build_engine_parts, model_name

            handle, core, metrics = build_engine_parts(serve_cfg)
            self.server = OpenAIServer(AsyncEngine(core, metrics), handle.tokenizer, model_name(serve_cfg.model),
                                       metrics, default_max_tokens=serve_cfg.default_max_tokens,
                                       request_timeout_s=serve_cfg.request_timeout_s, warmup=False)

        async def _started(self) -> None:
            if not self.server.ready:  # the engine's loop must start inside the replica's event loop
                await self.server.engine.start()
                self.server.ready = True

        @app.post("/v1/completions")
        async def completions(self, body: CompletionRequest, request: Request):
            await self._started()
            return await self.server.completions(body, request)

        @app.post("/v1/chat/completions")
        async def chat_completions(self, body: ChatCompletionRequest, request: Request):
            await self._started()
            return await self.server.chat_completions(body, request)

        @app.get("/v1/models")
        async def models(self):
            return await self.server.models()

        @app.get("/health")
        async def health(self):
            await self._started()
            return await self.server.health()

        @app.get("/metrics")
        async def metrics(self):
            return await self.server.prometheus()

    return GenfastReplica.bind(cfg)


def start(cfg: ServeConfig, min_replicas: int = 1, max_replicas: int = 1) -> None:
    """Connect to Ray (``RAY_ADDRESS``, else a local instance on 127.0.0.1) and deploy."""
    require_ray()
    import ray
    from ray import serve

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init(address=os.environ["RAY_ADDRESS"])
        else:
            ray.init(include_dashboard=False, _node_ip_address="127.0.0.1")
    serve.start(http_options={"host": cfg.host, "port": cfg.port})
    serve.run(build_deployment(cfg, min_replicas, max_replicas), name="genfast", route_prefix="/")


def run_ray(cfg: ServeConfig, min_replicas: int = 1, max_replicas: int = 1) -> None:
    """Deploy, then block until SIGINT/SIGTERM and shut Ray Serve down cleanly."""
    from genfast.serving.server import check_port_free

    check_port_free(cfg.host, cfg.port)
    start(cfg, min_replicas, max_replicas)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    from ray import serve

    serve.shutdown()
