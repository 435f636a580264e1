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
async def answering_stdio_server() -> AsyncIterator[tuple[Any, Any]]:
    """The SDK's `stdio_server()`, whose read stream answers the lines it cannot parse."""
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read_stream, write_stream):
        yield _AnsweringReader(read_stream, write_stream), write_stream


async def serve(server: FastMCP) -> None:
    """Run `server` over stdio with the answering transport.

    FastMCP's `run_stdio_async` opens the transport through its module's `stdio_server`
    name; it is pointed at the answering one for the life of this call, so FastMCP's own
    lifespan, logging and session handling stay exactly as they are.
    """
    from fastmcp.server.mixins import transport

    original = getattr(transport, "stdio_server")  # noqa: B009 - not re-exported by name
    setattr(transport, "stdio_server", answering_stdio_server)  # noqa: B010
    try:
        await server.run_stdio_async(show_banner=False)
    finally:
        setattr(transport, "stdio_server", original)  # noqa: B010
