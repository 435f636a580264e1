"""The format adapters on their own: the lossless Messages round trip (a property), the event
sequences each encoder writes, and streamed failures ending in each format's own error event."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from kimi_mcp.app import create_app
from kimi_mcp.context.pipeline import with_text
from kimi_mcp.ledger.models import Request
from kimi_mcp.proxy.formats import anthropic_request
from kimi_mcp.proxy.formats.anthropic_stream import MessagesEncoder
from kimi_mcp.proxy.formats.canonical import ORIGIN
from kimi_mcp.proxy.formats.responses_request import ResponsesCall
from kimi_mcp.proxy.formats.responses_stream import ResponsesEncoder

TEXT = st.text(max_size=20)
CACHE = st.one_of(st.none(), st.just({"type": "ephemeral"}))


def _with_cache(block: dict[str, Any], cache: Any) -> dict[str, Any]:
    return {**block, "cache_control": cache} if cache else block


text_block = st.builds(lambda t, c: _with_cache({"type": "text", "text": t}, c), TEXT, CACHE)
image_block = st.builds(lambda d, c: _with_cache({"type": "image", "source": {
    "type": "base64", "media_type": "image/png", "data": d}}, c), st.text("abc", max_size=8), CACHE)
unknown_block = st.builds(lambda t: {"type": "future_block", "payload": {"x": t}}, TEXT)
result_block = st.builds(lambda i, content, err, c: _with_cache(
    {"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": content,
     **({"is_error": True} if err else {})}, c),
    st.integers(0, 9), st.one_of(TEXT, st.lists(text_block, max_size=2)), st.booleans(), CACHE)
user_content = st.one_of(TEXT, st.lists(st.one_of(text_block, image_block, unknown_block, result_block),
                                        min_size=1, max_size=4))
tool_use = st.builds(lambda i, n, a: {"type": "tool_use", "id": f"toolu_{i}", "name": n, "input": {"a": a}},
                     st.integers(0, 9), st.sampled_from(["read", "run"]), TEXT)
thinking = st.builds(lambda t, s: {"type": "thinking", "thinking": t, "signature": s}, TEXT, TEXT)
assistant_content = st.one_of(TEXT, st.lists(st.one_of(text_block, tool_use, thinking, unknown_block),
                                             min_size=1, max_size=4))
message = st.one_of(st.builds(lambda c: {"role": "user", "content": c}, user_content),
                    st.builds(lambda c: {"role": "system", "content": c}, st.one_of(TEXT, st.lists(text_block, min_size=1))),
                    st.builds(lambda c: {"role": "assistant", "content": c}, assistant_content))
system = st.one_of(st.none(), TEXT.filter(bool), st.lists(text_block, min_size=1, max_size=2))
tool = st.builds(lambda n, c: _with_cache({"name": n, "description": "d", "input_schema": {
    "type": "object", "properties": {"p": {"type": "string"}}}}, c), st.sampled_from(["read", "run"]), CACHE)


@st.composite
def messages_bodies(draw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "claude-x", "max_tokens": draw(st.integers(1, 9000)),
                            "messages": draw(st.lists(message, min_size=1, max_size=6))}
    found = draw(system)
    if found is not None:
        body["system"] = found
    if draw(st.booleans()):
        body["tools"] = draw(st.lists(tool, min_size=1, max_size=2))
        body["tool_choice"] = draw(st.sampled_from([{"type": "auto"}, {"type": "any"},
                                                    {"type": "tool", "name": "read"}]))
    for key, value in draw(st.dictionaries(st.sampled_from(["stream", "temperature", "thinking",
                                                           "metadata", "stop_sequences", "top_k"]),
                                           st.sampled_from([True, 0.5, {"type": "enabled", "budget_tokens": 1024},
                                                            ["END"], 3]), max_size=3)).items():
        body[key] = value
    return body


@given(messages_bodies())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_messages_body_the_stages_leave_alone_goes_back_byte_for_byte(body: dict[str, Any]) -> None:
    canonical = anthropic_request.to_canonical(body)
    restored = anthropic_request.from_canonical(canonical, body["model"])
    assert json.dumps(restored) == json.dumps(body)


@given(messages_bodies())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_masked_tool_result_changes_only_its_own_content(body: dict[str, Any]) -> None:
    canonical = anthropic_request.to_canonical(body)
    messages = list(canonical["messages"])
    tools = [i for i, m in enumerate(messages) if m["role"] == "tool"]
    if not tools:
        return
    i = tools[0]
    messages[i] = with_text(messages[i], "[masked]")
    restored = anthropic_request.from_canonical({**canonical, "messages": messages}, body["model"])
    j, k = messages[i][ORIGIN]
    assert restored["messages"][:j] == body["messages"][:j]
    assert restored["messages"][j + 1:] == body["messages"][j + 1:]
    before, after = body["messages"][j]["content"][k], restored["messages"][j]["content"][k]
    assert {**before, "content": None} == {**after, "content": None}
    assert after["content"] in ("[masked]", [{"type": "text", "text": "[masked]"}]) or \
        after["content"][0]["text"] == "[masked]"


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        out["usage"] = usage
    return out


STREAM = [_chunk({"role": "assistant", "reasoning_content": "think"}), _chunk({"content": "Hi"}),
          _chunk({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "read", "arguments": ""}}]}),
          _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"p": 1}'}}]}),
          _chunk({}, "tool_calls", {"prompt_tokens": 10, "completion_tokens": 3})]


def _events(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in raw.decode().splitlines() if line.startswith("data: ")]


def test_messages_encoder_writes_anthropics_event_sequence() -> None:
    encoder = MessagesEncoder("kimi")
    events = _events(b"".join(encoder.feed(c) for c in STREAM) + encoder.close())
    kinds = [(e["type"], (e.get("content_block") or e.get("delta") or {}).get("type")) for e in events]
    assert kinds == [
        ("message_start", None), ("ping", None),
        ("content_block_start", "thinking"), ("content_block_delta", "thinking_delta"),
        ("content_block_stop", None), ("content_block_start", "text"),
        ("content_block_delta", "text_delta"), ("content_block_stop", None),
        ("content_block_start", "tool_use"), ("content_block_delta", "input_json_delta"),
        ("content_block_stop", None), ("message_delta", None), ("message_stop", None)]
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    assert events[-2]["usage"] == {"input_tokens": 10, "cache_creation_input_tokens": 0,
                                   "cache_read_input_tokens": 0, "output_tokens": 3}


def test_responses_encoder_writes_items_and_completes_with_usage() -> None:
    kept: list[Any] = []
    encoder = ResponsesEncoder(ResponsesCall({"input": "x"}, []), "kimi", keep=lambda r, m: kept.append(m))
    events = _events(b"".join(encoder.feed(c) for c in STREAM) + encoder.close())
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds.count("response.output_item.done") == 3 and kinds[-1] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [i["type"] for i in done] == ["reasoning", "message", "function_call"]
    assert done[2]["arguments"] == '{"p": 1}' and done[2]["call_id"] == "call_1"
    assert events[-1]["response"]["usage"]["input_tokens"] == 10
    assert kept == [{"role": "assistant", "content": "Hi", "reasoning_content": "think",
                     "tool_calls": [{"id": "call_1", "type": "function",
                                     "function": {"name": "read", "arguments": '{"p": 1}'}}]}]


# ---- a stream that breaks, through the app --------------------------------------------------------

PROVIDERS = {"up": {"base_url": "http://up.test/v1", "api_key": "sk-test", "max_retries": 0,
                    "models": {"m": {"context_window": 100_000}}}}


def _breaking() -> httpx.MockTransport:
    async def body() -> AsyncIterator[bytes]:
        chunk = {"choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]}
        yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
        raise httpx.ReadError("connection reset by the fake")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    return httpx.MockTransport(handler)


@pytest.mark.anyio
@pytest.mark.parametrize(("path", "body", "last", "inbound"), [
    ("/v1/messages", {"model": "up/m", "max_tokens": 10, "stream": True,
                      "messages": [{"role": "user", "content": "hi"}]}, ["error"], "anthropic_messages"),
    ("/v1/responses", {"model": "up/m", "input": "hi", "stream": True}, ["response.failed", "error"],
     "openai_responses"),
])
async def test_a_broken_stream_ends_with_the_formats_own_error_event(
    make_deps: Any, serve_app: Any, path: str, body: dict[str, Any], last: list[str], inbound: str
) -> None:
    deps = make_deps(providers=PROVIDERS, logwatch={"enabled": False})
    app = create_app(deps.settings, deps, upstream_transport=_breaking())
    async with serve_app(app) as client:
        r = await client.post(path, json=body)
        events = _events(r.content)
        assert [e["type"] for e in events[-len(last):]] == last
        error = events[-1].get("error") or events[-1]
        assert "fake" in error["message"] or "broke" in error["message"]
        proxy = app.state.proxy
        assert proxy.accountant.wait_for(1, 10)
    deps.ledger.flush()
    with deps.ledger.read() as db:
        [row] = db.exec(select(Request)).all()
    assert row.status == "error" and row.meta["inbound"] == inbound


def test_namespaced_tools_reach_chat_as_functions_and_come_back_with_their_namespace() -> None:
    from kimi_mcp.proxy.formats.responses_answer import from_canonical_answer
    from kimi_mcp.proxy.formats.responses_request import ResponseStore, to_canonical

    tool = {"type": "function", "name": "fs_read_file", "parameters": {"type": "object"}}
    body = {"model": "m", "tools": [{"type": "namespace", "name": "mcp__kimi_mcp", "tools": [tool]}],
            "input": [{"role": "user", "content": "read it"},
                      {"type": "function_call", "namespace": "mcp__kimi_mcp", "name": "fs_read_file",
                       "call_id": "c1", "arguments": "{}"},
                      {"type": "function_call_output", "call_id": "c1", "output": "old"}]}
    canonical, call = to_canonical(body, ResponseStore())
    assert [t["function"]["name"] for t in canonical["tools"]] == ["mcp__kimi_mcp__fs_read_file"]
    assert canonical["messages"][1]["tool_calls"][0]["function"]["name"] == "mcp__kimi_mcp__fs_read_file"
    completion = {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "tool_calls": [{"id": "c2", "type": "function", "function": {
            "name": "mcp__kimi_mcp__fs_read_file", "arguments": '{"path": "a"}'}}]}}]}
    response, _ = from_canonical_answer(completion, call, "m")
    [item] = response["output"]
    assert (item["type"], item["namespace"], item["name"], item["call_id"]) == (
        "function_call", "mcp__kimi_mcp", "fs_read_file", "c2")
