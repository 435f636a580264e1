"""A scripted tool-loop provider in each outbound format (OpenAI chat, Gemini, Anthropic Messages).

Turn 1 (no tool result in the request yet): the model calls `get_weather` with
`{"city": "Paris"}`. Turn 2 (the last message is the tool's result): it answers
`Sunny in Paris`. Streamed or not, as the request asks; every request is recorded.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

ANSWER = "Sunny in Paris"
ARGS = '{"city": "Paris"}'
CALL_ID = "call_w1"
KEYS = {"oa": "sk-oa-secret-0123456789", "ge": "g-ge-secret-0123456789",
        "an": "sk-ant-secret-0123456789"}
USAGE = {"prompt_tokens": 40, "completion_tokens": 7, "total_tokens": 47,
         "prompt_tokens_details": {"cached_tokens": 8}}


@dataclass
class Script:
    seen: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)

    def last(self, prefix: str) -> dict[str, Any]:
        return next(body for path, _, body in reversed(self.seen) if path.startswith(prefix))


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + json.dumps(data).encode() + b"\n\n"


# ---- OpenAI chat --------------------------------------------------------------------------------


def _oa_answered(body: dict[str, Any]) -> bool:
    return body["messages"][-1]["role"] == "tool"


def _oa_chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return _sse({"id": "chatcmpl-f", "object": "chat.completion.chunk", "created": 1, "model": "m",
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


async def _oa_stream(answered: bool, usage: bool) -> AsyncIterator[bytes]:
    yield _oa_chunk({"role": "assistant", "content": ""})
    if answered:
        yield _oa_chunk({"content": "Sunny"})
        yield _oa_chunk({"content": " in Paris"})
        yield _oa_chunk({}, "stop")
    else:
        yield _oa_chunk({"tool_calls": [{"index": 0, "id": CALL_ID, "type": "function",
                                         "function": {"name": "get_weather", "arguments": ""}}]})
        yield _oa_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]})
        yield _oa_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]})
        yield _oa_chunk({}, "tool_calls")
    if usage:
        yield _sse({"id": "chatcmpl-f", "object": "chat.completion.chunk", "created": 1, "model": "m",
                    "choices": [], "usage": USAGE})
    yield b"data: [DONE]\n\n"


def _oa_whole(answered: bool) -> dict[str, Any]:
    if answered:
        message: dict[str, Any] = {"role": "assistant", "content": ANSWER}
    else:
        message = {"role": "assistant", "content": None, "tool_calls": [{
            "id": CALL_ID, "type": "function", "function": {"name": "get_weather", "arguments": ARGS}}]}
    return {"id": "chatcmpl-f", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "stop" if answered else "tool_calls"}], "usage": USAGE}


# ---- Gemini -------------------------------------------------------------------------------------


def _ge_answered(body: dict[str, Any]) -> bool:
    return any("functionResponse" in p for p in body["contents"][-1]["parts"])


def _ge_answer(answered: bool, text: str = ANSWER, final: bool = True) -> dict[str, Any]:
    parts = [{"text": text}] if answered else [{"functionCall": {"name": "get_weather",
                                                                  "args": {"city": "Paris"}}}]
    out: dict[str, Any] = {"candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}]}
    if final:
        out["candidates"][0]["finishReason"] = "STOP"
        out["usageMetadata"] = {"promptTokenCount": 40, "candidatesTokenCount": 7,
                                "totalTokenCount": 47, "cachedContentTokenCount": 8}
    return out


async def _ge_stream(answered: bool) -> AsyncIterator[bytes]:
    if answered:
        yield _sse(_ge_answer(True, "Sunny", final=False))
        yield _sse(_ge_answer(True, " in Paris"))
    else:
        yield _sse(_ge_answer(False))


# ---- Anthropic ----------------------------------------------------------------------------------


def _an_answered(body: dict[str, Any]) -> bool:
    content = body["messages"][-1]["content"]
    return isinstance(content, list) and any(b.get("type") == "tool_result" for b in content)


AN_USAGE = {"input_tokens": 32, "cache_read_input_tokens": 8, "cache_creation_input_tokens": 0,
            "output_tokens": 7}


def _an_whole(answered: bool) -> dict[str, Any]:
    content: list[dict[str, Any]] = (
        [{"type": "text", "text": ANSWER}] if answered else
        [{"type": "tool_use", "id": "toolu_w1", "name": "get_weather", "input": {"city": "Paris"}}])
    return {"id": "msg_fake", "type": "message", "role": "assistant", "model": "m", "content": content,
            "stop_reason": "end_turn" if answered else "tool_use", "stop_sequence": None,
            "usage": AN_USAGE}


async def _an_stream(answered: bool) -> AsyncIterator[bytes]:
    message = {**_an_whole(answered), "content": [], "stop_reason": None,
               "usage": {**AN_USAGE, "output_tokens": 1}}
    yield _sse({"type": "message_start", "message": message}, "message_start")
    yield _sse({"type": "ping"}, "ping")
    if answered:
        yield _sse({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}, "content_block_start")
        for piece in ("Sunny", " in Paris"):
            yield _sse({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": piece}}, "content_block_delta")
    else:
        yield _sse({"type": "content_block_start", "index": 0, "content_block": {
            "type": "tool_use", "id": "toolu_w1", "name": "get_weather", "input": {}}},
            "content_block_start")
        for piece in ('{"city": ', '"Paris"}'):
            yield _sse({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "input_json_delta", "partial_json": piece}},
                       "content_block_delta")
    yield _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
    yield _sse({"type": "message_delta", "delta": {"stop_reason": "end_turn" if answered else "tool_use",
                                                   "stop_sequence": None},
                "usage": {"output_tokens": 7}}, "message_delta")
    yield _sse({"type": "message_stop"}, "message_stop")


def scripted_provider(script: Script) -> Starlette:
    async def openai(request: Request) -> Response:
        body = await request.json()
        script.seen.append((request.url.path, dict(request.headers), body))
        if not body.get("stream"):
            return JSONResponse(_oa_whole(_oa_answered(body)))
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(_oa_stream(_oa_answered(body), usage), media_type="text/event-stream")

    async def gemini(request: Request) -> Response:
        body = await request.json()
        script.seen.append((request.url.path, dict(request.headers), body))
        if request.url.path.endswith(":generateContent"):
            return JSONResponse(_ge_answer(_ge_answered(body)))
        return StreamingResponse(_ge_stream(_ge_answered(body)), media_type="text/event-stream")

    async def anthropic(request: Request) -> Response:
        body = await request.json()
        script.seen.append((request.url.path, dict(request.headers), body))
        if not body.get("stream"):
            return JSONResponse(_an_whole(_an_answered(body)))
        return StreamingResponse(_an_stream(_an_answered(body)), media_type="text/event-stream")

    return Starlette(routes=[
        Route("/oa/v1/chat/completions", openai, methods=["POST"]),
        Route("/ge/v1beta/models/{rest:path}", gemini, methods=["POST"]),
        Route("/an/v1/messages", anthropic, methods=["POST"]),
    ])


def scripted_settings(base: str) -> dict[str, Any]:
    """Providers `oa` (OpenAI format), `ge` (Gemini) and `an` (Anthropic) over the script."""
    model = {"m": {"context_window": 100_000, "input_per_mtok": 1.0, "output_per_mtok": 2.0}}
    return {
        "oa": {"base_url": f"{base}/oa/v1", "api_key": KEYS["oa"], "models": model, "max_retries": 0},
        "ge": {"base_url": f"{base}/ge/v1beta", "api_key": KEYS["ge"], "format": "gemini",
               "models": model, "max_retries": 0},
        "an": {"base_url": f"{base}/an/v1", "api_key": KEYS["an"], "format": "anthropic",
               "models": model, "max_retries": 0},
    }
