"""The proxy in-process (ASGI) with an `httpx.MockTransport` upstream: what goes out, what comes
back, and what the ledger records."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest
from proxy_support import proxy_app
from proxy_support import proxy_rows as rows

from kimi_mcp.context import StageResult
from kimi_mcp.deps import Deps
from kimi_mcp.proxy.pipeline import Proxy

pytestmark = pytest.mark.anyio

KEY = "sk-mock-secret-abcdef"
ANSWER = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                       "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}
MESSAGES = [{"role": "user", "content": "hi"}]


@dataclass
class Upstream:
    requests: list[httpx.Request] = field(default_factory=list)
    answer: Callable[[httpx.Request], httpx.Response] = lambda r: httpx.Response(200, json=ANSWER)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    def body(self, index: int = -1) -> dict[str, Any]:
        return json.loads(self.requests[index].content)  # type: ignore[no-any-return]


def providers(**extra: Any) -> dict[str, Any]:
    base = {"a": {"base_url": "http://a.test/v1", "api_key": KEY, "max_retries": 1,
                  "models": {"small": {"context_window": 1000, "input_per_mtok": 1, "output_per_mtok": 1},
                             "big": {"context_window": 100_000, "input_per_mtok": 5, "output_per_mtok": 5}}},
            "b": {"base_url": "http://b.test/v1", "api_key": KEY, "max_retries": 0,
                  "models": {"cheap": {"context_window": 100_000, "input_per_mtok": 0.1,
                                       "output_per_mtok": 0.1}}}}
    base.update(extra)
    return base


@pytest.fixture
def build(make_deps: Callable[..., Deps], serve_app: Any) -> Callable[..., Any]:
    def run(upstream: Upstream, stages: Any = None, **overrides: Any) -> tuple[Any, Deps, Proxy]:
        overrides.setdefault("providers", providers())
        overrides.setdefault("logwatch", {"enabled": False})
        deps = make_deps(**overrides)
        app = proxy_app(deps, transport=httpx.MockTransport(upstream), stages=stages)
        proxy: Proxy = app.state.proxy
        return serve_app(app), deps, proxy

    return run


async def test_client_authorization_is_never_forwarded_and_unknown_fields_pass(build) -> None:  # type: ignore[no-untyped-def]
    up = Upstream()
    served, deps, proxy = build(up)
    async with served as client:
        reply = await client.post("/v1/chat/completions", headers={"authorization": "Bearer mine"},
                                  json={"model": "a/small", "messages": MESSAGES, "new_field": 1})
        [row] = await rows(deps, proxy, 1)
    assert reply.status_code == 200 and reply.json()["usage"]["prompt_tokens"] == 5
    assert up.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert up.body()["new_field"] == 1 and up.body()["model"] == "small"
    assert KEY not in json.dumps(row.model_dump(mode="json"))


def spooled(deps: Deps) -> list[dict[str, Any]]:
    """The rows written to this process's spool so far (what survives a crash right now)."""
    out = []
    for path in (deps.settings.data_dir / "spool").glob("*.spool"):
        for line in path.read_bytes().splitlines():
            out.append(json.loads(line)["v"])
    return out


async def test_the_clients_headers_are_recorded_with_every_credential_redacted(build) -> None:  # type: ignore[no-untyped-def]
    served, deps, proxy = build(Upstream())
    secrets = ("Bearer client-token-123", "sk-client-key-456", "session=cookie-789")
    async with served as client:
        await client.post("/v1/chat/completions", json={"model": "a/small", "messages": MESSAGES},
                          headers={"authorization": secrets[0], "x-api-key": secrets[1],
                                   "cookie": secrets[2], "user-agent": "my-agent/1.0"})
        [row] = await rows(deps, proxy, 1)
    headers = row.meta["headers"]
    assert headers["user-agent"] == "my-agent/1.0"
    assert headers["authorization"] == headers["x-api-key"] == headers["cookie"] == "[redacted]"
    stored = json.dumps(row.model_dump(mode="json")) + json.dumps(spooled(deps))
    assert not any(secret in stored for secret in secrets)


async def test_an_answer_is_not_complete_before_its_row_is_durable(build) -> None:  # type: ignore[no-untyped-def]
    def streamed(request: httpx.Request) -> httpx.Response:
        if not json.loads(request.content).get("stream"):
            return httpx.Response(200, json=ANSWER)
        chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                 "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}
        body = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    served, deps, proxy = build(Upstream(answer=streamed))
    async with served as client:
        await client.post("/v1/chat/completions", json={"model": "a/small", "messages": MESSAGES})
        after_whole = [r["uid"] for r in spooled(deps)]
        async with client.stream("POST", "/v1/chat/completions",
                                 json={"model": "a/small", "messages": MESSAGES, "stream": True}) as reply:
            at_done = None
            async for line in reply.aiter_lines():
                if line == "data: [DONE]":  # the client has everything: the row must be durable
                    at_done = [r["uid"] for r in spooled(deps)]
        stored = await rows(deps, proxy, 2)
    assert len(after_whole) == 1 and at_done is not None and len(set(at_done)) == 2
    assert {r.uid for r in stored} == set(at_done)
    # the complete rows replaced the reserved ones: their tokens were counted off the path
    assert [r.stream for r in stored] == [False, True] and stored[1].est_completion_tokens == 1


async def test_metadata_session_names_the_session_and_is_not_forwarded(build) -> None:  # type: ignore[no-untyped-def]
    up = Upstream()
    served, deps, proxy = build(up)
    async with served as client:
        await client.post("/v1/chat/completions", json={
            "model": "a/small", "messages": MESSAGES, "metadata": {"session": "s-1", "user": "u"}})
        [row] = await rows(deps, proxy, 1)
    assert up.body()["metadata"] == {"user": "u"}
    assert row.session_id == deps.sessions.resolve("s-1")


async def test_fields_the_provider_rejects_are_dropped(build) -> None:  # type: ignore[no-untyped-def]
    up = Upstream()
    served, _deps, _proxy = build(up, providers=providers(
        mistral={"api_key": KEY}))
    async with served as client:
        await client.post("/chat/completions", json={
            "model": "mistral-large-latest", "messages": MESSAGES, "metadata": {"x": "1"},
            "store": True, "temperature": 0.2})
    sent = up.body()
    assert str(up.requests[0].url) == "https://api.mistral.ai/v1/chat/completions"
    assert "metadata" not in sent and "store" not in sent and sent["temperature"] == 0.2


async def test_a_missing_key_is_a_401_naming_the_environment_variable(build) -> None:  # type: ignore[no-untyped-def]
    up = Upstream()
    served, deps, proxy = build(up)
    async with served as client:
        reply = await client.post("/v1/chat/completions",
                                  json={"model": "kimi/kimi-k2-0905-preview", "messages": MESSAGES})
        [row] = await rows(deps, proxy, 1)
    assert reply.status_code == 401 and "MOONSHOT_API_KEY" in reply.json()["error"]["message"]
    assert not up.requests
    assert row.status == "error" and row.http_status == 401 and row.provider == "kimi"


async def test_model_resolution_errors_are_clear(build) -> None:  # type: ignore[no-untyped-def]
    served, _deps, _proxy = build(Upstream())
    async with served as client:
        missing = await client.post("/v1/chat/completions",
                                    json={"model": "llama-3.3-70b-versatil", "messages": MESSAGES})
        ambiguous = await client.post("/v1/chat/completions", json={
            "model": "moonshotai/kimi-k2-instruct", "messages": MESSAGES})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    assert "llama-3.3-70b-versatile" in missing.json()["error"]["message"]
    assert ambiguous.status_code == 400
    assert "nvidia/moonshotai/kimi-k2-instruct" in ambiguous.json()["error"]["message"]
    assert "groq/moonshotai/kimi-k2-instruct" in ambiguous.json()["error"]["message"]


async def test_bad_input_is_400_or_413_and_still_recorded(build) -> None:  # type: ignore[no-untyped-def]
    served, deps, proxy = build(Upstream(), server={"max_body_mb": 0.001})
    async with served as client:
        not_json = await client.post("/v1/chat/completions", content=b"{oops")
        no_messages = await client.post("/v1/chat/completions", json={"model": "a/small"})
        bad_stream = await client.post("/v1/chat/completions",
                                       json={"model": "a/small", "messages": MESSAGES, "stream": "yes"})
        too_big = await client.post("/v1/chat/completions", content=b"x" * 5000)
        recorded = await rows(deps, proxy, 4)
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]["message"]
    assert no_messages.status_code == 400 and "messages" in no_messages.json()["error"]["message"]
    assert bad_stream.status_code == 400
    assert too_big.status_code == 413
    assert [r.http_status for r in recorded] == [400, 400, 400, 413]


async def test_models_lists_every_configured_model_and_the_aliases(build) -> None:  # type: ignore[no-untyped-def]
    served, _deps, _proxy = build(Upstream(), routing={"aliases": {"auto": {"models": ["a/small"]}}})
    async with served as client:
        listed = (await client.get("/v1/models")).json()
        again = (await client.get("/models")).json()
    ids = [m["id"] for m in listed["data"]]
    assert "a/small" in ids and "b/cheap" in ids and "gemini/gemini-2.5-pro" in ids and "auto" in ids
    assert listed == again


async def test_alias_routes_to_the_cheapest_fitting_model_and_falls_back(build) -> None:  # type: ignore[no-untyped-def]
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "b.test":
            return httpx.Response(503, json={"error": {"message": "down"}})
        return httpx.Response(200, json=ANSWER)

    up = Upstream(answer=answer)
    aliases = {"cheap": {"strategy": "cheapest", "models": ["a/small", "a/big", "b/cheap"]}}
    served, _deps, _proxy = build(up, routing={"aliases": aliases})
    long_prompt = [{"role": "user", "content": "word " * 2000}]
    async with served as client:
        reply = await client.post("/v1/chat/completions", json={"model": "cheap", "messages": long_prompt})
    route = reply.headers["x-kimi-route"]
    assert reply.status_code == 200
    assert [r.url.host for r in up.requests] == ["b.test", "a.test"]  # small cannot hold the prompt
    assert route.startswith("a/big; cheapest") and "fallback after b/cheap: HTTP 503" in route


async def test_stages_rewrite_the_body_and_their_savings_are_recorded(build) -> None:  # type: ignore[no-untyped-def]
    def Result(body: dict[str, Any], error: str | None = None) -> StageResult:
        return StageResult(body, saved_mask_tokens=40, saved_compress_tokens=7, memory_tokens=3,
                           masked_ids=["m1"], error=error)

    seen: list[tuple[str | None, int, bool]] = []

    class Stages:
        async def apply(self, body: dict[str, Any], *, session_id: str | None,
                        context_window: int, enabled: bool = True,
                        model_ref: str | None = None) -> StageResult:
            seen.append((session_id, context_window, enabled))
            if body["messages"][0]["content"] == "refuse":
                return Result(body, error="the conversation cannot fit the window")
            return Result({**body, "messages": [{"role": "user", "content": "masked"}]})

    up = Upstream()
    served, deps, proxy = build(up, stages=Stages())
    async with served as client:
        ok = await client.post("/v1/chat/completions", headers={"x-kimi-context": "off"},
                               json={"model": "a/small", "messages": MESSAGES})
        refused = await client.post("/v1/chat/completions", json={
            "model": "a/small", "messages": [{"role": "user", "content": "refuse"}]})
        recorded = await rows(deps, proxy, 2)
    assert ok.status_code == 200 and up.body(0)["messages"][0]["content"] == "masked"
    assert refused.status_code == 400 and "cannot fit" in refused.json()["error"]["message"]
    assert len(up.requests) == 1
    assert seen[0][1:] == (1000, False) and seen[1][2] is True
    first = recorded[0]
    assert (first.saved_mask_tokens, first.saved_compress_tokens, first.memory_tokens) == (40, 7, 3)
    assert first.meta["masked_ids"] == ["m1"]


async def test_repeated_failures_open_the_breaker_and_publish_an_event(build) -> None:  # type: ignore[no-untyped-def]
    up = Upstream(answer=lambda r: httpx.Response(500, json={"error": {"message": "boom"}}))
    served, deps, _proxy = build(up, routing={"breaker_failures": 2,
                                             "aliases": {"x": {"models": ["b/cheap"]}}})
    async with served as client:
        sub = deps.ledger.bus.subscribe()
        codes = [(await client.post("/v1/chat/completions",
                                    json={"model": "x", "messages": MESSAGES})).status_code
                 for _ in range(3)]
        with anyio.fail_after(5):
            event = await sub.queue.get()
            while event.type != "provider":
                event = await sub.queue.get()
    assert codes == [502, 502, 503]
    assert event.data == {"model": "b/cheap", "breaker": "open"}
    assert len(up.requests) == 2


async def test_rate_limited_provider_answers_429_with_retry_after(build) -> None:  # type: ignore[no-untyped-def]
    served, _deps, _proxy = build(Upstream(), providers=providers(
        b={"base_url": "http://b.test/v1", "api_key": KEY, "rpm": 1, "queue_timeout_s": 0}))
    async with served as client:
        first = await client.post("/v1/chat/completions", json={"model": "b/x", "messages": MESSAGES})
        second = await client.post("/v1/chat/completions", json={"model": "b/x", "messages": MESSAGES})
    assert first.status_code == 200
    assert second.status_code == 429 and int(second.headers["retry-after"]) >= 59
