"""``/v1/models``, ``/health`` and ``/metrics``: the same for the text and the image server."""

from __future__ import annotations

from fastapi.responses import JSONResponse, Response

from genfast.serving.protocol import now


class StatusRoutes:
    """Mixed into a server that has ``model_name``, ``engine`` (an AsyncEngine or None while
    loading), ``ready`` and ``metrics``."""

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
