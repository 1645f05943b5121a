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

    from genfast.serving.http_errors import install_error_handlers, request_body
    from genfast.serving.http_limits import RequestLimits

    app = FastAPI(title="genfast (Ray Serve)")
    install_error_handlers(app, (CompletionRequest, ChatCompletionRequest))
    app.add_middleware(RequestLimits, limits=cfg.http)  # Ray's proxy holds the connections themselves

    @serve.deployment(
        autoscaling_config={"min_replicas": min_replicas, "max_replicas": max_replicas,
                            "target_ongoing_requests": cfg.scheduler.max_running},
        max_ongoing_requests=cfg.scheduler.max_running + cfg.scheduler.max_queued,
        max_queued_requests=cfg.scheduler.max_queued,
    )
    @serve.ingress(app)
    class GenfastReplica:
        def __init__(self, serve_cfg: ServeConfig) -> None:
            from genfast.serving.server import build_server

            self.server = build_server(serve_cfg, eager=True, warmup=False)
            self.starting = False

        async def _started(self) -> None:
            if not self.starting:  # the engine's loop must start inside the replica's event loop
                self.starting = True
                await self.server.start()

        @app.post("/v1/completions", openapi_extra=request_body(CompletionRequest))
        async def completions(self, request: Request):
            await self._started()
            return await self.server.completions(request)

        @app.post("/v1/chat/completions", openapi_extra=request_body(ChatCompletionRequest))
        async def chat_completions(self, request: Request):
            await self._started()
            return await self.server.chat_completions(request)

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


def _init_loopback_ray() -> None:
    """Start a new local Ray instance whose processes listen on the loopback interface only.

    * The node IP decides where Ray binds: GCS, raylet (node and object manager), every core
      worker's gRPC server, the dashboard/runtime-env agents, the metrics exporters. But
      ``ray.init(_node_ip_address="127.0.0.1")`` turns loopback into the host's outward IP
      (``services.resolve_ip_for_localhost`` → ``get_node_ip_address``), and all of those then
      listen on 0.0.0.0/:: — unless ``ray_constants.ENABLE_RAY_CLUSTER`` is false (Ray's default
      on macOS/Windows, ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER``). It is read at call time, so it is
      switched off around this ``ray.init`` only; the child processes get the IP on their
      command lines.
    * Serve replicas bind an inter-deployment gRPC server to ``[::]:0`` whatever the node IP
      (``ray/serve/_private/replica.py``: ``add_port_to_grpc_server(self._server, "[::]:0")``);
      a worker setup hook rebinds it to loopback, the address routers dial on this node.
    """
    import ray
    from ray._common.network_utils import get_localhost_ip, is_localhost
    from ray._private import ray_constants

    def loopback_grpc_worker_hook() -> None:
        # Nested, so cloudpickle ships it by value: workers need not import genfast (nor torch).
        import sys

        import ray
        from ray._common import tls_utils
        from ray._common.network_utils import build_address, get_localhost_ip, is_localhost

        add_port = tls_utils.add_port_to_grpc_server
        if getattr(add_port, "genfast_loopback", False) or not is_localhost(ray.util.get_node_ip_address()):
            return

        def add_port_on_loopback(server, address: str):
            host, _, port = address.rpartition(":")
            if host in ("", "[::]", "::", "0.0.0.0"):
                address = build_address(get_localhost_ip(), port)
            return add_port(server, address)

        add_port_on_loopback.genfast_loopback = True
        tls_utils.add_port_to_grpc_server = add_port_on_loopback
        replica = sys.modules.get("ray.serve._private.replica")  # it imports the name
        if replica is not None:
            replica.add_port_to_grpc_server = add_port_on_loopback

    enable_cluster = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(address="local", include_dashboard=False, _node_ip_address=get_localhost_ip(),
                 runtime_env={"worker_process_setup_hook": loopback_grpc_worker_hook})
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = enable_cluster
    if not is_localhost(ray.util.get_node_ip_address()):
        import logging

        logging.getLogger("genfast.serving").warning(
            "Ray's node IP is %s, not loopback: its processes may listen on all interfaces.",
            ray.util.get_node_ip_address())


def start(cfg: ServeConfig, min_replicas: int = 1, max_replicas: int = 1) -> None:
    """Connect to Ray and deploy: to ``RAY_ADDRESS``, else to a cluster ``ray start`` left on this
    host, else to a new local instance that listens on loopback only."""
    require_ray()
    import ray
    from ray import serve
    from ray._private import services

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init(address=os.environ["RAY_ADDRESS"])
        elif services.find_bootstrap_address(None) is not None:  # `ray start`'s, which ray.init() joins
            ray.init(include_dashboard=False, _node_ip_address="127.0.0.1")
        else:
            _init_loopback_ray()
    serve.start(http_options={"host": cfg.host, "port": cfg.port})
    serve.run(build_deployment(cfg, min_replicas, max_replicas), name="genfast", route_prefix="/")


def run_ray(cfg: ServeConfig, min_replicas: int = 1, max_replicas: int = 1) -> None:
    """Deploy, then block until SIGINT/SIGTERM and shut Ray Serve down cleanly."""
    from genfast.serving.listen import check_port_free

    check_port_free(cfg.host, cfg.port)
    start(cfg, min_replicas, max_replicas)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    from ray import serve

    serve.shutdown()
