"""Recorded-style wire transcripts per provider, and a loopback fake that plays them.

Each transcript is written from the provider's API reference and from what other gateways' users
reported: where the provider puts usage in a stream and in a body, how it ends a stream, which
request fields it refuses (the fake answers those requests the way the provider does, 4xx with
its message), so a test sees what a client of the real provider would see.

The fake serves `/<provider>/v1/chat/completions`. The model id picks a variant: `<model>` plays
the provider's normal answer, `error` an in-band error chunk (OpenRouter), `error-event` an
`event: error` whose data is an error object, `cut` a stream that
says `[DONE]` without a finish reason, `slow` pauses `FakeReplay.pause_s` after a keep-alive
and a role-only chunk before the first content.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
    choice.update(extra.pop("choice", {}))
    data = {"id": "chatcmpl-r", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [choice], **extra}
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def _usage_chunk(model: str, usage: dict[str, Any]) -> bytes:
    data = {"id": "chatcmpl-r", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [], "usage": usage}
    return b"data: " + json.dumps(data).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class Expect:
    """What the client and the ledger row should hold after one call."""

    prompt: int
    completion: int
    cached: int | None
    reasoning: int | None
    finish: str = "stop"


@dataclass(frozen=True)
class Transcript:
    provider: str
    model: str
    stream: Callable[[str], list[bytes]]  # the SSE events, given the model id
    body_usage: dict[str, Any]  # the usage object of a whole answer, as the provider sends it
    expect: Expect
    refuses: Callable[[dict[str, Any]], str | None] = lambda body: None
    finish: str = "stop"  # the finish reason the provider writes in a whole answer


# ---- what each provider refuses (its docs and its users' reports), answered as it answers ------

_MISTRAL_ID = re.compile(r"[a-zA-Z0-9]{9}")


def _mistral_refuses(body: dict[str, Any]) -> str | None:
    for name in ("max_completion_tokens", "stream_options", "metadata", "store"):
        if name in body:
            return f"Extra inputs are not permitted: body.{name}"
    seen: set[str] = set()
    for i, m in enumerate(body["messages"]):
        for key, value in m.items():
            if value is None:
                return f"messages.{i}.{key}: Input should be a valid string"
        if m.get("name") is not None and m["role"] != "tool":
            return f"messages.{i}.name: Extra inputs are not permitted"
        if m["role"] == "assistant":
            for key in ("reasoning_content", "reasoning"):
                if key in m:
                    return f"messages.{i}.{key}: Extra inputs are not permitted"
            for call in m.get("tool_calls") or ():
                if not _MISTRAL_ID.fullmatch(call["id"]):
                    return (f"Tool call id was {call['id']} but must be a-z, A-Z, 0-9, with a "
                            "length of 9.")
                seen.add(call["id"])
        if m["role"] == "tool" and m.get("tool_call_id") not in seen:
            return f"messages.{i}: tool_call_id {m.get('tool_call_id')} matches no tool call"
    return None


def _groq_refuses(body: dict[str, Any]) -> str | None:
    for name in ("logprobs", "logit_bias", "top_logprobs", "metadata", "store"):
        if name in body:
            return f"property '{name}' is unsupported"
    for i, m in enumerate(body["messages"]):
        if m["role"] == "assistant":
            for key in ("reasoning_content", "reasoning"):
                if key in m:
                    return (f"'messages.{i}' : for 'role:assistant' the following must be "
                            f"satisfied[('messages.{i}' : property '{key}' is unsupported)]")
        if "name" in m and m["role"] != "tool":
            return f"'messages.{i}' : property 'name' is unsupported"
    return None


def _cerebras_refuses(body: dict[str, Any]) -> str | None:
    for name in ("frequency_penalty", "presence_penalty", "logit_bias", "parallel_tool_calls",
                 "metadata", "store", "service_tier"):
        if name in body:
            return f"Unsupported parameter: {name}"
    for i, m in enumerate(body["messages"]):
        if m["role"] == "assistant" and "reasoning_content" in m:
            return f"messages[{i}]: unexpected field 'reasoning_content'"
    return None


def _nvidia_refuses(body: dict[str, Any]) -> str | None:
    for name in ("max_completion_tokens", "metadata", "store", "service_tier",
                 "parallel_tool_calls"):
        if name in body:
            return f"Extra inputs are not permitted: {name}"
    return None


def _siliconflow_refuses(body: dict[str, Any]) -> str | None:
    return "max_completion_tokens is not supported" if "max_completion_tokens" in body else None


# ---- the transcripts -----------------------------------------------------------------------------


def _text(model: str, finish: str = "stop") -> list[bytes]:
    return [_chunk(model, {"role": "assistant", "content": ""}), _chunk(model, {"content": "Hel"}),
            _chunk(model, {"content": "lo"}), _chunk(model, {}, finish)]


def _kimi(model: str) -> list[bytes]:
    usage = {"prompt_tokens": 1336, "completion_tokens": 31, "total_tokens": 1367,
             "cached_tokens": 1280}
    return [*_text(model)[:-1], _chunk(model, {}, "stop", choice={"usage": usage}), DONE]


def _groq(model: str) -> list[bytes]:
    usage = {"queue_time": 0.02, "prompt_tokens": 120, "prompt_time": 0.004,
             "completion_tokens": 9, "completion_time": 0.03, "total_tokens": 129,
             "total_time": 0.034}
    return [*_text(model)[:-1], _chunk(model, {}, "stop", x_groq={"id": "req_01", "usage": usage}),
            DONE]


def _mistral(model: str) -> list[bytes]:
    usage = {"prompt_tokens": 210, "total_tokens": 274, "completion_tokens": 64}
    return [*_text(model)[:-1], _chunk(model, {"content": ""}, "model_length", usage=usage), DONE]


_OPENROUTER_USAGE = {"prompt_tokens": 500, "completion_tokens": 40, "total_tokens": 540,
                     "cost": 0.00123, "prompt_tokens_details": {"cached_tokens": 300},
                     "completion_tokens_details": {"reasoning_tokens": 12}}


def _openrouter(model: str) -> list[bytes]:
    return [b": OPENROUTER PROCESSING\n\n", *_text(model), _usage_chunk(model, _OPENROUTER_USAGE),
            DONE]


def _siliconflow(model: str) -> list[bytes]:
    def usage(n: int) -> dict[str, Any]:
        return {"prompt_tokens": 77, "completion_tokens": n, "total_tokens": 77 + n,
                "prompt_cache_hit_tokens": 64, "completion_tokens_details": {"reasoning_tokens": 30}}
    return [_chunk(model, {"role": "assistant", "content": None, "reasoning_content": "Think"},
                   usage=usage(30)),
            _chunk(model, {"content": "Hel"}, usage=usage(43)),
            _chunk(model, {"content": "lo"}, usage=usage(44)),
            _chunk(model, {}, "stop", usage=usage(45)), DONE]


def _cerebras(model: str) -> list[bytes]:
    usage = {"prompt_tokens": 90, "completion_tokens": 5, "total_tokens": 95,
             "prompt_tokens_details": {"cached_tokens": 0}}
    return [*_text(model)[:-1], _chunk(model, {}, "stop", usage=usage,
                                       time_info={"queue_time": 0.0001, "total_time": 0.01}),
            DONE]


_NVIDIA_USAGE = {"prompt_tokens": 150, "completion_tokens": 12, "total_tokens": 162}


def _nvidia(model: str) -> list[bytes]:
    return [*_text(model), _usage_chunk(model, _NVIDIA_USAGE), DONE]


TRANSCRIPTS: dict[str, Transcript] = {t.provider: t for t in (
    Transcript("kimi", "kimi-k2-0905-preview", _kimi,
               {"prompt_tokens": 1336, "completion_tokens": 31, "total_tokens": 1367,
                "cached_tokens": 1280}, Expect(1336, 31, 1280, None)),
    Transcript("groq", "moonshotai/kimi-k2-instruct", _groq,
               {"prompt_tokens": 120, "completion_tokens": 9, "total_tokens": 129},
               Expect(120, 9, None, None), _groq_refuses),
    Transcript("mistral", "mistral-small-latest", _mistral,
               {"prompt_tokens": 210, "completion_tokens": 64, "total_tokens": 274},
               Expect(210, 64, None, None, finish="length"), _mistral_refuses,
               finish="model_length"),
    Transcript("openrouter", "moonshotai/kimi-k2", _openrouter, _OPENROUTER_USAGE,
               Expect(500, 40, 300, 12)),
    Transcript("siliconflow", "moonshotai/Kimi-K2-Instruct", _siliconflow,
               {"prompt_tokens": 77, "completion_tokens": 45, "total_tokens": 122,
                "prompt_cache_hit_tokens": 64,
                "completion_tokens_details": {"reasoning_tokens": 30}},
               Expect(77, 45, 64, 30), _siliconflow_refuses),
    Transcript("cerebras", "gpt-oss-120b", _cerebras,
               {"prompt_tokens": 90, "completion_tokens": 5, "total_tokens": 95,
                "prompt_tokens_details": {"cached_tokens": 0}},
               Expect(90, 5, 0, None), _cerebras_refuses),
    Transcript("nvidia", "moonshotai/kimi-k2-instruct", _nvidia, _NVIDIA_USAGE,
               Expect(150, 12, None, None), _nvidia_refuses),
)}


def _error_stream(model: str) -> list[bytes]:
    error = {"id": "chatcmpl-r", "object": "chat.completion.chunk", "created": 1, "model": model,
             "provider": "Upstream", "error": {"code": 502, "message": "Provider disconnected"},
             "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]}
    return [*_text(model)[:-1], b"data: " + json.dumps(error).encode() + b"\n\n", DONE]


def _error_event_stream(model: str) -> list[bytes]:
    error = {"error": {"message": "Service Unavailable", "type": "internal_server_error"}}
    return [*_text(model)[:-1], b"event: error\ndata: " + json.dumps(error).encode() + b"\n\n",
            DONE]


def _cut_stream(model: str) -> list[bytes]:
    return [*_text(model)[:-1], DONE]


@dataclass
class FakeReplay:
    seen: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    pause_s: float = 0.3


def replay_app(state: FakeReplay) -> Starlette:
    async def chat(request: Request) -> Response:
        provider = request.path_params["provider"]
        body = await request.json()
        state.seen.append((provider, body))
        transcript = TRANSCRIPTS[provider]
        refused = transcript.refuses(body)
        if refused is not None:
            return JSONResponse({"error": {"message": refused, "type": "invalid_request_error"}},
                                status_code=422 if provider == "mistral" else 400)
        model = body["model"]
        if not body.get("stream"):
            return JSONResponse(_answer(transcript, model))
        if model == "error":
            events = _error_stream(model)
        elif model == "cut":
            events = _cut_stream(model)
        elif model == "error-event":
            events = _error_event_stream(model)
        else:
            events = transcript.stream(model)
        return StreamingResponse(_play(events, state.pause_s if model == "slow" else 0),
                                 media_type="text/event-stream")

    return Starlette(routes=[Route("/{provider}/v1/chat/completions", chat, methods=["POST"])])


def _answer(transcript: Transcript, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "Hello"}
    out: dict[str, Any] = {"id": "chatcmpl-r", "object": "chat.completion", "created": 1,
                           "model": model, "choices": [{"index": 0, "message": message,
                                                        "finish_reason": transcript.finish}],
                           "usage": transcript.body_usage}
    if model == "error":
        out["choices"][0]["finish_reason"] = "error"
        out["error"] = {"code": 502, "message": "Provider disconnected"}
    return out


async def _play(events: list[bytes], pause_s: float) -> AsyncIterator[bytes]:
    if pause_s:
        yield b": OPENROUTER PROCESSING\n\n"
        yield events[0]  # the role-only chunk
        await asyncio.sleep(pause_s)
        events = events[1:]
    for event in events:
        yield event
