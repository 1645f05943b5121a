"""The server's listening socket, opened before anything heavy is imported or loaded.

Clients that connect while genfast starts wait in the socket's backlog instead of being refused,
and a busy port is reported at once. Only the standard library is imported here.
"""

from __future__ import annotations

import errno
import socket

from genfast.errors import ConfigError


def _bound(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"Port {port} on {host} is already in use.",
                              "Stop the other server or pass another --port.") from None
        raise ConfigError(f"Cannot listen on {host}:{port}: {exc.strerror}.", "Check --host.") from None
    return sock


def check_port_free(host: str, port: int) -> None:
    """Fail early, with the fix, if something already listens on host:port."""
    _bound(host, port).close()


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A socket listening on host:port (ConfigError with the fix when the port is taken)."""
    sock = _bound(host, port)
    sock.listen(backlog)
    return sock
