"""What the text and the image server share: loading in the background, start and warm-up, the
lifespan, and ``/v1/models``, ``/health``, ``/metrics``."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from genfast.serving.engine_thread import single_threaded_helpers
from genfast.serving.protocol import now


class ServerShell:
    """Mixed into a server with ``model_name``, ``engine`` (an AsyncEngine, None while loading),
    ``ready``, ``metrics``, ``warmup``, ``loader`` (returning what ``attach`` takes), ``load_error``,
    ``on_ready`` and ``on_load_error``. Subclasses define ``attach`` and ``warm_up``."""

    def attach(self, *loaded) -> None:
        raise NotImplementedError

    async def warm_up(self) -> None:
        """One short request, so the first user does not pay for lazy initialisation."""
        raise NotImplementedError

    async def start(self) -> None:
        """Start the engine loop (in this event loop), warm up, then say ready."""
        single_threaded_helpers(asyncio.get_running_loop())
        await self.engine.start()
        if self.warmup:
            await self.warm_up()
        self.ready = True
        if self.on_ready:
            self.on_ready()

    async def _load_and_start(self) -> None:
        try:
            self.attach(*await asyncio.to_thread(self.loader))
            await self.start()
        except Exception as exc:  # noqa: BLE001 - reported by whoever runs the server
            self.load_error = exc
            if self.on_load_error:
                self.on_load_error()

    @asynccontextmanager
    async def lifespan(self, app: FastAPI):
        loading = None
        if self.engine is not None:
            await self.start()
        else:
            loading = asyncio.create_task(self._load_and_start())
        yield
        self.ready = False
        if loading is not None and not loading.done():
            loading.cancel()
        if self.engine is not None:
            await self.engine.stop()

    async def models(self):
        return {"object": "list", "data": [{"id": self.model_name, "object": "model", "created": now(),
                                             "owned_by": "genfast"}]}

    async def health(self):
        if self.ready and self.engine.core.accepting:
            return {"status": "ok"}
        state = "starting" if self.engine is None or (not self.ready and self.engine.core.accepting) else "stopping"
        return JSONResponse({"status": state}, status_code=503)

    async def prometheus(self):
        if self.metrics is None:
            return Response(b"", media_type="text/plain; version=0.0.4")
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4")
