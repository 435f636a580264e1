"""Pure units of the proxy: backoff, error mapping, limits, routing, breakers, Gemini, streams."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from kimi_mcp.catalog import Catalog
from kimi_mcp.config import load_settings
from kimi_mcp.errors import RateLimited, RequestError
from kimi_mcp.proxy.accounting import CallRecord, _parse_events
from kimi_mcp.proxy.formats import gemini
from kimi_mcp.proxy.limits import Limiter
from kimi_mcp.proxy.resolve import Router
from kimi_mcp.proxy.streaming import _strip_usage
from kimi_mcp.proxy.wire import build
from kimi_mcp.upstream import Backoff, parse_retry_after
from kimi_mcp.upstream import to_upstream_error as to_proxy_error

KEY = "sk-unit-secret-123"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def catalog(tmp_path: Any, **providers: Any) -> Catalog:
    base = {"p": {"base_url": "http://p.test/v1", "api_key": KEY, "rpm": 2, "tpm": 1000,
                  "queue_timeout_s": 5,
                  "models": {"a": {"context_window": 4000, "input_per_mtok": 1, "output_per_mtok": 1},
                             "b": {"context_window": 4000, "input_per_mtok": 3, "output_per_mtok": 3}}},
            **providers}
    settings = load_settings(overrides={"data_dir": str(tmp_path), "providers": base},
                             launch_dir=tmp_path)
    return Catalog(settings)


def test_backoff_is_full_jitter_under_the_cap_and_honours_retry_after() -> None:
    high = Backoff(base=0.5, cap=8, rand=lambda: 0.999999)
    low = Backoff(base=0.5, cap=8, rand=lambda: 0.0)
    assert [round(high.delay(n, None), 3) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert low.delay(3, None) == 0.0
    assert low.delay(0, 3.0) == 3.0
    assert Backoff(max_retry_after=2, rand=lambda: 0.0).delay(0, 60) == 2


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_upstream_failures_map_to_openai_errors_without_the_key(tmp_path: Any) -> None:
    provider = catalog(tmp_path).provider("p")
    request = httpx.Request("POST", "http://p.test/v1/chat/completions")
    echo = httpx.Response(400, json={"error": {"message": f"bad key {KEY} in field x"}})
    bad = to_proxy_error(provider, response=echo)
    limited = to_proxy_error(provider, response=httpx.Response(
        429, headers={"retry-after": "3"}, json={"error": {"message": "slow"}}))
    gone = to_proxy_error(provider, response=httpx.Response(500, text="oops"))
    timeout = to_proxy_error(provider, exc=httpx.ReadTimeout("t", request=request))
    refused = to_proxy_error(provider, exc=httpx.ConnectError("no", request=request))
    assert (bad.status, bad.retryable) == (400, False) and KEY not in str(bad) and "***" in str(bad)
    assert (limited.status, limited.retry_after, limited.retryable) == (429, 3.0, True)
    assert gone.status == 502 and "oops" in str(gone)
    assert timeout.status == 504 and timeout.code == "upstream_timeout"
    assert refused.status == 502 and "could not be reached" in str(refused)


def test_build_injects_include_usage_only_where_supported_and_drops_fields(tmp_path: Any) -> None:
    cat = catalog(tmp_path, mistral={"api_key": KEY})
    body = {"model": "x", "messages": [], "metadata": {}, "stream": True}
    openai_like = build(cat.resolve("p/a"), body, stream=True)
    mistral = build(cat.resolve("mistral/mistral-small-latest"), body, stream=True)
    asked = build(cat.resolve("p/a"), {**body, "stream_options": {"include_usage": True}}, True)
    sent = json.loads(openai_like.content)
    assert sent["stream_options"] == {"include_usage": True} and openai_like.strip_usage
    assert sent["model"] == "a" and openai_like.headers["authorization"] == f"Bearer {KEY}"
    assert "stream_options" not in json.loads(mistral.content) and not mistral.strip_usage
    assert "metadata" not in json.loads(mistral.content)
    assert not asked.strip_usage
    assert body == {"model": "x", "messages": [], "metadata": {}, "stream": True}


@pytest.mark.anyio
async def test_token_buckets_queue_then_refuse_with_retry_after(tmp_path: Any) -> None:
    provider = catalog(tmp_path).provider("p")
    clock = Clock()
    limiter = Limiter(clock=clock)
    assert await limiter.acquire(provider, 100) == 0
    assert await limiter.acquire(provider, 100) == 0
    assert not limiter.headroom(provider, 100)  # the third request/min would wait 30 s > 5 s
    with pytest.raises(RateLimited) as info:
        await limiter.acquire(provider, 100)
    assert info.value.retry_after == pytest.approx(30)
    clock.now += 30
    assert limiter.headroom(provider, 100)
    clock.now += 1000
    assert await limiter.acquire(provider, 2000) == 0  # capped at the bucket: it may pass alone
    with pytest.raises(RateLimited) as info:  # tpm: 1000/min, 5 s of queue buys ~83 tokens
        await limiter.acquire(provider, 100)
    assert "tpm" in str(info.value)


def test_router_strategies_rank_by_price_and_by_measured_speed(tmp_path: Any) -> None:
    cat = catalog(tmp_path)
    settings = load_settings(overrides={"data_dir": str(tmp_path), "routing": {"aliases": {
        "cheap": {"strategy": "cheapest", "models": ["p/b", "p/a"]},
        "fast": {"strategy": "fastest", "models": ["p/a", "p/b"]},
        "both": {"strategy": "balanced", "models": ["p/a", "p/b"]}}}}, launch_dir=tmp_path)
    router = Router(cat, settings.routing, Limiter())
    assert [r.ref for r in router.plan("cheap", 100, 10).candidates] == ["p/a", "p/b"]
    router.observe("p/b", 0.1, 500)
    router.observe("p/a", 2.0, 20)
    assert [r.ref for r in router.plan("fast", 100, 10).candidates] == ["p/b", "p/a"]
    assert router.plan("both", 100, 10).candidates[0].ref in ("p/a", "p/b")
    with pytest.raises(RequestError) as info:
        router.plan("cheap", 3990, 100)
    assert info.value.status == 400 and info.value.code == "context_length_exceeded"


def test_breaker_opens_after_failures_and_half_opens_after_the_cooldown(tmp_path: Any) -> None:
    settings = load_settings(overrides={"data_dir": str(tmp_path), "routing": {
        "breaker_failures": 2, "breaker_cooldown_s": 10,
        "aliases": {"x": {"models": ["p/a", "p/b"]}}}}, launch_dir=tmp_path)
    clock = Clock()
    changes: list[tuple[str, str]] = []
    router = Router(catalog(tmp_path), settings.routing, Limiter(), clock=clock,
                    on_breaker=lambda ref, state: changes.append((ref, state)))
    router.failure("p/a")
    assert router.available("p/a")
    router.failure("p/a")
    assert not router.available("p/a")
    assert [r.ref for r in router.plan("x", 10, 10).candidates] == ["p/b"]
    clock.now += 10
    assert router.available("p/a")  # half-open: one trial
    router.failure("p/a")
    assert not router.available("p/a")
    clock.now += 10
    router.available("p/a")
    router.success("p/a")
    assert changes == [("p/a", "open"), ("p/a", "half-open"), ("p/a", "open"),
                       ("p/a", "half-open"), ("p/a", "closed")]


def test_gemini_request_translation_keeps_turns_tools_and_results() -> None:
    body = {"messages": [
        {"role": "system", "content": "S"},
        {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 3}'},
        {"role": "tool", "tool_call_id": "c1", "content": "plain text"},
        {"role": "user", "content": "thanks"}],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {
            "type": "object", "additionalProperties": False, "properties": {}}}}],
        "tool_choice": "required", "max_tokens": 50, "temperature": 0.1, "stop": "END"}
    out = gemini.to_gemini(body)
    assert out["systemInstruction"] == {"parts": [{"text": "S"}]}
    assert [c["role"] for c in out["contents"]] == ["user", "model", "user"]
    assert out["contents"][1]["parts"] == [{"functionCall": {"name": "weather", "args": {"city": "Oslo"}}}]
    results = out["contents"][2]["parts"]
    assert results[0] == {"functionResponse": {"name": "weather", "response": {"temp": 3}}}
    assert results[1]["functionResponse"]["response"] == {"content": "plain text"}
    assert results[2] == {"text": "thanks"}
    # Gemini refuses an OBJECT with empty properties: a tool without parameters declares none
    assert out["tools"][0]["functionDeclarations"][0] == {"name": "weather"}
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert out["generationConfig"] == {"temperature": 0.1, "maxOutputTokens": 50, "stopSequences": ["END"]}


def test_gemini_usage_metadata_becomes_openai_usage() -> None:
    usage = gemini.usage_of({"promptTokenCount": 10, "candidatesTokenCount": 4,
                             "thoughtsTokenCount": 6, "cachedContentTokenCount": 8,
                             "totalTokenCount": 20})
    assert usage == {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20,
                     "prompt_tokens_details": {"cached_tokens": 8},
                     "completion_tokens_details": {"reasoning_tokens": 6}}
    answer = gemini.from_gemini({"candidates": [{"content": {"parts": [{"text": "hi"}]},
                                                 "finishReason": "MAX_TOKENS"}]}, "g")
    assert answer["choices"][0]["finish_reason"] == "length"
    assert answer["choices"][0]["message"]["content"] == "hi"


def test_the_injected_usage_chunk_is_stripped_and_its_numbers_kept() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 1}
    block = (b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'
             b'data: {"choices":[],"usage":' + json.dumps(usage).encode() + b'}\n\n'
             b"data: [DONE]\n\n")
    rec = CallRecord(created_at=0, started=0, stream=True)
    out = _strip_usage(block, b"\n\n", rec)
    assert out == b'data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: [DONE]\n\n'
    assert rec.usage == usage
    found, text = _parse_events([block], None)
    assert found == usage and text == "a"
