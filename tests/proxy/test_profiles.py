"""Provider profiles: the inherited `profile` setting, images counted by rule (in the route's
estimate, the ledger's estimate and tpm budgets), the first-token test, Retry-After forms, and
the README's column of what each profile normalises."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any, get_args

import anyio
import httpx
import pytest
from proxy_support import proxy_app
from sqlmodel import select

from kimi_mcp.catalog import Catalog
from kimi_mcp.config import ProfileName, load_settings
from kimi_mcp.errors import ConfigError
from kimi_mcp.ledger.models import Request
from kimi_mcp.proxy.profiles import PROFILES, of
from kimi_mcp.proxy.streaming import has_content
from kimi_mcp.proxy.wire import build
from kimi_mcp.upstream import retry_after_of

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-profile-secret-123"
ANSWER = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                       "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 1200, "completion_tokens": 1, "total_tokens": 1201}}


def _png(width: int, height: int, padding: int = 0) -> str:
    head = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR"
            + struct.pack(">II", width, height) + b"\x08\x02\x00\x00\x00" + b"\0" * 4)
    return "data:image/png;base64," + base64.b64encode(head + b"\x17" * padding).decode()


def _image_message(url: str, text: str = "What is on this screen?") -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text},
                                        {"type": "image_url", "image_url": {"url": url}}]}


def _catalog(tmp_path: Path, **providers: Any) -> Catalog:
    return Catalog(load_settings(overrides={"data_dir": str(tmp_path), "providers": providers},
                                 launch_dir=tmp_path))


# ---- images ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_screenshot_fits_the_model_and_the_tpm_budget_and_is_estimated_by_tiles(
        make_deps: Any, serve_app: Any) -> None:
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json=ANSWER)

    providers = {"a": {"base_url": "http://a.test/v1", "api_key": KEY, "tpm": 20_000,
                       "models": {"vision": {"context_window": 32_000, "input_per_mtok": 1,
                                             "output_per_mtok": 1}}}}
    deps = make_deps(providers=providers, logwatch={"enabled": False},
                     routing={"aliases": {"see": {"strategy": "cheapest", "models": ["a/vision"]}}})
    app = proxy_app(deps, transport=httpx.MockTransport(answer))
    body = {"model": "see", "messages": [_image_message(_png(1920, 1080, padding=600_000))]}
    async with serve_app(app) as client:
        first = await client.post("/v1/chat/completions", json=body)
        second = await client.post("/v1/chat/completions", json=body)
    assert (first.status_code, second.status_code) == (200, 200), first.text
    assert len(requests) == 2
    proxy = app.state.proxy
    assert await anyio.to_thread.run_sync(proxy.accountant.wait_for, 2, 10)
    await deps.ledger.aflush()
    with deps.ledger.read() as db:
        row = db.exec(select(Request)).first()
    assert row is not None and row.est_prompt_tokens is not None
    assert 1105 < row.est_prompt_tokens < 1200


# ---- the profile setting ------------------------------------------------------------------------


def test_a_provider_of_your_own_inherits_the_profile_it_names(tmp_path: Path) -> None:
    cat = _catalog(tmp_path, mine={"base_url": "http://m.test/v1", "api_key": KEY,
                                   "profile": "mistral"},
                   plain={"base_url": "http://p.test/v1", "api_key": KEY},
                   vertex={"base_url": "http://g.test/v1beta", "api_key": KEY, "profile": "gemini"})
    assert of(cat.provider("mine")) is PROFILES["mistral"]
    assert of(cat.provider("plain")) is PROFILES["openai"]
    assert cat.provider("vertex").format == "gemini" and of(cat.provider("vertex")).wire == "gemini"
    body = {"model": "x", "max_completion_tokens": 9, "stream": True, "messages": [
        {"role": "assistant", "content": None, "reasoning_content": "r",
         "tool_calls": [{"id": "call_abc-1", "type": "function",
                         "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_abc-1", "content": "done"}]}
    sent = json.loads(build(cat.resolve("mine/x"), body, stream=True).content)
    assert sent["max_tokens"] == 9 and "max_completion_tokens" not in sent
    assert "stream_options" not in sent
    call_id = sent["messages"][0]["tool_calls"][0]["id"]
    assert call_id == sent["messages"][1]["tool_call_id"] and len(call_id) == 9 and call_id.isalnum()
    assert body["messages"][0]["tool_calls"][0]["id"] == "call_abc-1"  # the client's body is kept
    plain = json.loads(build(cat.resolve("plain/x"), body, stream=True).content)
    assert plain["messages"] == body["messages"] and plain["max_completion_tokens"] == 9


def test_a_profile_of_another_format_or_an_unknown_profile_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="profile"):
        _catalog(tmp_path, mine={"base_url": "http://m.test/v1", "format": "gemini",
                                 "profile": "mistral"})
    with pytest.raises(ConfigError, match="profile"):
        _catalog(tmp_path, mine={"base_url": "http://m.test/v1", "profile": "mistrall"})


def test_the_profile_setting_accepts_exactly_the_profiles_there_are() -> None:
    assert set(get_args(ProfileName)) == set(PROFILES)


def test_a_local_server_profile_sends_empty_content_beside_tool_calls(tmp_path: Path) -> None:
    cat = _catalog(tmp_path, llama={"base_url": "http://127.0.0.1:9/v1", "profile": "local"})
    body = {"model": "x", "messages": [
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "done"}]}
    sent = json.loads(build(cat.resolve("llama/x"), body, stream=False).content)
    assert sent["messages"][0]["content"] == "" and sent["messages"][0]["tool_calls"][0]["id"] == "c1"


def test_a_preset_switched_to_another_format_takes_that_formats_profile(tmp_path: Path) -> None:
    cat = _catalog(tmp_path, kimi={"format": "anthropic", "api_key": KEY})
    assert of(cat.provider("kimi")) is PROFILES["anthropic"]
    assert of(cat.provider("groq")) is PROFILES["groq"]


def test_every_preset_has_a_profile_and_the_readme_says_what_each_normalises() -> None:
    from kimi_mcp.catalog import PRESETS

    readme = (ROOT / "README.md").read_text()
    for name in PRESETS:
        profile = PROFILES[name]
        assert profile.wire == PRESETS[name].format
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}` |"))
        assert row.endswith(f"| {profile.normalises} |"), name


# ---- the wire's small rules ---------------------------------------------------------------------


def test_the_first_token_is_content_not_a_comment_a_role_chunk_or_an_empty_delta() -> None:
    role = b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n'
    assert not has_content(b": OPENROUTER PROCESSING\n\n")
    assert not has_content(role)
    assert not has_content(b'data: {"choices":[{"delta":{"content":null,"tool_calls":[]}}]}\n\n')
    assert has_content(role + b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n')
    assert has_content(b'data: {"choices":[{"delta":{"reasoning_content": "hm"}}]}\n\n')
    assert has_content(b'data: {"choices":[{"delta":{"tool_calls":[{"index":0}]}}]}\n\n')


def test_retry_after_is_read_in_each_form_providers_send() -> None:
    assert retry_after_of({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_of({"retry-after": "3"}) == 3.0
    assert retry_after_of({"x-ratelimit-reset-tokens": "1m2.5s"}) == 62.5
    assert retry_after_of({"x-ratelimit-reset-tokens": "250ms"}) == 0.25
    assert retry_after_of({"x-ratelimit-reset-tokens-minute": "12.5"}) == 12.5
    assert retry_after_of({"x-ratelimit-reset-tokens": "soon"}) is None
    assert retry_after_of({}) is None
