"""The stdio transport kimi-mcp serves on: the MCP SDK's, plus an answer for every bad line.

The SDK's stdio reader turns a line it cannot validate (invalid JSON such as a lone UTF-16
surrogate `\\ud800`, or JSON that is not a JSON-RPC message) into an exception item, and the
server side drops such items silently: the client then waits for an answer that never comes.
Here every such line gets a JSON-RPC error: with the request's `id` when it can still be read
from the line (so the client's pending call fails at once), else with `id: null` as JSON-RPC
2.0 prescribes for parse errors.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastmcp import FastMCP

    from kimi_mcp.stdio_front import Front, Snapshot

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600


def error_reply(exc: Exception) -> tuple[Any, int, str] | None:
    """(id, code, message) of the JSON-RPC error answering the line behind `exc`; None when
    nothing should be sent (a bad line that was a response or notification, not a request)."""
    errors = getattr(exc, "errors", None)
    details: list[dict[str, Any]] = errors() if callable(errors) else []
    reason = str(details[0].get("msg", exc)) if details else str(exc)
    raw: str | None = None
    parsed: Any = None
    for detail in details:
        given = detail.get("input")
        if isinstance(given, str):
            raw = given
            try:
                parsed = json.loads(given)  # Python's parser accepts lone surrogates
            except ValueError:
                parsed = None
            break
        if isinstance(given, dict) and parsed is None:
            parsed = given
    request_id: Any = None
    if isinstance(parsed, dict):
        if "result" in parsed or "error" in parsed:
            return None  # a response is never answered
        if "method" in parsed and "id" not in parsed:
            return None  # a notification has no one waiting
        request_id = parsed.get("id")
        if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
            request_id = None
    if details and details[0].get("type") == "json_invalid":
        hint = ""
        if "surrogate" in reason or "hex escape" in reason or _has_lone_surrogate(raw):
            hint = (
                " (a lone UTF-16 surrogate such as \\ud800 is not valid Unicode; send text as "
                "valid UTF-8 or escape surrogate pairs together)"
            )
        return request_id, PARSE_ERROR, f"Parse error: {reason}{hint}"
    return request_id, INVALID_REQUEST, f"Invalid request: {reason[:300]}"


def _has_lone_surrogate(raw: str | None) -> bool:
    if raw is None:
        return False
    try:
        decoded = json.loads(raw)
    except ValueError:
        return False
    text = json.dumps(decoded, ensure_ascii=False)
    return any("\ud800" <= ch <= "\udfff" for ch in text)


class _AnsweringReader:
    """The SDK's read stream, minus exception items: each is answered on the write stream."""

    def __init__(self, inner: Any, write: Any) -> None:
        self._inner = inner
        self._write = write

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    def __aiter__(self) -> _AnsweringReader:
        return self

    async def __anext__(self) -> Any:
        while True:
            item = await self._inner.__anext__()
            if not isinstance(item, Exception):
                return item
            await self._answer(item)

    async def receive(self) -> Any:
        return await self.__anext__()

    async def _answer(self, exc: Exception) -> None:
        import mcp_types as types
        from mcp.shared.message import SessionMessage

        reply = error_reply(exc)
        if reply is None:
            log.warning("dropped a malformed message that was not a request: %s", exc)
            return
        request_id, code, message = reply
        log.warning("answered a malformed request (id %r) with error %d", request_id, code)
        error = types.JSONRPCError(
            jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message)
        )
        await self._write.send(SessionMessage(error))

    def close(self) -> None:
        self._inner.close()

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _AnsweringReader:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.aclose()


@asynccontextmanager
async def answering_stdio_server(stdin: Any = None, stdout: Any = None) -> AsyncIterator[tuple[Any, Any]]:
    """The SDK's `stdio_server()` (on `stdin`/`stdout` when given: async text streams such as
    the front's), whose read stream answers the lines it cannot parse."""
    from mcp.server.stdio import stdio_server

    async with stdio_server(stdin=stdin, stdout=stdout) as (read_stream, write_stream):
        yield _AnsweringReader(read_stream, write_stream), write_stream


async def serve(server: FastMCP, front: Front | None = None) -> None:
    """Run `server` over stdio with the answering transport, on `front`'s wire when given.

    FastMCP's `run_stdio_async` opens the transport through its module's `stdio_server`
    name; it is pointed at the answering one for the life of this call, so FastMCP's own
    lifespan, logging and session handling stay exactly as they are.
    """
    from functools import partial

    from fastmcp.server.mixins import transport

    opened = answering_stdio_server
    if front is not None:
        opened = partial(answering_stdio_server, front.sdk_stdin(), front.sdk_stdout())
    original = getattr(transport, "stdio_server")  # noqa: B009 - not re-exported by name
    setattr(transport, "stdio_server", opened)  # noqa: B010
    try:
        await server.run_stdio_async(show_banner=False)
    finally:
        setattr(transport, "stdio_server", original)  # noqa: B010


async def record_snapshot(server: FastMCP, key: dict[str, Any]) -> Snapshot:
    """What `server` answers, over this stdio transport, to the opening of a session and then
    `tools/list`: `initialize` for each handshake protocol version, `server/discover` for each
    modern one (per-request envelope). The snapshot the front answers from."""
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

    from kimi_mcp.stdio_front import Snapshot, modern_envelope

    initialize: dict[str, dict[str, Any]] = {}
    tools: dict[str, dict[str, Any]] = {}
    client = {"name": "kimi-mcp-snapshot", "version": "1"}
    for version in HANDSHAKE_PROTOCOL_VERSIONS:
        answers = await converse(server, [
            {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": version, "capabilities": {}, "clientInfo": client}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}},
        ])
        initialize[version] = answers[1]["result"]
        tools[version] = answers[2]["result"]
    for version in MODERN_PROTOCOL_VERSIONS:
        params = {"_meta": modern_envelope(version, client)}
        answers = await converse(server, [
            {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": params},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": params},
        ])
        initialize[version] = answers[1]["result"]
        tools[version] = answers[2]["result"]
    return Snapshot(key=key, initialize=initialize, tools=tools)


async def converse(server: FastMCP, messages: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    """Send `messages` to `server` through a front without a snapshot; its answers by id."""
    import os

    import anyio

    from kimi_mcp.stdio_front import Front

    expected = {m["id"] for m in messages if "id" in m}
    answers: dict[Any, dict[str, Any]] = {}
    done = anyio.Event()

    class Collect:
        def write(self, data: bytes) -> int:
            for line in data.decode().splitlines():
                message = json.loads(line)
                answers[message.get("id")] = message
            if expected <= answers.keys():
                done.set()
            return len(data)

        def flush(self) -> None:
            return None

    read_fd, write_fd = os.pipe()
    front = Front(None, os.fdopen(read_fd, "rb", buffering=0), Collect())  # type: ignore[arg-type]
    with os.fdopen(write_fd, "wb") as wire:
        front.start()
        async with anyio.create_task_group() as tg:
            tg.start_soon(serve, server, front)
            for message in messages:
                wire.write(json.dumps(message).encode() + b"\n")
            wire.flush()
            with anyio.fail_after(120):
                await done.wait()
            wire.close()  # EOF: the server returns
    return answers


def default_snapshot() -> Snapshot:
    """The snapshot of the server `kimi-mcp stdio` builds with the default settings (every
    family, writes allowed), recorded in a scratch data dir and workspace."""
    import tempfile

    import anyio

    from kimi_mcp.config import load_settings
    from kimi_mcp.deps import build_deps
    from kimi_mcp.server import build_mcp
    from kimi_mcp.stdio_front import snapshot_key

    with tempfile.TemporaryDirectory(prefix="kimi-mcp-snapshot-") as scratch:
        settings = load_settings(overrides={"data_dir": scratch, "mcp": {"workspace": [scratch]}})
        deps = build_deps(settings, lazy=True)
        try:
            server = build_mcp(deps, warm_up=True)
            return anyio.run(record_snapshot, server, snapshot_key(settings))
        finally:
            deps.close()
