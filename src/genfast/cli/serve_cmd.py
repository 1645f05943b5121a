"""``genfast serve``: an OpenAI-compatible server with continuous batching."""

from __future__ import annotations

import typer

from genfast.cli.common import err_console, quiet_libraries, set_threads


def serve(
    model: str = typer.Option("demo", help="`demo`, a model directory, or a `genfast optimize` artifact."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    backend: str | None = typer.Option(None, help="Default: the artifact's recipe, else torch. Choices: torch, "
                                       "torch-compile (batched rows), or hf, onnxruntime, openvino, tensorrt "
                                       "(one forward per request per step)."),
    precision: str | None = typer.Option(None, help="Backend precision: int8 (onnxruntime, openvino), int4 (openvino)."),
    device: str = typer.Option("cpu"),
    dtype: str = typer.Option("fp32"),
    mode: str = typer.Option("continuous", help="continuous, dynamic (request-level batches) or sequential."),
    max_running: int | None = typer.Option(None, help="Sequences decoded together (default: the artifact's "
                                                      "recipe, else 16)."),
    max_queued: int = typer.Option(64, help="Waiting requests beyond this get HTTP 429."),
    prefill_token_budget: int = typer.Option(512, help="Prompt tokens prefilled per engine step."),
    max_prompt_tokens: int | None = typer.Option(None, help="Refuse longer prompts (HTTP 400)."),
    max_output_tokens: int | None = typer.Option(None, help="Refuse larger max_tokens (HTTP 400)."),
    batch_wait_ms: float = typer.Option(20.0, help="dynamic mode: wait this long to fill a batch."),
    max_model_len: int | None = typer.Option(None, help="Prompt + output tokens per request (default: context)."),
    default_max_tokens: int = typer.Option(16, help="max_tokens when a request gives none."),
    request_timeout: float = typer.Option(300.0, help="Seconds before a request is ended."),
    max_request_bytes: int = typer.Option(4 * 1024 * 1024, help="Larger request bodies get HTTP 413."),
    read_timeout: float = typer.Option(10.0, help="Seconds for a request's headers and body to arrive "
                                       "(slow clients are disconnected / get 408)."),
    keep_alive_timeout: float = typer.Option(5.0, help="Seconds an idle connection is kept open."),
    max_connections: int = typer.Option(512, help="Open connections beyond this get HTTP 503."),
    token_healing: bool = typer.Option(True, "--token-healing/--no-token-healing",
                                       help="Heal completion prompts that end mid-token (e.g. a trailing space)."),
    served_model_name: str | None = typer.Option(None, help="The `model` clients send (default: the model "
                                                 "directory's name, or demo)."),
    threads: int | None = typer.Option(None, help="torch CPU threads (default: the artifact's recipe, else torch's)."),
    ray: bool = typer.Option(False, "--ray", help="Run as Ray Serve replicas (pip install genfast[ray])."),
    min_replicas: int = typer.Option(1, help="--ray: autoscaling lower bound."),
    max_replicas: int = typer.Option(1, help="--ray: autoscaling upper bound."),
) -> None:
    """Serve /v1/completions, /v1/chat/completions, /v1/models, /health and /metrics."""
    from genfast.serving.listen import listen

    # listening before torch is even imported: early clients wait in the backlog, not refused
    sock = None if ray else listen(host, port)
    from genfast.models.loading import recipe_runtime_options
    from genfast.serving.http_limits import HttpLimits
    from genfast.serving.scheduler import SchedulerConfig
    from genfast.serving.server import ServeConfig, run

    quiet_libraries()
    recorded = recipe_runtime_options(model)
    threads = recorded["threads"] if threads is None else threads
    if max_running is None:
        max_running = recorded["max_running"] or 16
    set_threads(threads)
    cfg = ServeConfig(model=model, backend=backend, precision=precision, device=device, dtype=dtype, host=host, port=port,
                      scheduler=SchedulerConfig(mode=mode, max_running=max_running, max_queued=max_queued,
                                                prefill_token_budget=prefill_token_budget,
                                                max_prompt_tokens=max_prompt_tokens,
                                                max_output_tokens=max_output_tokens,
                                                batch_wait_s=batch_wait_ms / 1000),
                      max_model_len=max_model_len, default_max_tokens=default_max_tokens,
                      request_timeout_s=request_timeout, token_healing=token_healing,
                      served_model_name=served_model_name,
                      http=HttpLimits(max_request_bytes=max_request_bytes, read_timeout_s=read_timeout,
                                      keep_alive_s=keep_alive_timeout, max_connections=max_connections))
    cfg.scheduler.validate()
    cfg.http.validate()
    if ray:
        from genfast.serving.ray_serve import run_ray

        run_ray(cfg, min_replicas=min_replicas, max_replicas=max_replicas)
        return
    run(cfg, sock=sock, on_loaded=lambda: err_console.print(
        f"genfast serving {model} on http://{host}:{port} ({mode} batching, backend {backend or 'from recipe'})"))
