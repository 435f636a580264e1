"""The proxy served by uvicorn on loopback, in front of a real fake provider, driven by the
official `openai` SDK (and raw httpx where the SDK hides what is tested)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from proxy_support import (
    GEMINI_KEY,
    OPENAI_KEY,
    FakeState,
    Served,
    fake_provider,
    provider_settings,
    serve,
    served_app,
)
from sqlmodel import select

from kimi_mcp.config import load_settings
from kimi_mcp.ledger.models import Alert
from kimi_mcp.ledger.models import Session as SessionRow
from kimi_mcp.tokens import count_text
from kimi_mcp.upstream import Backoff
from tests.services import BACKENDS, database


@dataclass(kw_only=True)
class Running(Served):
    fake: FakeState

    def sdk(self, **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="client-own-key", max_retries=0,
                             **kwargs)


@pytest.fixture(scope="module", params=BACKENDS)
def running(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    state = FakeState()
    tmp = tmp_path_factory.mktemp("proxy")
    with serve(fake_provider(state)) as base, pytest.MonkeyPatch.context() as mp, \
            database(request.param, tmp / "data") as url:
        for name in list(os.environ):
            if name.startswith("KIMI_MCP_") or name.endswith("_API_KEY"):
                mp.delenv(name)
        providers = provider_settings(base)
        providers["fake"]["models"]["tiny"] = {"context_window": 20}
        providers["fakeslow"] = {**providers["fake"], "timeout_s": 0.2}
        settings = load_settings(overrides={
            "data_dir": str(tmp / "data"), "providers": providers,
            "logwatch": {"enabled": False}, "memory": {"embedder": "hash"},
            "mcp": {"workspace": str(tmp)}, "database": {"url": url}}, launch_dir=tmp)
        with served_app(settings) as (url, deps, proxy):
            proxy.upstream.backoff = Backoff(base=0.001, cap=0.004, max_retry_after=0.05)
            yield Running(url, deps, proxy, fake=state)


@pytest.fixture
def start(running: Running) -> Callable[..., Any]:
    running.fake.seen.clear()
    running.fake.calls.clear()
    running.fake.closed.clear()
    running.mark()

    @contextlib.contextmanager
    def run() -> Iterator[Running]:
        yield running

    return run


def test_sdk_completion_uses_the_providers_key_and_records_provider_usage(start) -> None:  # type: ignore[no-untyped-def]
    with start() as px:
        raw = px.sdk().chat.completions.with_raw_response.create(
            model="fake/ok", messages=[{"role": "user", "content": "hi"}])
        answer = raw.parse()
        [row] = px.rows()
    assert answer.choices[0].message.content == "Hello"
    assert raw.headers["x-kimi-route"].startswith("fake/ok; requested")
    sent = px.fake.seen[-1]
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert sent.body["model"] == "ok"
    assert (row.provider, row.model, row.status, row.http_status) == ("fake", "ok", "ok", 200)
    assert (row.prompt_tokens, row.completion_tokens, row.cached_tokens) == (11, 2, 4)
    assert row.usage_source == "provider" and row.est_prompt_tokens and row.est_prompt_tokens > 0
    assert row.est_completion_tokens == count_text("Hello")
    assert row.cost_usd == pytest.approx((7 * 1.0 + 2 * 2.0) / 1e6, rel=0.5)
    assert row.session_id is not None and row.latency_ms is not None
    assert OPENAI_KEY not in json.dumps(row.model_dump(mode="json"))


def test_sdk_stream_relays_chunks_and_strips_the_usage_chunk_it_did_not_ask_for(start) -> None:  # type: ignore[no-untyped-def]
    with start() as px:
        chunks = list(px.sdk().chat.completions.create(
            model="fake/ok", messages=[{"role": "user", "content": "hi"}], stream=True))
        [row] = px.rows()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello"
    assert all(c.usage is None for c in chunks)
    assert px.fake.seen[-1].body["stream_options"] == {"include_usage": True}
    assert (row.prompt_tokens, row.completion_tokens, row.usage_source) == (11, 2, "provider")
    assert row.stream and row.status == "ok" and row.ttft_ms is not None


def test_sdk_stream_keeps_the_usage_chunk_when_the_client_asks(start) -> None:  # type: ignore[no-untyped-def]
    with start() as px:
        chunks = list(px.sdk().chat.completions.create(
            model="fake/ok", messages=[{"role": "user", "content": "hi"}], stream=True,
            stream_options={"include_usage": True}))
        px.rows()
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 11


def test_stream_without_provider_usage_is_estimated_with_tiktoken(start) -> None:  # type: ignore[no-untyped-def]
    with start() as px:
        list(px.sdk().chat.completions.create(
            model="fake/no-usage", messages=[{"role": "user", "content": "hi"}], stream=True))
        [row] = px.rows()
    assert row.usage_source == "estimate" and row.prompt_tokens is None
    assert row.est_completion_tokens == count_text("Hello")
    assert row.est_prompt_tokens and row.est_prompt_tokens > 0


def test_mid_stream_drop_ends_with_an_error_event_and_done(start) -> None:  # type: ignore[no-untyped-def]
    with start() as px:
        body = {"model": "fake/drop", "stream": True, "messages": [{"role": "user", "content": "x"}]}
        reply = httpx.post(f"{px.url}/v1/chat/completions", json=body, timeout=10)
        [row] = px.rows()
    events = [e for e in reply.text.split("\n\n") if e]
    assert '"Hel"' in reply.text
    assert '"error"' in events[-2] and events[-1] == "data: [DONE]"
    assert row.status == "error" and "mid-stream" in (row.error or "")
    assert row.est_completion_tokens == count_text("Hel")


def test_503_then_ok_is_retried_before_the_first_byte(start) -> None:  # type: ignore[no-untyped-def]
    with start() as px:
        answer = px.sdk().chat.completions.create(
            model="fake/503-once", messages=[{"role": "user", "content": "hi"}])
        [row] = px.rows()
    assert answer.choices[0].message.content == "Hello"
    assert px.fake.calls["503-once"] == 2
    assert row.status == "ok" and len(row.meta["retries"]) == 1


def test_429_with_retry_after_is_retried_then_passed_on_with_retry_after(start) -> None:  # type: ignore[no-untyped-def]
    with start() as px:
        ok = px.sdk().chat.completions.create(
            model="fake/429-once", messages=[{"role": "user", "content": "hi"}])
        refused = httpx.post(f"{px.url}/v1/chat/completions", timeout=10, json={
            "model": "fake/429-always", "messages": [{"role": "user", "content": "hi"}]})
        rows = px.rows(2)
    assert ok.choices[0].message.content == "Hello"
    assert refused.status_code == 429 and refused.headers["retry-after"] == "7"
    assert "slow down" in refused.json()["error"]["message"]
    assert px.fake.calls["429-always"] == 3  # max_retries = 2
    assert [r.status for r in rows] == ["ok", "error"] and rows[1].http_status == 429


def test_slow_first_byte_times_out_retries_then_answers_or_gives_504(start) -> None:  # type: ignore[no-untyped-def]
    with start() as px:
        chunks = list(px.sdk().chat.completions.create(
            model="fakeslow/slow-once", messages=[{"role": "user", "content": "hi"}], stream=True))
        late = httpx.post(f"{px.url}/v1/chat/completions", timeout=10, json={
            "model": "fakeslow/slow-always", "messages": [{"role": "user", "content": "hi"}]})
        rows = px.rows(2)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello"
    assert late.status_code == 504 and "timed out" in late.json()["error"]["message"]
    assert [r.status for r in rows] == ["ok", "error"] and rows[1].http_status == 504


def test_client_disconnect_closes_the_upstream_and_records_cancelled(start) -> None:  # type: ignore[no-untyped-def]
    with start() as px:
        body = {"model": "fake/hang", "stream": True, "messages": [{"role": "user", "content": "x"}]}
        with httpx.Client(timeout=10) as client, client.stream(
                "POST", f"{px.url}/v1/chat/completions", json=body) as reply:
            first = next(reply.iter_bytes())
        assert px.fake.closed.wait(10), "the upstream stream was not closed"
        [row] = px.rows()
    assert b"data:" in first
    assert row.status == "cancelled" and row.stream


def test_upstream_4xx_passes_through_with_the_providers_message(start) -> None:  # type: ignore[no-untyped-def]
    with start() as px, pytest.raises(openai.UnprocessableEntityError) as info:
        px.sdk().chat.completions.create(model="fake/reject",
                                         messages=[{"role": "user", "content": "hi"}])
    assert "Unrecognized request argument" in str(info.value)
    assert px.fake.calls["reject"] == 1


def test_gemini_provider_is_translated_both_ways_with_tools(start) -> None:  # type: ignore[no-untyped-def]
    tools = [{"type": "function", "function": {"name": "weather", "description": "Weather",
                                               "parameters": {"type": "object", "properties": {
                                                   "city": {"type": "string"}}}}}]
    with start() as px:
        answer = px.sdk().chat.completions.create(
            model="gfake/gemini-x", tools=tools,  # type: ignore[arg-type]
            messages=[{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": "Weather in Paris?"}])
        [row] = px.rows()
    sent = px.fake.seen[-1]
    assert sent.path.endswith("/models/gemini-x:generateContent")
    assert sent.headers["x-goog-api-key"] == GEMINI_KEY and "authorization" not in sent.headers
    assert sent.body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert sent.body["tools"][0]["functionDeclarations"][0]["name"] == "weather"
    call = answer.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert answer.choices[0].finish_reason == "tool_calls"
    assert (row.prompt_tokens, row.completion_tokens, row.cached_tokens) == (9, 3, 2)


def test_gemini_stream_is_translated_into_openai_chunks_with_usage(start) -> None:  # type: ignore[no-untyped-def]
    with start() as px:
        chunks = list(px.sdk().chat.completions.create(
            model="gfake/gemini-x", messages=[{"role": "user", "content": "hi"}], stream=True,
            stream_options={"include_usage": True}))
        [row] = px.rows()
    assert px.fake.seen[-1].path.endswith(":streamGenerateContent")
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert row.status == "ok" and row.prompt_tokens == 9


def test_named_session_header_creates_the_session_once_and_alerts_on_thresholds(start) -> None:  # type: ignore[no-untyped-def]
    with start() as px:
        client = px.sdk(default_headers={"X-Kimi-Session": "feature-x"})
        for _ in range(2):
            client.chat.completions.create(model="fake/tiny",
                                           messages=[{"role": "user", "content": "hi"}])
        rows = px.rows(2)
        with px.deps.ledger.read() as db:
            sessions = db.exec(select(SessionRow).where(SessionRow.name == "feature-x")).all()
            alerts = db.exec(select(Alert)).all()
    assert len(sessions) == 1 and {r.session_id for r in rows} == {sessions[0].id}
    assert [(a.threshold, a.session_id) for a in alerts] == [(0.5, sessions[0].id)]
