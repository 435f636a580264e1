"""Each provider's wire, replayed: the proxy on loopback in front of a fake that plays the
provider's recorded-style transcript (tests/proxy/replay_support.py), driven by the official
`openai` SDK. Asserted: what the client receives, what the provider received (the fake refuses
what the real provider refuses), and what the ledger row holds — tokens, cached, reasoning,
cost, status, TTFT.

The ledger backend is SQLite here: these tests are about the providers' wires, and both
backends are covered by test_proxy_loopback.py.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import openai
import pytest
from proxy_support import Served, serve, served_app
from replay_support import TRANSCRIPTS, FakeReplay, Transcript, replay_app

from kimi_mcp.config import load_settings
from kimi_mcp.ledger.models import Request

PRICES = {"input_per_mtok": 1.0, "output_per_mtok": 2.0, "cached_input_per_mtok": 0.5,
          "context_window": 200_000}
# a conversation another provider started: Kimi's tool-call id, reasoning echoed in history,
# `content: null` beside the tool call, a `name` on a user turn
HISTORY: list[Any] = [
    {"role": "system", "content": "Be terse."},
    {"role": "user", "content": "Read a.txt", "name": "dev"},
    {"role": "assistant", "content": None, "reasoning_content": "I should read the file.",
     "tool_calls": [{"id": "functions.read_file:0", "type": "function",
                     "function": {"name": "read_file", "arguments": "{\"path\": \"a.txt\"}"}}]},
    {"role": "tool", "tool_call_id": "functions.read_file:0", "content": "hello"},
    {"role": "user", "content": "Summarise it."},
]


@dataclass(kw_only=True)
class Replay(Served):
    fake: FakeReplay

    def sdk(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="client-key", max_retries=0)

    def mark(self) -> None:
        super().mark()
        self.fake.seen.clear()

    def row(self) -> Request:
        [found] = self.rows(1)
        return found

    def call(self, transcript: Transcript, stream: bool, model: str | None = None) -> Any:
        """One call with the hard history; the answer's text and finish reason."""
        kwargs: dict[str, Any] = {
            "model": f"{transcript.provider}/{model or transcript.model}", "messages": HISTORY,
            "max_completion_tokens": 64, "metadata": {"app": "replay"}, "stream": stream}
        if transcript.provider in ("cerebras", "nvidia"):
            kwargs["frequency_penalty"] = 0.0
        answer = self.sdk().chat.completions.create(**kwargs)
        if not stream:
            return answer.choices[0].message.content, answer.choices[0].finish_reason
        text, finish = [], None
        for chunk in answer:
            for choice in chunk.choices:
                text.append(choice.delta.content or "")
                finish = choice.finish_reason or finish
        return "".join(text), finish


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replay]:
    state = FakeReplay()
    tmp = tmp_path_factory.mktemp("replay")
    with serve(replay_app(state)) as base, pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("KIMI_MCP_") or name.endswith("_API_KEY"):
                mp.delenv(name)
        providers = {
            t.provider: {"base_url": f"{base}/{t.provider}/v1", "api_key": f"key-{t.provider}",
                         "timeout_s": 5, "max_retries": 0,
                         "models": {m: PRICES for m in (t.model, "error", "error-event", "cut",
                                                        "slow")}}
            for t in TRANSCRIPTS.values()}
        settings = load_settings(overrides={
            "data_dir": str(tmp / "data"), "providers": providers,
            "logwatch": {"enabled": False}, "memory": {"embedder": "hash"},
            "mcp": {"workspace": str(tmp)}}, launch_dir=tmp)
        with served_app(settings) as (url, deps, proxy):
            yield Replay(url, deps, proxy, fake=state)


def _cost(prompt: int, completion: int, cached: int | None) -> float:
    cached = cached or 0
    return ((prompt - cached) * 1.0 + cached * 0.5 + completion * 2.0) / 1e6


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("provider", sorted(TRANSCRIPTS))
def test_each_providers_answer_reaches_the_client_and_is_billed_from_its_own_figures(
        replay: Replay, provider: str, stream: bool) -> None:
    transcript = TRANSCRIPTS[provider]
    replay.mark()
    text, finish = replay.call(transcript, stream)
    row = replay.row()
    expect = transcript.expect
    assert (text, finish) == ("Hello", expect.finish)
    assert (row.provider, row.status, row.usage_source) == (provider, "ok", "provider")
    assert (row.prompt_tokens, row.completion_tokens) == (expect.prompt, expect.completion)
    assert (row.cached_tokens, row.reasoning_tokens) == (expect.cached, expect.reasoning)
    assert row.cost_usd == pytest.approx(_cost(expect.prompt, expect.completion, expect.cached))
    assert (row.ttft_ms is not None) == stream
    [(_, sent)] = replay.fake.seen
    assert sent["model"] == transcript.model


def test_a_streamed_kimi_call_is_billed_from_the_usage_in_its_choice(replay: Replay) -> None:
    replay.mark()
    replay.call(TRANSCRIPTS["kimi"], stream=True)
    row = replay.row()
    assert (row.prompt_tokens, row.completion_tokens, row.cached_tokens) == (1336, 31, 1280)
    assert row.cost_usd == pytest.approx((56 * 1.0 + 1280 * 0.5 + 31 * 2.0) / 1e6)


def test_mistral_receives_max_tokens_no_reasoning_and_its_own_tool_call_ids(replay: Replay) -> None:
    replay.mark()
    replay.call(TRANSCRIPTS["mistral"], stream=False)
    replay.call(TRANSCRIPTS["mistral"], stream=False)
    [(_, first), (_, second)] = replay.fake.seen
    assert first["max_tokens"] == 64 and "max_completion_tokens" not in first
    assistant, tool = first["messages"][2], first["messages"][3]
    assert "reasoning_content" not in assistant and assistant["content"] == ""
    assert assistant["tool_calls"][0]["id"] == tool["tool_call_id"]
    assert len(tool["tool_call_id"]) == 9 and tool["tool_call_id"].isalnum()
    assert "name" not in first["messages"][1]
    assert first["messages"] == second["messages"]  # the same ids every time: caches still hit


def test_groq_receives_no_reasoning_history_and_cerebras_no_penalties(replay: Replay) -> None:
    replay.mark()
    replay.call(TRANSCRIPTS["groq"], stream=True)
    replay.call(TRANSCRIPTS["cerebras"], stream=True)
    [(_, groq), (_, cerebras)] = replay.fake.seen
    assert "reasoning_content" not in groq["messages"][2]
    assert "frequency_penalty" not in cerebras and "metadata" not in cerebras


def test_an_in_band_error_chunk_reaches_the_client_and_is_an_error_row(replay: Replay) -> None:
    replay.mark()
    since = time.time() - 1
    with pytest.raises(openai.APIError, match="Provider disconnected"):
        replay.call(TRANSCRIPTS["openrouter"], stream=True, model="error")
    row = replay.row()
    assert row.status == "error" and "Provider disconnected" in (row.error or "")
    stats = httpx.get(f"{replay.url}/api/stats", params={"since": since}).json()
    assert stats["totals"]["errors"] >= 1


def test_an_error_event_mid_stream_is_an_error_row(replay: Replay) -> None:
    replay.mark()
    with pytest.raises(openai.APIError, match="Service Unavailable"):
        replay.call(TRANSCRIPTS["groq"], stream=True, model="error-event")
    row = replay.row()
    assert row.status == "error" and "Service Unavailable" in (row.error or "")


def test_a_whole_answer_with_an_error_finish_is_an_error_row(replay: Replay) -> None:
    replay.mark()
    replay.call(TRANSCRIPTS["openrouter"], stream=False, model="error")
    row = replay.row()
    assert row.status == "error" and "Provider disconnected" in (row.error or "")


def test_a_stream_that_ends_without_a_finish_reason_ends_with_an_error_event(replay: Replay) -> None:
    replay.mark()
    raw = httpx.post(f"{replay.url}/v1/chat/completions", json={
        "model": "kimi/cut", "messages": [{"role": "user", "content": "hi"}], "stream": True})
    events = [e for e in raw.text.split("\n\n") if e.startswith("data:")]
    assert events[-1] == "data: [DONE]"
    assert "error" in json.loads(events[-2][5:])
    row = replay.row()
    assert row.status == "error" and "before it finished" in (row.error or "")


def test_ttft_is_the_first_content_not_a_keep_alive_or_the_role_chunk(replay: Replay) -> None:
    replay.mark()
    replay.call(TRANSCRIPTS["openrouter"], stream=True, model="slow")
    row = replay.row()
    # the fake sends a keep-alive comment and a role-only chunk at once, then pauses 0.3 s
    assert row.ttft_ms is not None and row.ttft_ms >= replay.fake.pause_s * 1000


@pytest.mark.parametrize("provider", ["kimi", "groq", "mistral", "siliconflow"])
def test_a_messages_client_is_billed_from_the_providers_own_figures(replay: Replay,
                                                                     provider: str) -> None:
    transcript = TRANSCRIPTS[provider]
    replay.mark()
    client = anthropic.Anthropic(base_url=replay.url, api_key="client-key", max_retries=0)
    with client.messages.stream(model=f"{provider}/{transcript.model}", max_tokens=64,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        final = stream.get_final_message()
    row = replay.row()
    expect = transcript.expect
    assert "".join(b.text for b in final.content if b.type == "text") == "Hello"
    assert final.usage.output_tokens == expect.completion
    assert (row.status, row.usage_source) == ("ok", "provider")
    assert (row.prompt_tokens, row.completion_tokens) == (expect.prompt, expect.completion)
    assert row.cached_tokens == expect.cached and row.ttft_ms is not None
