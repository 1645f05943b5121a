"""AsyncEngine: requests in, token streams out, with the core stepping in its own thread."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

from genfast.runtime.sampling import SamplingParams
from genfast.serving.engine_core import EngineCore, Event, Request
from genfast.serving.engine_thread import EngineThread


class AsyncEngine:
    """Wraps an EngineCore for asyncio.

    The core runs in ``thread`` (the one that loaded the model, see engine_thread), stepping back to
    back while it has work: each step's events come back to the event loop without the next step
    waiting for them. Requests and aborts submitted meanwhile wait in ``_pending`` / ``_aborts``
    (deques: appended here, taken there) until the step after.
    """

    def __init__(self, core: EngineCore, metrics=None, thread: EngineThread | None = None) -> None:
        self.core, self.metrics = core, metrics
        self.thread = thread or EngineThread()
        self._pending: deque[Request] = deque()
        self._aborts: deque[tuple[str, str]] = deque()
        self._queues: dict[str, asyncio.Queue[Event]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    def submit(self, prompt_ids: list[int], params: SamplingParams, timeout_s: float | None = None,
               **extra) -> Request:
        """Validate and queue a request (raises ConfigError / QueueFullError / EngineStoppedError).

        ``extra``: EngineCore.make_request's arrival time and token-healing fields.
        """
        waiting = len(self.core.waiting) + len(self._pending)
        req = self.core.make_request(prompt_ids, params, timeout_s, waiting=waiting, **extra)
        self._queues[req.id] = asyncio.Queue()
        self._pending.append(req)
        self._wake.set()
        return req

    def abort(self, request_id: str, reason: str = "abort") -> None:
        self._aborts.append((request_id, reason))
        self._wake.set()

    @property
    def busy(self) -> bool:
        """Requests are running, waiting or just submitted."""
        return bool(self.core.has_work or self._pending)

    def request_ids(self) -> list[str]:
        return [r.id for r in (*self.core.waiting, *self.core.running, *self._pending)]

    async def stream(self, req: Request) -> AsyncIterator[Event]:
        """Events of ``req`` until it finishes; leaving early (a disconnect) aborts it."""
        queue = self._queues[req.id]
        finished = False
        try:
            while not finished:
                event = await queue.get()
                finished = event.finished
                yield event
        finally:
            self._queues.pop(req.id, None)
            if not finished:
                self.abort(req.id)

    async def run_to_end(self, req: Request, disconnected: Callable[[], Awaitable[bool]]) -> None:
        """Wait until ``req`` finishes; abort it when ``disconnected()`` (asked every 0.25 s) says the
        client has gone."""
        async def watch() -> None:
            while True:
                await asyncio.sleep(0.25)
                if await disconnected():
                    self.abort(req.id)
                    return

        watcher = asyncio.create_task(watch())
        try:
            async for _ in self.stream(req):
                pass
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.busy:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self.thread.call(self._steps, loop)

    def _steps(self, loop: asyncio.AbstractEventLoop) -> None:
        """In the engine thread: step while there is work, handing each step's events to ``loop``."""
        while True:
            while self._pending:
                self.core.waiting.append(self._pending.popleft())
            while self._aborts:
                self.core.abort(*self._aborts.popleft())
            if not self.core.has_work:
                return
            start = time.perf_counter()
            events = self.core.step()
            if self.metrics:
                self.metrics.observe_step(self.core, time.perf_counter() - start, events)
            loop.call_soon_threadsafe(self._deliver, events)

    def _deliver(self, events: list[Event]) -> None:
        for event in events:
            queue = self._queues.get(event.request.id)
            if queue is not None:
                queue.put_nowait(event)

    async def stop(self, drain_timeout_s: float = 30.0) -> None:
        """Stop admitting, let running requests finish (or time them out), then stop the loop."""
        self.core.accepting = False
        deadline = time.monotonic() + drain_timeout_s
        while self.busy and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for request_id in self.request_ids():
            self.abort(request_id, "shutdown")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._drained(), timeout=5)
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.thread.shutdown()

    async def _drained(self) -> None:
        while self.busy:
            await asyncio.sleep(0.01)
