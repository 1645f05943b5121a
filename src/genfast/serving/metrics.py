"""Prometheus metrics of a serving engine (one registry per server, not the global one).

Every series carries a ``model_name`` label, as vLLM's do, so one dashboard can hold several
servers. Latencies count from the request's arrival at the HTTP edge, not from its admission.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_TOKEN_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


class ServingMetrics:
    """Request outcomes, HTTP status codes, latency distributions, per-stage times, cache use, tokens."""

    def __init__(self, model_name: str = "model") -> None:
        self.registry = r = CollectorRegistry()
        self.model_name = model_name
        m = ["model_name"]

        def histogram(name: str, doc: str, buckets=_LATENCY_BUCKETS, labels=()):
            metric = Histogram(name, doc, [*m, *labels], buckets=buckets, registry=r)
            return metric if labels else metric.labels(model_name)

        def gauge(name: str, doc: str):
            return Gauge(name, doc, m, registry=r).labels(model_name)

        self._requests = Counter("genfast_requests", "Requests by how they ended (stop, length, abort, timeout, "
                                 "error, rejected_*).", [*m, "status"], registry=r)
        self._responses = Counter("genfast_http_responses", "HTTP responses by status code (every route, "
                                  "validation errors included).", [*m, "code"], registry=r)
        self.queue_time = histogram("genfast_queue_time_seconds", "Arrival to admission into a batch row.")
        self.ttft = histogram("genfast_ttft_seconds", "Arrival at the HTTP edge to the first token.")
        self.tpot = histogram("genfast_tpot_seconds", "Mean time per output token after the first.")
        self.e2e = histogram("genfast_e2e_seconds", "Arrival at the HTTP edge to the last token.")
        self._stage = histogram("genfast_stage_seconds", "Server-side time per request and stage.",
                                labels=("stage",))
        self.prompt_len = histogram("genfast_request_prompt_tokens", "Prompt tokens per request.", _TOKEN_BUCKETS)
        self.output_len = histogram("genfast_request_generation_tokens", "Output tokens per request.",
                                    _TOKEN_BUCKETS)
        self.running = gauge("genfast_running_sequences", "Sequences in the running batch.")
        self.queued = gauge("genfast_queued_requests", "Requests waiting for a row.")
        self.cache_rows = gauge("genfast_kv_cache_rows_usage", "Share of the KV cache's rows in use (0-1).")
        self.cache_positions = gauge("genfast_kv_cache_positions_usage",
                                     "Share of the KV cache's positions (rows x context) filled (0-1).")
        self.batch_size = histogram("genfast_batch_size", "Sequences per decode step.",
                                    (1, 2, 4, 8, 16, 32, 64, 128))
        self.generated = Counter("genfast_generated_tokens", "Output tokens generated.", m, registry=r).labels(
            model_name)
        self.prompt_tokens = Counter("genfast_prompt_tokens", "Prompt tokens prefilled.", m, registry=r).labels(
            model_name)
        self.tokens_per_s = gauge("genfast_tokens_per_second", "Output tokens/s of the last engine step.")

    def stage(self, name: str, seconds: float) -> None:
        self._stage.labels(self.model_name, name).observe(seconds)

    def count_request(self, status: str) -> None:
        self._requests.labels(self.model_name, status).inc()

    def count_response(self, code: int) -> None:
        self._responses.labels(self.model_name, str(code)).inc()

    def observe_step(self, core, elapsed_s: float, events) -> None:
        self.running.set(len(core.running))
        self.queued.set(len(core.waiting))
        rows = core.config.max_running
        self.cache_rows.set(len(core.running) / rows)
        filled = sum(len(r.prompt_ids) + len(r.output_ids) for r in core.running)
        self.cache_positions.set(filled / (rows * core.max_model_len))
        if core.last_batch_size:
            self.batch_size.observe(core.last_batch_size)
        tokens = sum(1 for e in events if e.token_id is not None)
        self.generated.inc(tokens)
        self.tokens_per_s.set(tokens / elapsed_s if elapsed_s > 0 else 0.0)
        for event in events:
            if event.finished:
                self.observe_finished(event.request)

    def observe_finished(self, req) -> None:
        end = time.monotonic()
        self.count_request(req.finish_reason or "unknown")
        if req.admitted is None:
            return
        self.prompt_tokens.inc(len(req.prompt_ids))
        self.prompt_len.observe(len(req.prompt_ids))
        self.output_len.observe(len(req.output_ids))
        self.queue_time.observe(req.admitted - req.arrival)
        self.stage("queue", req.admitted - req.arrival)
        self.stage("prefill", req.prefill_s)
        self.stage("decode", req.decode_s)
        self.stage("detokenize", req.detokenize_s)
        if req.first_token is not None:
            self.ttft.observe(req.first_token - req.arrival)
            if len(req.output_ids) > 1:
                self.tpot.observe((end - req.first_token) / (len(req.output_ids) - 1))
        self.e2e.observe(end - req.arrival)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class CountResponses:
    """ASGI middleware: counts every HTTP response by status code into ``metrics``."""

    def __init__(self, app, metrics: ServingMetrics | None) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.metrics is None:
            return await self.app(scope, receive, send)

        started = False

        async def counting_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                self.metrics.count_response(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        except Exception:
            if not started:  # Starlette's outermost layer answers it with a 500
                self.metrics.count_response(500)
            raise


class ImageMetrics(ServingMetrics):
    """The same series for an image server (the token series stay empty), plus images generated."""

    def __init__(self, model_name: str = "model") -> None:
        super().__init__(model_name)
        m = ["model_name"]
        self.images = Counter("genfast_generated_images", "Images generated.", m, registry=self.registry).labels(
            model_name)
        self.steps_per_s = Gauge("genfast_denoising_steps_per_second", "UNet forwards per second over the last "
                                 "engine step.", m, registry=self.registry).labels(model_name)

    def observe_step(self, core, elapsed_s: float, events) -> None:
        self.running.set(sum(r.n for r in core.running))
        self.queued.set(len(core.waiting))
        if core.last_batch_size:
            self.batch_size.observe(core.last_batch_size)
        self.steps_per_s.set(1 / elapsed_s if elapsed_s > 0 else 0.0)
        for event in events:
            if event.finished:
                self.observe_finished(event.request)

    def observe_finished(self, req) -> None:
        self.count_request(req.finish_reason or "unknown")
        if req.admitted is None:
            return
        self.queue_time.observe(req.admitted - req.arrival)
        self.stage("queue", req.admitted - req.arrival)
        if req.images is not None:
            self.images.inc(len(req.images))
        self.e2e.observe(time.monotonic() - req.arrival)
