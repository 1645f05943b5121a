"""What one client may cost the server: body size, time to send a request, connections.

uvicorn has a keep-alive timeout between requests but none while a request arrives, so a
client that opens a connection and sends half its headers (slowloris) holds it forever. Here a
request's headers and body must arrive within ``read_timeout_s``; larger bodies than
``max_request_bytes`` are refused with 413 before they are read.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from genfast.errors import ConfigError
from genfast.serving.protocol import error_body

ARRIVAL_KEY = "genfast_arrival"
"""Where the middleware leaves the request's arrival time (``time.monotonic()``) in the ASGI scope's state."""


@dataclass
class HttpLimits:
    """Per-connection and per-request limits of the HTTP server."""

    max_request_bytes: int = 4 * 1024 * 1024
    """Larger request bodies get 413 (checked on Content-Length, then while reading)."""
    read_timeout_s: float = 10.0
    """A request's headers and body must arrive within this (else the connection is closed / 408)."""
    keep_alive_s: float = 5.0
    """An idle connection between requests is closed after this."""
    max_connections: int = 512
    """Open connections beyond this are answered 503 at once."""
    max_header_bytes: int = 64 * 1024
    """A request line + headers larger than this get 431."""
    version: int = 1

    def validate(self) -> None:
        for name in ("max_request_bytes", "max_connections", "max_header_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}.")
        for name in ("read_timeout_s", "keep_alive_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}.")


class RequestLimits:
    """ASGI middleware: reads a request's body itself, within the size (413) and time (408) limits,
    before the app sees it; stamps the arrival time."""

    def __init__(self, app, limits: HttpLimits) -> None:
        self.app, self.limits = app, limits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        scope.setdefault("state", {})[ARRIVAL_KEY] = time.monotonic()
        limit = self.limits.max_request_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _send_error(send, 413, f"The request body has {int(declared)} bytes; this server "
                                     f"accepts at most {limit} (--max-request-bytes).")
        chunks, size, more = [], 0, True
        deadline = time.monotonic() + self.limits.read_timeout_s
        while more:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                return await _send_error(send, 408, "The request body did not arrive within "
                                         f"{self.limits.read_timeout_s:g} s.")
            if message["type"] != "http.request":  # the client left
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                return await _send_error(send, 413, f"The request body is larger than {limit} bytes "
                                         "(--max-request-bytes).")
            more = message.get("more_body", False)
        body = b"".join(chunks)
        del chunks
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # afterwards only a disconnect can come

        await self.app(scope, replay, send)


def _error_bytes(status: int, message: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    kind = {408: "timeout", 503: "server_error"}.get(status, "invalid_request_error")
    body = json.dumps(error_body(message, kind)).encode()
    # the rest of the request is not read, so the connection cannot carry another one
    return body, [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                  (b"connection", b"close")]


async def _send_error(send, status: int, message: str) -> None:
    body, headers = _error_bytes(status, message)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_REASONS = {400: b"Bad Request", 431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}


def guarded_http_protocol(limits: HttpLimits, on_refused: Callable[[int], None] | None = None):
    """uvicorn's httptools protocol with the limits uvicorn lacks: a deadline for a request's headers,
    a cap on their size (431), a cap on open connections (503), all answered in OpenAI's shape;
    ``on_refused(status)`` is told of each answer given here (the app never sees those requests)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _guard: asyncio.TimerHandle | None = None
        _header_bytes = 0
        _in_headers = True

        def _arm(self) -> None:
            self._disarm()
            self._guard = self.loop.call_later(limits.read_timeout_s, self._too_slow)

        def _disarm(self) -> None:
            if self._guard is not None:
                self._guard.cancel()
                self._guard = None

        def _too_slow(self) -> None:
            if not self.transport.is_closing():
                self.transport.close()

        def _refuse(self, status: int, message: str) -> None:
            if on_refused is not None:
                on_refused(status)
            body, headers = _error_bytes(status, message)
            head = b"".join(b"%s: %s\r\n" % pair for pair in headers)
            self.transport.write(b"HTTP/1.1 %d %s\r\n%s\r\n%s" % (status, _REASONS[status], head, body))
            self.transport.close()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                self._refuse(503, f"The server holds its maximum of {limits.max_connections} connections "
                             "(--max-connections); retry shortly.")
                return
            self._arm()  # the first request's headers must come within read_timeout_s

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            in_headers = self._in_headers
            super().data_received(data)
            if in_headers and self._in_headers and not self.transport.is_closing():  # headers still coming
                self._header_bytes += len(data)
                if self._header_bytes > limits.max_header_bytes:
                    self._refuse(431, f"The request line and headers exceed {limits.max_header_bytes} bytes.")

        def send_400_response(self, msg: str) -> None:
            self._refuse(400, f"Malformed HTTP request: {msg}")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._guard is None:
                self._arm()  # a later request on a kept-alive connection gets the same deadline

        def on_headers_complete(self) -> None:
            self._disarm()  # the body's deadline is RequestLimits' job
            self._in_headers = False
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
            if size > limits.max_header_bytes:  # headers that arrived in one read are counted here
                self._refuse(431, f"The request line and headers exceed {limits.max_header_bytes} bytes.")
                return
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_headers, self._header_bytes = True, 0  # the next request's headers

    return GuardedHttpToolsProtocol
