"""Providers behind CDNs compress their answers when the request allows it (`Accept-Encoding:
gzip`, which the wire sends). The proxy must hand on, bill and translate the plain bytes (httpx
decodes the body the pool hands over as raw bytes): here a real loopback provider compresses
every answer, whole and streamed, OpenAI and Gemini format, and the official SDK and the ledger
see exactly what an uncompressed answer gives."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest
from proxy_support import Served, provider_settings, serve, served_app
from starlette.applications import Starlette
from starlette.requests import Request as HttpRequest
from starlette.responses import Response
from starlette.routing import Route

from kimi_mcp.config import load_settings

USAGE = {"prompt_tokens": 1336, "completion_tokens": 31, "total_tokens": 1367}


def _compressed(body: bytes, accept: str) -> tuple[bytes, str]:
    if "gzip" in accept:
        return gzip.compress(body), "gzip"
    if "deflate" in accept:
        return zlib.compress(body), "deflate"
    return body, "identity"


def _chat(request_body: dict[str, Any]) -> tuple[bytes, str]:
    if not request_body.get("stream"):
        return json.dumps({
            "id": "c1", "object": "chat.completion", "created": 1, "model": "ok",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Squeezed"},
                         "finish_reason": "stop"}],
            "usage": USAGE}).encode(), "application/json"
    chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Sque"}}]},
              {"choices": [{"index": 0, "delta": {"content": "ezed"}, "finish_reason": "stop"}]},
              {"choices": [], "usage": USAGE}]
    events = b"".join(b"data: " + json.dumps({"id": "c1", "object": "chat.completion.chunk",
                                              "created": 1, "model": "ok", **c}).encode() + b"\n\n"
                      for c in chunks)
    return events + b"data: [DONE]\n\n", "text/event-stream"


def _gemini(stream: bool) -> tuple[bytes, str]:
    answer = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Squeezed"}]},
                              "finishReason": "STOP", "index": 0}],
              "usageMetadata": {"promptTokenCount": 1336, "candidatesTokenCount": 31,
                                "totalTokenCount": 1367}}
    if stream:
        return b"data: " + json.dumps(answer).encode() + b"\r\n\r\n", "text/event-stream"
    return json.dumps(answer).encode(), "application/json"


def compressing_provider(seen: list[str]) -> Starlette:
    async def endpoint(request: HttpRequest) -> Response:
        accept = request.headers.get("accept-encoding", "")
        seen.append(accept)
        path = request.url.path
        if ":" in path:  # Gemini: /v1beta/models/{model}:generateContent or :streamGenerateContent
            body, media = _gemini("streamGenerateContent" in path)
        else:
            body, media = _chat(await request.json())
        data, encoding = _compressed(body, accept)
        return Response(data, media_type=media, headers={"content-encoding": encoding})

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=["POST"])])


@dataclass
class Running(Served):
    seen: list[str] = field(default_factory=list)  # each request's Accept-Encoding upstream


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    seen: list[str] = []
    tmp: Path = tmp_path_factory.mktemp("gzip")
    with serve(compressing_provider(seen)) as base:
        settings = load_settings(overrides={
            "data_dir": str(tmp / "data"), "providers": provider_settings(base),
            "logwatch": {"enabled": False}, "memory": {"embedder": "hash"},
            "mcp": {"workspace": str(tmp)}}, launch_dir=tmp)
        with served_app(settings) as (url, deps, proxy):
            yield Running(url, deps, proxy, seen=seen)


@pytest.mark.parametrize("model", ["fake/ok", "gfake/gemini-2.5-flash"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_compressed_answer_reaches_the_client_and_the_ledger_decompressed(
    running: Running, model: str, stream: bool
) -> None:
    running.mark()
    sdk = openai.OpenAI(base_url=f"{running.url}/v1", api_key="client-own-key", max_retries=0)
    messages: Any = [{"role": "user", "content": "hi"}]
    if stream:
        chunks = list(sdk.chat.completions.create(model=model, messages=messages, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        answer = sdk.chat.completions.create(model=model, messages=messages)
        text = answer.choices[0].message.content or ""
    assert text == "Squeezed"
    assert "gzip" in running.seen[-1]  # the provider was allowed to compress, and did
    [row] = running.rows()
    assert (row.status, row.usage_source, row.prompt_tokens, row.completion_tokens) == (
        "ok", "provider", 1336, 31)
