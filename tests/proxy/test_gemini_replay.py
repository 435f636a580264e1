"""Gemini wire transcripts replayed by a loopback fake, driven by the official `openai` SDK
through the proxy (in-process ASGI): what the client receives and what the ledger row holds."""

from __future__ import annotations

import base64
import contextlib
import struct
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any, Literal

import anthropic
import anyio
import httpx
import httpx2
import openai
import pytest
from gemini_transcripts import (
    KEY,
    SIGNATURE,
    TEXT_SIGNATURE,
    Replay,
    bad_schema_key,
    replay_provider,
)
from proxy_support import proxy_app, serve
from pydantic import BaseModel, Field
from sqlmodel import select

from kimi_mcp.deps import Deps
from kimi_mcp.ledger.models import Request
from kimi_mcp.proxy.pipeline import Proxy

pytestmark = pytest.mark.anyio

G3 = "ge/gemini-3-pro-preview"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
USER = {"role": "user", "content": "What is the weather in Paris?"}


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, Replay]]:
    replay = Replay()
    with serve(replay_provider(replay)) as base:
        yield base, replay


class Session:
    """One proxy in front of the replaying fake, and the official SDK in front of the proxy."""

    def __init__(self, client: httpx.AsyncClient, app: Any, deps: Deps, proxy: Proxy,
                 replay: Replay) -> None:
        self.sdk = openai.AsyncOpenAI(base_url="http://proxy.test/v1", api_key="client-key",
                                      max_retries=0, http_client=client)
        self.app, self.deps, self.proxy, self.replay = app, deps, proxy, replay

    async def rows(self, count: int) -> list[Request]:
        assert await anyio.to_thread.run_sync(self.proxy.accountant.wait_for, count, 10)
        await self.deps.ledger.aflush()
        with self.deps.ledger.read() as db:
            return list(db.exec(select(Request).order_by(Request.id)).all())  # type: ignore[arg-type]


@pytest.fixture
def gemini(make_deps: Callable[..., Deps], serve_app: Any,
           upstream: tuple[str, Replay]) -> Callable[..., Any]:
    """`async with gemini(**settings) as g:` — a fresh proxy (and ledger) over the fake."""
    base, replay = upstream
    replay.seen.clear()
    prices = {"context_window": 1_000_000, "input_per_mtok": 2.0, "output_per_mtok": 12.0,
              "cached_input_per_mtok": 0.2}

    @contextlib.asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Session]:
        deps = make_deps(providers={"ge": {"base_url": f"{base}/v1beta", "api_key": KEY,
                                           "format": "gemini", "timeout_s": 5, "max_retries": 0,
                                           "models": {"gemini-3-pro-preview": prices}}}, **overrides)
        app = proxy_app(deps)
        async with serve_app(app) as client:
            yield Session(client, app, deps, app.state.proxy, replay)

    return start


def _extra(holder: Any) -> Any:
    return (holder.model_extra or {}).get("extra_content")


# ---- thought signatures: the two-turn tool loop -------------------------------------------------


async def test_a_gemini_3_tool_loop_carries_the_thought_signature_through_the_openai_sdk(gemini) -> None:  # type: ignore[no-untyped-def]
    async with gemini() as g:
        first = await g.sdk.chat.completions.create(model=G3, messages=[USER], tools=[WEATHER])
        message = first.choices[0].message
        [call] = message.tool_calls or []
        assert first.choices[0].finish_reason == "tool_calls"
        assert _extra(call) == {"google": {"thought_signature": SIGNATURE}}
        second = await g.sdk.chat.completions.create(model=G3, tools=[WEATHER], messages=[
            USER, message,  # the SDK's own message object, sent back as it came
            {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 18}'}])
        rows = await g.rows(2)
    assert second.choices[0].message.content == "Sunny in Paris"
    assert _extra(second.choices[0].message) == {"google": {"thought_signature": TEXT_SIGNATURE}}
    model_turn = g.replay.bodies("gemini-3-pro-preview")[-1]["contents"][1]
    assert model_turn["parts"][0]["thoughtSignature"] == SIGNATURE
    assert [(r.status, r.http_status) for r in rows] == [("ok", 200), ("ok", 200)]
    one = rows[0]  # promptTokenCount 120 + toolUsePromptTokenCount 5; 12 + 30 thinking out
    assert (one.prompt_tokens, one.completion_tokens, one.cached_tokens, one.reasoning_tokens) == (125, 42, 64, 30)
    assert one.cost_usd == pytest.approx(((125 - 64) * 2.0 + 42 * 12.0 + 64 * 0.2) / 1e6)
    assert (rows[1].prompt_tokens, rows[1].cached_tokens, rows[1].reasoning_tokens) == (160, 128, 10)


async def test_a_streamed_gemini_3_tool_loop_carries_the_signature_on_the_tool_call_delta(gemini) -> None:  # type: ignore[no-untyped-def]
    async with gemini() as g:
        stream = await g.sdk.chat.completions.create(model=G3, messages=[USER], tools=[WEATHER],
                                                     stream=True, stream_options={"include_usage": True})
        chunks = [c async for c in stream]
        [delta_call] = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
        assert _extra(delta_call) == {"google": {"thought_signature": SIGNATURE}}
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 42
        call = {"id": delta_call.id, "type": "function", "extra_content": _extra(delta_call),
                "function": {"name": "get_weather", "arguments": delta_call.function.arguments}}
        stream = await g.sdk.chat.completions.create(model=G3, tools=[WEATHER], stream=True, messages=[
            USER, {"role": "assistant", "content": None, "tool_calls": [call]},  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call["id"], "content": "18C"}])
        second = [c async for c in stream]
        rows = await g.rows(2)
    assert "".join(c.choices[0].delta.content or "" for c in second if c.choices) == "Sunny in Paris"
    assert [_extra(c.choices[0].delta) for c in second if c.choices and _extra(c.choices[0].delta)] == [
        {"google": {"thought_signature": TEXT_SIGNATURE}}]
    assert [c.choices[0].finish_reason for c in second if c.choices][-1] == "stop"
    assert [r.status for r in rows] == ["ok", "ok"]
    assert (rows[0].prompt_tokens, rows[0].completion_tokens, rows[0].reasoning_tokens) == (125, 42, 30)
    assert (rows[1].prompt_tokens, rows[1].completion_tokens, rows[1].cached_tokens) == (160, 16, 128)


async def test_clients_that_drop_the_signature_still_send_it_back_through_the_proxys_memory(gemini) -> None:  # type: ignore[no-untyped-def]
    weather = {"name": "get_weather", "description": "Weather of a city",
               "input_schema": WEATHER["function"]["parameters"]}  # type: ignore[index]
    async with gemini() as g:
        transport = httpx2.ASGITransport(app=g.app)  # the anthropic SDK's own httpx
        claude = anthropic.AsyncAnthropic(base_url="http://proxy.test", api_key="client-key", max_retries=0,
                                          http_client=httpx2.AsyncClient(transport=transport))
        first = await claude.messages.create(model=G3, max_tokens=256, tools=[weather],  # type: ignore[list-item]
                                             messages=[{"role": "user", "content": USER["content"]}])
        [use] = [b for b in first.content if b.type == "tool_use"]
        second = await claude.messages.create(model=G3, max_tokens=256, tools=[weather], messages=[  # type: ignore[list-item]
            {"role": "user", "content": USER["content"]},
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},  # type: ignore[misc]
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18C"}]}])
        plain = await g.sdk.chat.completions.create(model=G3, messages=[USER], tools=[WEATHER])
        [call] = plain.choices[0].message.tool_calls or []
        stripped = {"id": call.id, "type": "function",  # what a framework keeps of the call
                    "function": {"name": call.function.name, "arguments": call.function.arguments}}
        third = await g.sdk.chat.completions.create(model=G3, tools=[WEATHER], messages=[
            USER, {"role": "assistant", "content": None, "tool_calls": [stripped]},  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "18C"}])
        rows = await g.rows(4)
    assert first.stop_reason == "tool_use" and second.content[0].text == "Sunny in Paris"  # type: ignore[union-attr]
    assert third.choices[0].message.content == "Sunny in Paris"
    turns = [body["contents"][1]["parts"][0] for body in g.replay.bodies("gemini-3-pro-preview")
             if len(body["contents"]) > 1]
    assert [t["thoughtSignature"] for t in turns] == [SIGNATURE, SIGNATURE]
    assert [r.status for r in rows] == ["ok"] * 4


async def test_a_gemini_3_history_without_signatures_gets_googles_placeholder_not_a_400(gemini) -> None:  # type: ignore[no-untyped-def]
    foreign = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "functions.get_weather:0", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
    async with gemini() as g:
        with pytest.raises(openai.BadRequestError):  # the transcript wants Google's own signature
            await g.sdk.chat.completions.create(model=G3, tools=[WEATHER], messages=[
                USER, foreign, {"role": "tool", "tool_call_id": "functions.get_weather:0", "content": "18C"}])
    [sent] = g.replay.bodies("gemini-3-pro-preview")
    assert sent["contents"][1]["parts"][0]["thoughtSignature"] == "skip_thought_signature_validator"


# ---- blocks, broken finishes, broken streams ------------------------------------------------------


async def test_a_blocked_prompt_is_a_400_naming_the_block_reason_and_an_error_row(gemini) -> None:  # type: ignore[no-untyped-def]
    async with gemini() as g:
        with pytest.raises(openai.BadRequestError) as caught:
            await g.sdk.chat.completions.create(model="ge/blocked", messages=[USER])
        stream = await g.sdk.chat.completions.create(model="ge/blocked", messages=[USER], stream=True)
        with pytest.raises(openai.APIError) as streamed:
            _ = [c async for c in stream]
        rows = await g.rows(2)
    assert caught.value.code == "content_filter" and "PROHIBITED_CONTENT" in caught.value.message
    assert "PROHIBITED_CONTENT" in streamed.value.message
    assert [(r.status, r.http_status) for r in rows] == [("error", 400), ("error", 200)]
    assert all("PROHIBITED_CONTENT" in (r.error or "") for r in rows)
    assert rows[0].prompt_tokens == 7


async def test_a_malformed_function_call_is_an_error_the_client_sees_and_a_billed_error_row(gemini) -> None:  # type: ignore[no-untyped-def]
    async with gemini() as g:
        with pytest.raises(openai.InternalServerError) as caught:
            await g.sdk.chat.completions.create(model="ge/malformed", messages=[USER], tools=[WEATHER])
        stream = await g.sdk.chat.completions.create(model="ge/malformed", messages=[USER],
                                                     tools=[WEATHER], stream=True)
        with pytest.raises(openai.APIError) as streamed:
            _ = [c async for c in stream]
        rows = await g.rows(2)
    assert caught.value.code == "malformed_function_call"
    assert "MALFORMED_FUNCTION_CALL" in caught.value.message
    assert "MALFORMED_FUNCTION_CALL" in streamed.value.message
    assert [r.status for r in rows] == ["error", "error"]
    assert all((r.prompt_tokens, r.completion_tokens, r.reasoning_tokens) == (50, 40, 40) for r in rows)


async def test_a_safety_finish_is_a_content_filter_finish_with_the_text_so_far(gemini) -> None:  # type: ignore[no-untyped-def]
    async with gemini() as g:
        whole = await g.sdk.chat.completions.create(model="ge/safety", messages=[USER])
        stream = await g.sdk.chat.completions.create(model="ge/safety", messages=[USER], stream=True)
        chunks = [c async for c in stream]
        rows = await g.rows(2)
    assert whole.choices[0].finish_reason == "content_filter"
    assert whole.choices[0].message.content == "I can"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "content_filter"
    assert [r.status for r in rows] == ["ok", "ok"]


@pytest.mark.parametrize(("model", "said"), [
    ("cut", "ended the stream before it finished"),
    ("error-event", "The model is overloaded"),
])
async def test_a_gemini_stream_that_breaks_ends_with_an_error_event_and_an_error_row(
        gemini, model: str, said: str) -> None:  # type: ignore[no-untyped-def]
    async with gemini() as g:
        stream = await g.sdk.chat.completions.create(model=f"ge/{model}", messages=[USER], stream=True)
        seen: list[str] = []
        with pytest.raises(openai.APIError) as caught:
            async for chunk in stream:
                seen += [chunk.choices[0].delta.content or ""] if chunk.choices else []
        [row] = await g.rows(1)
    assert "".join(seen) == "Hel" and said in caught.value.message
    assert row.status == "error" and said in (row.error or "")


async def test_blocked_prompts_in_streams_do_not_open_the_providers_breaker_but_cut_streams_do(gemini) -> None:  # type: ignore[no-untyped-def]
    async with gemini(routing={"breaker_failures": 1}) as g:
        for model in ["blocked"] * 3 + ["cut"]:
            stream = await g.sdk.chat.completions.create(model=f"ge/{model}", messages=[USER], stream=True)
            with pytest.raises(openai.APIError):
                _ = [c async for c in stream]
        await g.rows(4)
        breakers = g.proxy.router.snapshot()["ge"]["open_models"]
    assert breakers == ["ge/cut"]


# ---- tool schemas ---------------------------------------------------------------------------------


class Address(BaseModel):
    street: str
    kind: Literal["home", "work"] = "home"


class Person(BaseModel):
    name: str = Field(title="Name", examples=["Ada"])
    age: Annotated[int, Field(gt=0, lt=150)]
    email: str | None = Field(default=None, json_schema_extra={"format": "email"})
    addresses: list[Address] = []
    manager: Person | None = None
    version: Literal[2] = 2


async def test_a_pydantic_schema_with_defs_reaches_gemini_in_its_schema_subset(gemini) -> None:  # type: ignore[no-untyped-def]
    schema = Person.model_json_schema()
    assert "$defs" in schema
    tool = {"type": "function", "function": {"name": "save_person", "parameters": schema}}
    async with gemini() as g:
        answer = await g.sdk.chat.completions.create(model="ge/gemini-2.5-flash", messages=[USER],
                                                     tools=[tool])  # type: ignore[list-item]
        [row] = await g.rows(1)
    assert answer.choices[0].message.content == "Hello" and row.status == "ok"
    params = g.replay.bodies("gemini-2.5-flash")[-1]["tools"][0]["functionDeclarations"][0]["parameters"]
    assert bad_schema_key(params) is None
    props = params["properties"]
    assert props["addresses"]["items"]["properties"]["kind"]["enum"] == ["home", "work"]
    assert props["age"]["minimum"] == 1 and props["age"]["maximum"] == 149
    assert props["email"]["type"] == "string" and props["email"]["nullable"] is True
    manager = props["manager"]  # Person inside Person: Gemini's schemas cannot recurse
    assert manager["type"] == "object" and manager["nullable"] is True
    assert "recursive" in manager["description"]
    assert props["version"]["type"] == "integer" and params["required"] == ["name", "age"]


# ---- images ---------------------------------------------------------------------------------------


def _png(width: int, height: int) -> str:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(raw).decode()


async def test_images_go_as_inline_or_file_data_and_count_by_googles_tiles(gemini) -> None:  # type: ignore[no-untyped-def]
    content = [{"type": "text", "text": "Compare"},
               {"type": "image_url", "image_url": {"url": _png(1920, 1080)}},
               {"type": "image_url", "image_url": {"url": _png(300, 200)}},
               {"type": "image_url", "image_url": {"url": "https://example.com/cat.JPG?size=l"}}]
    async with gemini() as g:
        await g.sdk.chat.completions.create(model="ge/gemini-2.5-flash", messages=[
            {"role": "user", "content": content}])  # type: ignore[misc,list-item]
        [row] = await g.rows(1)
    parts = g.replay.bodies("gemini-2.5-flash")[-1]["contents"][0]["parts"]
    assert parts[1]["inlineData"]["mimeType"] == "image/png"
    assert parts[3] == {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.JPG?size=l"}}
    assert parts[2]["inlineData"]["data"] == content[2]["image_url"]["url"].split(",", 1)[1]  # type: ignore[index]
    # the estimate counts Google's tiles, not base64 bytes: 1920x1080 is 3x2 tiles of 258,
    # 300x200 one image of 258, the URL 258 (its size is unknown)
    images = 6 * 258 + 258 + 258
    assert row.status == "ok" and row.est_prompt_tokens is not None
    assert images < row.est_prompt_tokens < images + 50


async def test_an_image_url_gemini_cannot_type_is_refused_with_a_400_that_says_why(gemini) -> None:  # type: ignore[no-untyped-def]
    content = [{"type": "image_url", "image_url": {"url": "https://example.com/render?id=7"}}]
    async with gemini() as g:
        with pytest.raises(openai.BadRequestError) as caught:
            await g.sdk.chat.completions.create(model="ge/gemini-2.5-flash", messages=[
                {"role": "user", "content": content}])  # type: ignore[misc,list-item]
        [row] = await g.rows(1)
    assert "data: URL" in caught.value.message and "messages[0].content[0]" in caught.value.message
    assert g.replay.bodies("gemini-2.5-flash") == []
    assert (row.status, row.http_status) == ("error", 400)


def test_the_transcripts_themselves_refuse_what_gemini_refuses() -> None:
    assert bad_schema_key({"type": "object", "properties": {"a": {"type": "string", "const": "x"}}}) == "const"
    assert bad_schema_key({"type": "object", "$defs": {}}) == "$defs"
