"""A provider's answer that is not the kind asked for, and calls no provider took: in every
inbound format, from every outbound wire, streamed and not (`httpx.MockTransport` upstream)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from proxy_support import Served, proxy_app, served_app
from proxy_support import proxy_rows as rows

from kimi_mcp.config import load_settings
from kimi_mcp.deps import Deps
from kimi_mcp.proxy.pipeline import Proxy

pytestmark = pytest.mark.anyio

KEY = "sk-mock-secret-abcdef"
PRICES = {"context_window": 100_000, "input_per_mtok": 3, "output_per_mtok": 15}
PROVIDERS = {
    "o": {"base_url": "http://o.test/v1", "api_key": KEY, "max_retries": 0, "models": {"m": PRICES}},
    "g": {"base_url": "http://g.test/v1beta", "api_key": KEY, "format": "gemini", "max_retries": 0,
          "models": {"m": PRICES}},
    "a": {"base_url": "http://a.test/v1", "api_key": KEY, "format": "anthropic", "max_retries": 0,
          "models": {"m": PRICES}},
    "nokey": {"base_url": "http://n.test/v1", "api_key_env": "KIMI_TEST_UNSET_KEY_0451",
              "max_retries": 0, "models": {"m": PRICES}},
    "slow": {"base_url": "http://s.test/v1", "api_key": KEY, "max_retries": 0, "rpm": 1,
             "models": {"m": PRICES}},
}
INBOUNDS = ["chat", "messages", "responses"]
WIRES = ["o", "g", "a"]
HTML = b"<html>oops</html>"


def request_of(inbound: str, model: str, stream: bool) -> tuple[str, dict[str, Any]]:
    messages = [{"role": "user", "content": "hello there, how are you today?"}]
    if inbound == "chat":
        return "/v1/chat/completions", {"model": model, "messages": messages, "stream": stream}
    if inbound == "messages":
        return "/v1/messages", {"model": model, "max_tokens": 64, "messages": messages,
                                "stream": stream}
    return "/v1/responses", {"model": model, "input": messages[0]["content"], "stream": stream}


def error_message(inbound: str, reply: httpx.Response) -> str:
    """The message of an error in the client's own shape."""
    body = reply.json()
    if inbound == "messages":
        assert body["type"] == "error"
    return str(body["error"]["message"])


@pytest.fixture
def build(make_deps: Callable[..., Deps], serve_app: Any) -> Callable[..., Any]:
    def run(answer: Callable[[httpx.Request], httpx.Response]) -> tuple[Any, Deps, Proxy]:
        deps = make_deps(providers=PROVIDERS, logwatch={"enabled": False})
        app = proxy_app(deps, transport=httpx.MockTransport(answer))
        return serve_app(app), deps, app.state.proxy

    return run


def sse_lines_only(text: str) -> bool:
    return all(not line.strip() or line.startswith(("data:", "event:", ":"))
               for line in text.splitlines())


GARBAGE = {
    # name: (stream asked, content type, body, what the error says came instead)
    "html-to-a-call": (None, "text/html", HTML, "text/html"),
    "events-to-a-call": (False, "text/event-stream", b'data: {"choices": []}\n\ndata: [DONE]\n\n',
                         "text/event-stream"),
    "json-to-a-stream": (True, "application/json", b'{"choices": []}', "application/json"),
}


# each garbage answer with the calls it is the wrong kind for (None: both kinds)
GARBAGE_CASES = [(garbage, stream) for garbage, (asked, *_) in GARBAGE.items()
                 for stream in (False, True) if asked is None or asked == stream]


@pytest.mark.parametrize("inbound", INBOUNDS)
@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize(("garbage", "stream"), GARBAGE_CASES)
async def test_an_answer_of_another_kind_is_a_502_in_the_clients_shape_and_an_unbilled_error_row(
        build: Any, inbound: str, wire: str, stream: bool, garbage: str) -> None:
    _, kind, content, named = GARBAGE[garbage]
    served, deps, proxy = build(lambda r: httpx.Response(200, content=content,
                                                         headers={"content-type": kind}))
    path, body = request_of(inbound, f"{wire}/m", stream)
    async with served as client:
        reply = await client.post(path, json=body)
        [row] = await rows(deps, proxy, 1)
    assert reply.status_code == 502
    assert reply.headers["content-type"].startswith("application/json")
    message = error_message(inbound, reply)
    assert f"answered 200 with {named}, not" in message
    assert "oops" not in reply.text and "[DONE]" not in reply.text
    assert (row.status, row.http_status) == ("error", 502)
    assert row.cost_usd == 0 and row.est_prompt_tokens is None and row.prompt_tokens is None


@pytest.mark.parametrize("inbound", INBOUNDS)
@pytest.mark.parametrize("wire", WIRES)
async def test_a_stream_of_html_labelled_as_events_ends_in_a_well_formed_error_event(
        build: Any, inbound: str, wire: str) -> None:
    served, deps, proxy = build(lambda r: httpx.Response(
        200, content=HTML, headers={"content-type": "text/event-stream"}))
    path, body = request_of(inbound, f"{wire}/m", True)
    async with served as client:
        reply = await client.post(path, json=body)
        [row] = await rows(deps, proxy, 1)
    assert reply.status_code == 200  # the stream had begun: its last event is the error
    assert "oops" not in reply.text and "<html>" not in reply.text
    assert sse_lines_only(reply.text), reply.text
    assert "error" in reply.text
    assert row.status == "error"


async def test_json_that_is_not_an_object_is_not_passed_through(build: Any) -> None:
    served, deps, proxy = build(lambda r: httpx.Response(200, json=["no", "answer"]))
    path, body = request_of("chat", "o/m", False)
    async with served as client:
        reply = await client.post(path, json=body)
        [row] = await rows(deps, proxy, 1)
    assert reply.status_code == 502 and "not a JSON object" in error_message("chat", reply)
    assert (row.status, row.http_status, row.cost_usd) == ("error", 502, 0)


@pytest.mark.parametrize("inbound", INBOUNDS)
async def test_a_call_refused_for_a_missing_key_costs_nothing(build: Any, inbound: str) -> None:
    served, deps, proxy = build(lambda r: httpx.Response(200, json={}))
    path, body = request_of(inbound, "nokey/m", False)
    async with served as client:
        reply = await client.post(path, json=body)
        [row] = await rows(deps, proxy, 1)
    assert reply.status_code == 401
    assert (row.status, row.http_status, row.provider) == ("error", 401, "nokey")
    assert row.cost_usd == 0 and row.est_prompt_tokens is None and row.est_completion_tokens is None
    assert row.meta["unbilled_est_prompt_tokens"] > 0  # the size of what was refused, kept aside


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("stream", [False, True])
async def test_a_providers_error_status_without_usage_costs_nothing(
        build: Any, wire: str, stream: bool) -> None:
    served, deps, proxy = build(lambda r: httpx.Response(
        400, json={"error": {"message": "bad field", "type": "invalid_request_error"}}))
    path, body = request_of("chat", f"{wire}/m", stream)
    async with served as client:
        reply = await client.post(path, json=body)
        [row] = await rows(deps, proxy, 1)
    assert reply.status_code == 400
    assert row.status == "error" and row.cost_usd == 0 and row.est_prompt_tokens is None


async def test_a_call_our_limiter_refuses_costs_nothing_and_a_taken_one_is_billed(
        build: Any) -> None:
    answer = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                           "finish_reason": "stop"}]}
    served, deps, proxy = build(lambda r: httpx.Response(200, json=answer))
    path, body = request_of("chat", "slow/m", False)
    async with served as client:
        first = await client.post(path, json=body)
        second = await client.post(path, json=body)
        taken, refused = await rows(deps, proxy, 2)
    assert (first.status_code, second.status_code) == (200, 429)
    assert taken.cost_usd is not None and taken.cost_usd > 0 and taken.est_prompt_tokens
    assert refused.cost_usd == 0 and refused.est_prompt_tokens is None


async def test_an_unknown_model_costs_nothing(build: Any) -> None:
    served, deps, proxy = build(lambda r: httpx.Response(200, json={}))
    path, body = request_of("chat", "nosuchprovider/m", False)
    async with served as client:
        reply = await client.post(path, json=body)
        [row] = await rows(deps, proxy, 1)
    assert reply.status_code in (400, 404)
    assert row.cost_usd == 0 and row.est_prompt_tokens is None



ERROR_WITH_USAGE = {
    "o": {"error": {"message": "blocked"}, "usage": {"prompt_tokens": 12, "completion_tokens": 0}},
    "g": {"error": {"message": "blocked"}, "usageMetadata": {"promptTokenCount": 12}},
    "a": {"type": "error", "error": {"type": "invalid_request_error", "message": "blocked"},
          "usage": {"input_tokens": 12, "output_tokens": 0}},
}


@pytest.mark.parametrize("wire", WIRES)
async def test_a_providers_error_answer_that_reports_usage_is_billed_by_it(
        build: Any, wire: str) -> None:
    served, deps, proxy = build(lambda r: httpx.Response(400, json=ERROR_WITH_USAGE[wire]))
    path, body = request_of("chat", f"{wire}/m", False)
    async with served as client:
        reply = await client.post(path, json=body)
        [row] = await rows(deps, proxy, 1)
    assert reply.status_code == 400 and "blocked" in reply.text
    assert (row.status, row.prompt_tokens, row.usage_source) == ("error", 12, "provider")
    assert row.cost_usd == pytest.approx(12 * 3 / 1e6)


def test_refused_calls_add_no_tokens_or_cost_to_the_stats_and_metrics(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIMI_TEST_UNSET_KEY_0451", raising=False)
    settings = load_settings(overrides={
        "data_dir": str(tmp_path / "data"), "logwatch": {"enabled": False},
        "memory": {"embedder": "hash"}, "mcp": {"workspace": str(tmp_path)},
        "providers": {"nokey": PROVIDERS["nokey"]}}, launch_dir=tmp_path)
    with served_app(settings) as (url, deps, running):
        served = Served(url, deps, running)
        served.mark()
        for path, body in (request_of(inbound, "nokey/m", False) for inbound in INBOUNDS):
            assert httpx.post(f"{url}{path}", json=body).status_code == 401
        assert len(served.rows(3)) == 3
        totals = httpx.get(f"{url}/api/stats").json()["totals"]
        metrics = httpx.get(f"{url}/metrics").text
    assert totals["requests"] == 3 and totals["errors"] == 3
    assert (totals["prompt_tokens"], totals["completion_tokens"], totals["cost_usd"]) == (0, 0, 0)
    billed = [line for line in metrics.splitlines()
              if line.startswith(("kimi_tokens_total", "kimi_cost_usd_total"))]
    assert billed and all(float(line.rsplit(" ", 1)[1]) == 0 for line in billed), billed
