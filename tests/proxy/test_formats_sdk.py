"""Anthropic Messages and OpenAI Responses clients through the proxy, via the official SDKs.

Each test runs a two-turn tool loop (the model calls `get_weather`, the client answers, the model
replies) against a scripted provider in each outbound format — OpenAI chat (`oa`), Gemini (`ge`)
and Anthropic Messages (`an`) — and checks what the SDK returns and what the ledger holds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest
from formats_support import ANSWER, KEYS, Script, scripted_provider, scripted_settings
from proxy_support import Served, serve, served_app

from kimi_mcp.config import load_settings
from kimi_mcp.ledger.models import Request
from kimi_mcp.ledger.models import Session as SessionRow
from tests.services import BACKENDS, database

PROVIDERS = ["oa", "ge", "an"]
WEATHER = {"name": "get_weather", "description": "Weather of a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}
FUNCTION = {"type": "function", "name": "get_weather", "description": "Weather of a city",
            "parameters": WEATHER["input_schema"]}
USER = "What is the weather in Paris?"
CLAUDE_USER_ID = "user_abc123_account_0000_session_5f1c2d9e-aaaa-bbbb-cccc-123456789abc"


@dataclass(kw_only=True)
class Running(Served):
    script: Script

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key="client-key", max_retries=0)

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="client-key", max_retries=0)

    def mark(self) -> None:
        super().mark()
        self.script.seen.clear()


@pytest.fixture(scope="module", params=BACKENDS)
def running(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    script = Script()
    tmp = tmp_path_factory.mktemp("formats")
    with serve(scripted_provider(script)) as base, pytest.MonkeyPatch.context() as mp, \
            database(request.param, tmp / "data") as url:
        for name in list(os.environ):
            if name.startswith("KIMI_MCP_") or name.endswith("_API_KEY"):
                mp.delenv(name)
        settings = load_settings(overrides={
            "data_dir": str(tmp / "data"), "providers": scripted_settings(base),
            "logwatch": {"enabled": False}, "memory": {"embedder": "hash"},
            "mcp": {"workspace": str(tmp)}, "database": {"url": url}}, launch_dir=tmp)
        with served_app(settings) as (url, deps, proxy):
            yield Running(url, deps, proxy, script=script)


@pytest.fixture
def px(running: Running) -> Running:
    running.mark()
    return running


def _assert_rows(px: Running, provider: str, inbound: str, stream: bool) -> list[Request]:
    rows = px.rows(2)
    assert [r.provider for r in rows] == [provider, provider]
    assert all(r.status == "ok" and r.http_status == 200 and r.stream is stream for r in rows)
    assert all(r.meta["inbound"] == inbound for r in rows)
    assert all(r.usage_source == "provider" and r.prompt_tokens == 40 and r.cached_tokens == 8
               and r.completion_tokens == 7 for r in rows)
    assert rows[0].session_id is not None and rows[0].session_id == rows[1].session_id
    return rows


def _sent_key(px: Running, provider: str) -> str:
    _, headers, _ = px.script.seen[-1]
    return headers.get("authorization") or headers.get("x-goog-api-key") or headers.get("x-api-key") or ""


# ---- Anthropic Messages in ----------------------------------------------------------------------


def _messages_turns(first_content: list[Any]) -> list[dict[str, Any]]:
    tool_use = next(b for b in first_content if b["type"] == "tool_use")
    return [{"role": "user", "content": USER},
            {"role": "assistant", "content": first_content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use["id"],
                                          "content": "18°C and sunny"}]}]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_messages_create_runs_a_tool_loop_on_every_provider_format(px: Running, provider: str) -> None:
    client = px.anthropic()
    model = f"{provider}/m"
    first = client.messages.create(model=model, max_tokens=256, tools=[WEATHER],  # type: ignore[list-item]
                                   messages=[{"role": "user", "content": USER}],
                                   metadata={"user_id": CLAUDE_USER_ID})
    assert first.stop_reason == "tool_use" and first.role == "assistant"
    [call] = [b for b in first.content if b.type == "tool_use"]
    assert (call.name, call.input) == ("get_weather", {"city": "Paris"})
    history = _messages_turns([b.model_dump() for b in first.content])
    second = client.messages.create(model=model, max_tokens=256, tools=[WEATHER],  # type: ignore[list-item]
                                    messages=history, metadata={"user_id": CLAUDE_USER_ID})  # type: ignore[arg-type]
    assert second.stop_reason == "end_turn"
    assert [b.text for b in second.content if b.type == "text"] == [ANSWER]
    assert second.usage.input_tokens == 32 and second.usage.cache_read_input_tokens == 8
    assert second.usage.output_tokens == 7
    assert KEYS[provider] in _sent_key(px, provider)
    rows = _assert_rows(px, provider, "anthropic_messages", stream=False)
    with px.deps.ledger.read() as db:
        session = db.get(SessionRow, rows[0].session_id)
    assert session is not None and "5f1c2d9e-aaaa-bbbb-cccc-123456789abc" in session.name


@pytest.mark.parametrize("provider", PROVIDERS)
def test_messages_stream_runs_a_tool_loop_on_every_provider_format(px: Running, provider: str) -> None:
    client = px.anthropic()
    model = f"{provider}/m"
    with client.messages.stream(model=model, max_tokens=256, tools=[WEATHER],  # type: ignore[list-item]
                                messages=[{"role": "user", "content": USER}]) as stream:
        kinds = [event.type for event in stream]
        first = stream.get_final_message()
    assert kinds[0] == "message_start" and "content_block_start" in kinds
    assert first.stop_reason == "tool_use"
    [call] = [b for b in first.content if b.type == "tool_use"]
    assert call.input == {"city": "Paris"}
    history = _messages_turns([b.model_dump() for b in first.content])
    with client.messages.stream(model=model, max_tokens=256, tools=[WEATHER],  # type: ignore[list-item]
                                messages=history) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        second = stream.get_final_message()
    assert text == ANSWER and second.stop_reason == "end_turn"
    assert second.usage.output_tokens == 7
    _assert_rows(px, provider, "anthropic_messages", stream=True)


def test_messages_count_tokens_counts_the_prompt_without_calling_a_provider(px: Running) -> None:
    counted = px.anthropic().messages.count_tokens(
        model="oa/m", tools=[WEATHER], messages=[{"role": "user", "content": USER}])  # type: ignore[list-item]
    assert 10 < counted.input_tokens < 200
    assert px.script.seen == []


def test_messages_errors_come_in_anthropics_shape_with_the_status(px: Running) -> None:
    client = px.anthropic()
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="nope/x", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert missing.value.body["type"] == "error"  # type: ignore[index]
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(model="oa/m", max_tokens=10, messages=[])
    assert "messages" in bad.value.body["error"]["message"]  # type: ignore[index]


# ---- OpenAI Responses in ------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_responses_create_runs_a_tool_loop_on_every_provider_format(px: Running, provider: str) -> None:
    client = px.openai()
    model = f"{provider}/m"
    first = client.responses.create(model=model, input=USER, tools=[FUNCTION], store=False,  # type: ignore[list-item]
                                    extra_headers={"session_id": "codex-conv-1"})
    [call] = [i for i in first.output if i.type == "function_call"]
    assert (call.name, call.arguments.replace(" ", "")) == ("get_weather", '{"city":"Paris"}')
    history: list[Any] = [{"role": "user", "content": USER}, call.model_dump(exclude_none=True),
                          {"type": "function_call_output", "call_id": call.call_id,
                           "output": "18°C and sunny"}]
    second = client.responses.create(model=model, input=history, tools=[FUNCTION], store=False,  # type: ignore[list-item]
                                     extra_headers={"session_id": "codex-conv-1"})
    assert second.status == "completed" and second.output_text == ANSWER
    assert second.usage is not None and second.usage.input_tokens == 40
    assert second.usage.input_tokens_details.cached_tokens == 8
    rows = _assert_rows(px, provider, "openai_responses", stream=False)
    with px.deps.ledger.read() as db:
        session = db.get(SessionRow, rows[0].session_id)
    assert session is not None and "codex-conv-1" in session.name


@pytest.mark.parametrize("provider", PROVIDERS)
def test_responses_stream_runs_a_tool_loop_with_previous_response_id(px: Running, provider: str) -> None:
    client = px.openai()
    model = f"{provider}/m"
    events = list(client.responses.create(model=model, input=USER, tools=[FUNCTION], stream=True))  # type: ignore[list-item]
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.function_call_arguments.delta" in kinds and kinds[-1] == "response.completed"
    first = events[-1].response  # type: ignore[union-attr]
    [call] = [i for i in first.output if i.type == "function_call"]
    assert call.arguments.replace(" ", "") == '{"city":"Paris"}'
    events = list(client.responses.create(
        model=model, previous_response_id=first.id, tools=[FUNCTION], stream=True,  # type: ignore[list-item]
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18°C"}]))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")  # type: ignore[union-attr]
    assert text == ANSWER
    final = events[-1].response  # type: ignore[union-attr]
    assert final.status == "completed" and final.output_text == ANSWER
    assert final.usage is not None and final.usage.output_tokens == 7
    rows = px.rows(2)
    assert all(r.meta["inbound"] == "openai_responses" and r.status == "ok" for r in rows)
    assert rows[1].prompt_tokens == 40


def test_responses_unknown_previous_response_is_a_404_in_openais_shape(px: Running) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        px.openai().responses.create(model="oa/m", input="hi", previous_response_id="resp_nope")
    assert "previous_response_id" in str(missing.value)
