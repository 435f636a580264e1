"""Helpers the HTTP faces share: OpenAI-shaped JSON errors and query parsing."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response


def json_error(status: int, message: str, code: str = "invalid_request_error",
               type_: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error body in OpenAI's shape, so every client library can read it."""
    body = {"error": {"message": message, "type": type_ or _type_of(status), "code": code,
                      "param": None}}
    return JSONResponse(body, status_code=status, headers=headers)


def _type_of(status: int) -> str:
    if status in (401, 403):
        return "authentication_error"
    if status == 404:
        return "not_found_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "api_error"
    return "invalid_request_error"


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, code: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    def response(self) -> Response:
        return json_error(self.status, str(self), self.code)


async def read_json(request: Request, max_bytes: int) -> Any:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise BadRequest(f"request body over {max_bytes // 1_000_000} MB (server.max_body_mb)",
                         413, "request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BadRequest(f"request body over {max_bytes // 1_000_000} MB (server.max_body_mb)",
                             413, "request_too_large")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks) or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


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
        raise BadRequest(str(exc)) from None
