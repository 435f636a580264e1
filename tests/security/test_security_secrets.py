"""A provider key never reaches the client, the ledger or the log through a streamed error,
whatever shape the provider echoes it in: an in-band error event of a translated stream, a
last event without its closing blank line, or the key JSON-escaped (`\\/`, `\\uXXXX`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
from sqlmodel import select

from kimi_mcp.app import create_app
from kimi_mcp.deps import Deps
from kimi_mcp.ledger.models import Request

pytestmark = pytest.mark.anyio
KEY = "sk-echo/secret+0123456789abcdef"  # a "/" is escaped by some JSON encoders
ESCAPED = KEY.replace("/", "\\/")
UNICODE = "".join(f"\\u{ord(c):04x}" for c in KEY)


def _provider(fmt: str) -> dict[str, Any]:
    return {"echo": {"base_url": "http://echo.test/v1", "api_key": KEY, "format": fmt,
                     "max_retries": 0, "models": {"m": {"context_window": 100_000}}}}


def _sse(event: str | None, data: str) -> bytes:
    return (f"event: {event}\n" if event else "").encode() + f"data: {data}\n\n".encode()


OA_CHUNK = json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]})
AN_START = json.dumps({"type": "message_start", "message": {
    "id": "msg", "type": "message", "role": "assistant", "model": "m", "content": [],
    "stop_reason": None, "usage": {"input_tokens": 1, "output_tokens": 0}}})


def _oa_error(echo: str) -> str:
    return '{"error": {"message": "invalid key ' + echo + '", "type": "auth"}}'


def _an_error(echo: str) -> str:
    return '{"type": "error", "error": {"type": "authentication_error", "message": "key ' + echo + '"}}'


# (client route, provider format, the provider's stream)
CASES: dict[str, tuple[str, str, bytes]] = {
    "openai in-band error, Messages client (translated)":
        ("/v1/messages", "openai", _sse(None, OA_CHUNK) + _sse(None, _oa_error(KEY))),
    "openai in-band error, Responses client (translated)":
        ("/v1/responses", "openai", _sse(None, OA_CHUNK) + _sse(None, _oa_error(KEY))),
    "openai error with the key JSON-escaped (raw relay)":
        ("/v1/chat/completions", "openai", _sse(None, OA_CHUNK) + _sse(None, _oa_error(ESCAPED))),
    "openai error with the key as unicode escapes (raw relay)":
        ("/v1/chat/completions", "openai", _sse(None, OA_CHUNK) + _sse(None, _oa_error(UNICODE))),
    "openai error as the last event without a blank line (raw relay)":
        ("/v1/chat/completions", "openai",
         _sse(None, OA_CHUNK) + f"data: {_oa_error(ESCAPED)}".encode()),
    "anthropic error event as the last event without a blank line (passthrough)":
        ("/v1/messages", "anthropic", _sse("message_start", AN_START)
         + f"event: error\ndata: {_an_error(KEY)}".encode()),
    "anthropic error event with the key JSON-escaped (passthrough)":
        ("/v1/messages", "anthropic", _sse("message_start", AN_START)
         + _sse("error", _an_error(ESCAPED))),
    "anthropic error event, Chat client (translated)":
        ("/v1/chat/completions", "anthropic", _sse("message_start", AN_START)
         + _sse("error", _an_error(KEY))),
}


def _body(route: str) -> dict[str, Any]:
    messages = [{"role": "user", "content": "hi"}]
    if route == "/v1/messages":
        return {"model": "echo/m", "max_tokens": 10, "messages": messages, "stream": True}
    if route == "/v1/responses":
        return {"model": "echo/m", "input": "hi", "stream": True}
    return {"model": "echo/m", "messages": messages, "stream": True}


async def _call_and_rows(serve_app: Any, deps: Deps, upstream: Callable[[httpx.Request], httpx.Response],
                         route: str, body: dict[str, Any]) -> tuple[str, str]:
    """One call through the whole app against `upstream`: the reply's text, and the ledger rows
    it left as JSON text."""
    app = create_app(deps.settings, deps, upstream_transport=httpx.MockTransport(upstream))
    async with serve_app(app) as client:
        reply = await client.post(route, json=body)
        assert await anyio.to_thread.run_sync(app.state.proxy.accountant.wait_for, 1, 10)
        await deps.ledger.aflush()
    with deps.ledger.read() as db:
        rows = db.exec(select(Request)).all()
    assert rows, "the call left no ledger row"
    return reply.text, " ".join(json.dumps(r.model_dump(), default=str) for r in rows)


def _leaks(text: str) -> bool:
    return any(form in text for form in (KEY, ESCAPED, UNICODE, KEY.replace("/", "\\\\/")))


@pytest.mark.parametrize("case", list(CASES))
async def test_a_key_echoed_in_a_streamed_error_never_reaches_the_client_the_ledger_or_the_log(
        make_deps: Callable[..., Deps], serve_app: Any, caplog: pytest.LogCaptureFixture,
        case: str) -> None:
    route, fmt, stream = CASES[case]
    deps = make_deps(providers=_provider(fmt))

    def upstream(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=stream)

    caplog.set_level(logging.DEBUG)
    text, stored = await _call_and_rows(serve_app, deps, upstream, route, _body(route))
    assert not _leaks(text), text
    assert not _leaks(stored), stored
    assert not _leaks(caplog.text), caplog.text


# A key not shaped like any known token (so only the exact-key scrubber can catch it), with a
# "/" that some JSON encoders escape.
PLAIN_KEY = "zq7RkWt3PmX9/aBcDeFgHiJkLmNoPqRsTuV"


def _unicode(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


def _echoes(key: str) -> dict[str, httpx.Response]:
    """Provider answers that echo the key: errors (escaped once, twice, cut at the 500th
    character of the message) and a successful answer quoting the request."""
    once = json.dumps({"headers": {"authorization": f"Bearer {key}"}})
    twice = json.dumps({"error": {"message": "rejected request: " + json.dumps({"api_key": _unicode(key)})}})
    return {
        "text error, key \\u-escaped": httpx.Response(
            400, text=f"upstream rejected request {once.replace(key, _unicode(key))} (not json)"),
        "json error, key escaped twice": httpx.Response(
            400, content=twice.encode(), headers={"content-type": "application/json"}),
        "text error, key across the 500th character": httpx.Response(
            400, text="x" * (500 - len(key) + 1) + key),
        "json error without a message, key across the 500th character": httpx.Response(
            400, json={"error": {"code": 1}, "echo": "y" * (500 - len(key) - 20) + key}),
        "5xx error, key at the end of a long body": httpx.Response(
            500, text="z" * 70_000 + key),
        "a whole answer quoting the request": httpx.Response(200, json={
            "id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": f"hello Bearer {key}"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}),
    }


def _leaks_plain_key(text: str) -> bool:
    bare = text.replace("\\", "").lower()
    pieces = [PLAIN_KEY[i:i + 10] for i in range(len(PLAIN_KEY) - 9)]
    return any(p in text or p.replace("/", "\\/") in text for p in pieces) \
        or _unicode(PLAIN_KEY[:3]).replace("\\", "").lower() in bare


# every echo to plain and streamed calls, but a whole answer only to a plain call (a streamed
# call gets a stream: the streamed echoes are the test above)
ECHO_CASES = [(case, stream) for case in _echoes(PLAIN_KEY) for stream in (False, True)
              if not (stream and case.startswith("a whole answer"))]


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/messages", "/v1/responses"])
@pytest.mark.parametrize(("case", "stream"), ECHO_CASES)
async def test_a_key_echoed_in_any_answer_never_reaches_the_client_or_the_ledger_whole_or_in_part(
        make_deps: Callable[..., Deps], serve_app: Any, route: str, stream: bool, case: str) -> None:
    deps = make_deps(providers={"echo": {"base_url": "http://echo.test/v1", "api_key": PLAIN_KEY,
                                        "format": "openai", "max_retries": 0,
                                        "models": {"m": {"context_window": 100_000}}}})

    def upstream(request: httpx.Request) -> httpx.Response:
        return _echoes(PLAIN_KEY)[case]

    text, stored = await _call_and_rows(serve_app, deps, upstream, route,
                                        _body(route) | {"stream": stream})
    assert not _leaks_plain_key(text), text[-700:]
    assert not _leaks_plain_key(stored), stored[-700:]
