"""Prometheus metrics of a serving engine (one registry per server, not the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ServingMetrics:
    """Request outcomes, latency distributions, per-stage server times, batch sizes, tokens."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("genfast_requests", "Requests by final status.", ["status"], registry=r)
        self.queue_time = Histogram("genfast_queue_time_seconds", "Time waiting for a batch slot.",
                                    buckets=_LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("genfast_ttft_seconds", "Arrival to first token.", buckets=_LATENCY_BUCKETS, registry=r)
        self.tpot = Histogram("genfast_tpot_seconds", "Mean time per output token after the first.",
                              buckets=_LATENCY_BUCKETS, registry=r)
        self.e2e = Histogram("genfast_e2e_seconds", "Arrival to last token.", buckets=_LATENCY_BUCKETS, registry=r)
        self.stage = Histogram("genfast_stage_seconds", "Server-side time per request and stage.", ["stage"],
                               buckets=_LATENCY_BUCKETS, registry=r)
        self.running = Gauge("genfast_running_sequences", "Sequences in the running batch.", registry=r)
        self.queued = Gauge("genfast_queued_requests", "Requests waiting for a slot.", registry=r)
        self.batch_size = Histogram("genfast_batch_size", "Sequences per decode step.",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.generated = Counter("genfast_generated_tokens", "Output tokens generated.", registry=r)
        self.prompt_tokens = Counter("genfast_prompt_tokens", "Prompt tokens prefilled.", registry=r)
        self.tokens_per_s = Gauge("genfast_tokens_per_second", "Output tokens/s of the last engine step.",
                                  registry=r)

    def observe_step(self, core, elapsed_s: float, events) -> None:
        self.running.set(len(core.running))
        self.queued.set(len(core.waiting))
        if core.last_batch_size:
            self.batch_size.observe(core.last_batch_size)
        tokens = sum(1 for e in events if e.token_id is not None)
        self.generated.inc(tokens)
        self.tokens_per_s.set(tokens / elapsed_s if elapsed_s > 0 else 0.0)
        for event in events:
            if event.finished:
                self.observe_finished(event.request)

    def observe_finished(self, req) -> None:
        import time

        end = time.monotonic()
        self.requests.labels(req.finish_reason or "unknown").inc()
        if req.admitted is None:
            return
        self.prompt_tokens.inc(len(req.prompt_ids))
        self.queue_time.observe(req.admitted - req.arrival)
        self.stage.labels("queue").observe(req.admitted - req.arrival)
        self.stage.labels("prefill").observe(req.prefill_s)
        self.stage.labels("decode").observe(req.decode_s)
        self.stage.labels("detokenize").observe(req.detokenize_s)
        if req.first_token is not None:
            self.ttft.observe(req.first_token - req.arrival)
            if len(req.output_ids) > 1:
                self.tpot.observe((end - req.first_token) / (len(req.output_ids) - 1))
        self.e2e.observe(end - req.arrival)

    def render(self) -> bytes:
        return generate_latest(self.registry)
