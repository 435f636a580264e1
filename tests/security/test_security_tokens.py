"""A bearer token offered as `/ws?token=` (the only place a browser can put it) never reaches a
log line: uvicorn logs every WebSocket handshake with its query string, whatever `access_log`."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import uvicorn

from kimi_mcp.app import create_app
from kimi_mcp.deps import Deps

TOKEN = "tok-" + "7" * 24


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def _served(deps: Deps) -> Iterator[int]:
    app = create_app(deps.settings, deps)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="info", log_config=None,
                                           lifespan="on", timeout_graceful_shutdown=0.2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started and thread.is_alive():
            thread.join(0.05)
        yield port
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _handshake(port: int, query: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(
            f"GET /ws?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        return conn.recv(4096).decode("latin-1").split("\r\n")[0]


@pytest.mark.parametrize("offered", [TOKEN, TOKEN[:-1] + "8"], ids=["right", "almost"])
def test_a_websocket_token_in_the_query_never_reaches_the_server_log(
        make_deps: Callable[..., Deps], offered: str) -> None:
    deps = make_deps(server={"auth_tokens": [TOKEN]})
    kept = _Kept()
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(kept)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with _served(deps) as port:
            status = _handshake(port, f"since=0&token={offered}")
    finally:
        logger.removeHandler(kept)
        logger.setLevel(old_level)
    assert (" 101 " in status) == (offered == TOKEN), status
    assert any("/ws" in line for line in kept.lines), kept.lines  # the handshake was logged
    assert not any(offered in line for line in kept.lines), kept.lines
