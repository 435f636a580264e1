"""Helpers the HTTP faces share: OpenAI-shaped JSON errors, bounded JSON bodies, query times."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse

from kimi_mcp.errors import ErrorInfo, RequestError


def json_error(status: int, message: str, code: str = "invalid_request_error",
               headers: dict[str, str] | None = None) -> JSONResponse:
    """An error body in OpenAI's shape, so every client library can read it."""
    return error_response(ErrorInfo(status, code, message), headers=headers)


def error_response(info: ErrorInfo, headers: dict[str, str] | None = None) -> JSONResponse:
    """`{"error": {"message", "type", "code", "param"}}` with the error's status (OpenAI's shape)."""
    body = {"error": {"message": info.message, "type": info.type, "code": info.code,
                      "param": None}}
    return JSONResponse(body, status_code=info.status, headers=headers)


async def read_json(request: Request, max_bytes: int) -> Any:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise RequestError(f"request body over {max_bytes // 1_000_000} MB (server.max_body_mb)",
                         413, "request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise RequestError(f"request body over {max_bytes // 1_000_000} MB (server.max_body_mb)",
                             413, "request_too_large")
        chunks.append(chunk)
    raw = b"".join(chunks) or b"null"
    too_deep = RequestError(
        f"the body's JSON nests too deeply (over {MAX_JSON_DEPTH} levels of arrays and objects)"
    )
    try:
        value = json.loads(raw)
    except RecursionError:
        raise too_deep from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(f"the body is not valid JSON: {exc}") from None
    # what decodes may still be too deep for the code that walks it after (a RecursionError
    # there was a 500 with a traceback); only a body with that many brackets can be
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and deeper_than(value, MAX_JSON_DEPTH):
        raise too_deep
    return value


MAX_JSON_DEPTH = 128  # arrays and objects inside each other in a request body


def deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels in `value` (no recursion)."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


def parse_time(raw: str, name: str) -> float:
    """UNIX seconds or an ISO 8601 time; `ValueError` names the parameter."""
    try:
        return float(raw)
    except ValueError:
        pass
    from datetime import datetime

    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ValueError(f"'{name}' must be UNIX seconds or an ISO 8601 time, got {raw!r}") from None


def query_float(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        return parse_time(raw, name)
    except ValueError as exc:
        raise RequestError(str(exc)) from None


def attachment(filename: str) -> str:
    """A `Content-Disposition` for a download named `filename` (RFC 6266): a plain ASCII name
    for old clients, and the exact name percent-encoded in `filename*`, so no character of
    it (a quote, `;`, CR/LF) can end the parameter or the header."""
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"
