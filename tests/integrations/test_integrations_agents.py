"""Claude Code and Codex, the real CLIs from npm, through the proxy and kimi-mcp's MCP server.

Installed outside the repo by scripts/test (or by hand):
    npm install --prefix ~/.cache/kimi-mcp-tests/agents @anthropic-ai/claude-code @openai/codex
or pointed to with KIMI_MCP_AGENTS_DIR. Each test configures the agent with `kimi-mcp init`, runs
one headless turn (`claude -p`, `codex exec`) against a scripted OpenAI-format provider that asks
for kimi-mcp's `fs_read_file` tool and then answers with what the tool returned, and checks the
agent's output and the ledger (the proxy's rows with their inbound format, the tool call row
the tool's own answer as the provider received it on the next turn).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from integrations_support import server_env
from sqlmodel import select
from starlette.applications import Starlette
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from kimi_mcp.app import create_app
from kimi_mcp.cli import main
from kimi_mcp.config import load_settings
from kimi_mcp.deps import Deps
from kimi_mcp.ledger import Ledger
from kimi_mcp.ledger.models import Request, ToolCall
from kimi_mcp.proxy.pipeline import Proxy

AGENTS_DIR = Path(os.environ.get("KIMI_MCP_AGENTS_DIR")
                  or Path.home() / ".cache" / "kimi-mcp-tests" / "agents")
BIN = AGENTS_DIR / "node_modules" / ".bin"
SECRET = "the deploy password is ORANGE-42"
TOOL = "fs_read_file"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _cli(name: str) -> str | None:
    path = BIN / name
    return str(path) if path.exists() and shutil.which("node") else None


# ---- the scripted provider ------------------------------------------------------------------------


def _reply(body: dict[str, Any]) -> dict[str, Any]:
    """Call kimi-mcp's fs_read_file on notes.txt (first waiting for the MCP server when the agent
    offers a way to: Claude Code's WaitForMcpServers), then repeat what the tool returned."""
    messages = body.get("messages") or []
    read = next((m for m in messages if m.get("tool_call_id") == "call_read_1"), None)
    if read is not None:
        content = read.get("content")
        text = content if isinstance(content, str) else json.dumps(content)
        return {"role": "assistant", "content": f"The note reads: {text[:300]}"}
    names = [t["function"]["name"] for t in body.get("tools") or () if t.get("type") == "function"]
    tool = next((n for n in names if n.endswith(TOOL)), None)
    waits = sum(1 for m in messages if str(m.get("tool_call_id", "")).startswith("call_wait_"))
    if tool is None and "WaitForMcpServers" in names and waits < 8:  # "try again" while connecting
        return _call(f"call_wait_{waits + 1}", "WaitForMcpServers", {"servers": ["kimi-mcp"]})
    if tool is None:
        return {"role": "assistant", "content": "ok"}
    return _call("call_read_1", tool, {"path": "notes.txt"})


def _call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [{
        "id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}]}


def _chunk(delta: dict[str, Any], finish: str | None) -> bytes:
    data = {"id": "chatcmpl-a", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(data).encode() + b"\n\n"


async def _stream(reply: dict[str, Any]) -> AsyncIterator[bytes]:
    yield _chunk({"role": "assistant", "content": ""}, None)
    if reply.get("tool_calls"):
        call = reply["tool_calls"][0]
        yield _chunk({"tool_calls": [{**call, "index": 0}]}, None)
        yield _chunk({}, "tool_calls")
    else:
        yield _chunk({"content": reply["content"]}, None)
        yield _chunk({}, "stop")
    usage = {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
    yield b"data: " + json.dumps({"id": "chatcmpl-a", "object": "chat.completion.chunk", "created": 1,
                                  "model": "m", "choices": [], "usage": usage}).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


def agent_provider(seen: list[dict[str, Any]]) -> Starlette:
    async def chat(request: HttpRequest) -> Response:
        body = await request.json()
        seen.append(body)
        reply = _reply(body)
        if body.get("stream"):
            return StreamingResponse(_stream(reply), media_type="text/event-stream")
        return JSONResponse({"id": "chatcmpl-a", "object": "chat.completion", "created": 1, "model": "m",
                             "choices": [{"index": 0, "message": reply,
                                          "finish_reason": "tool_calls" if reply.get("tool_calls") else "stop"}],
                             "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}})

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


# ---- the proxy in front of it -----------------------------------------------------------------------


class Stack:
    def __init__(self, root: Path, port: int, deps: Deps, proxy: Proxy, seen: list[dict[str, Any]]) -> None:
        self.root, self.port, self.deps, self.proxy, self.seen = root, port, deps, proxy, seen
        self.ws = root / "ws"

    def env(self) -> dict[str, str]:
        env = server_env(self.root)
        env.update({"DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1",
                    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "NO_COLOR": "1",
                    "CODEX_HOME": str(self.root / "codex-home"), "RUST_LOG": "error"})
        return env

    def init(self, client: str, *extra: str) -> None:
        config = self.root / "kimi.toml"
        # init refuses a model of a provider its config lacks: name the stack's provider (its URL
        # is not used by anything init writes)
        config.write_text(f"[server]\nport = {self.port}\n[providers.agent]\n"
                          f"base_url = \"http://127.0.0.1:{self.port}/v1\"\napi_key = \"none\"\n"
                          f"[providers.agent.models.m]\ncontext_window = 200000\n")
        env = self.env()
        saved = {k: os.environ.get(k) for k in ("HOME", "CODEX_HOME")}
        os.environ.update({"HOME": env["HOME"], "CODEX_HOME": env["CODEX_HOME"]})
        try:
            assert main(["init", client, "--workspace", str(self.ws), "--config", str(config),
                         "--model", "agent/m", *extra]) == 0
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def rows(self, since: float) -> list[Request]:
        """The proxy's rows since `since`, once every call it took is accounted."""
        accountant = self.proxy.accountant
        assert accountant.wait_for(accountant.submitted, 20)
        self.deps.ledger.flush()
        with self.deps.ledger.read() as db:
            return list(db.exec(select(Request).where(Request.created_at >= since)).all())  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("agents")
    (root / "ws").mkdir()
    (root / "ws" / "notes.txt").write_text(SECRET + "\n")
    (root / "home").mkdir()
    seen: list[dict[str, Any]] = []
    with serve(agent_provider(seen)) as base, pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("KIMI_MCP_") or name.endswith("_API_KEY"):
                mp.delenv(name)
        settings = load_settings(overrides={
            "data_dir": str(root / "data"), "logwatch": {"enabled": False}, "memory": {"embedder": "hash"},
            "mcp": {"workspace": str(root / "ws")},
            "providers": {"agent": {"base_url": f"{base}/v1", "api_key": "sk-agent-0123456789",
                                    "models": {"m": {"context_window": 200_000}}}}}, launch_dir=root)
        ledger = Ledger(settings.database_url())
        ledger.start()
        deps = Deps(settings, ledger=ledger)
        app = create_app(settings, deps)
        try:
            with serve(app, lifespan="on") as url:
                yield Stack(root, int(url.rsplit(":", 1)[1]), deps, app.state.proxy, seen)
        finally:
            ledger.close()


@contextlib.contextmanager
def serve(app: Any, lifespan: str = "off") -> Iterator[str]:
    """An ASGI app under uvicorn in a thread on a free loopback port; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan=lifespan,
                                           timeout_graceful_shutdown=0.2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _tool_result(stack: Stack) -> dict[str, Any]:
    """What kimi-mcp's fs_read_file answered, as the provider saw it in the next request."""
    for body in reversed(stack.seen):
        for message in body.get("messages") or ():
            if message.get("tool_call_id") == "call_read_1":
                content = message["content"]
                text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
                found: dict[str, Any] = json.loads(text[text.index("{"):])  # Codex adds a header
                assert SECRET in found["content"]
                return found
    raise AssertionError("no request carried the tool's result")


def _tool_calls(stack: Stack, since: float) -> list[ToolCall]:
    deadline = time.monotonic() + 20
    while True:
        stack.deps.ledger.flush()
        with stack.deps.ledger.read() as db:
            found = list(db.exec(select(ToolCall).where(ToolCall.created_at >= since)).all())  # type: ignore[arg-type]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _run(argv: list[str], stack: Stack) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=stack.ws, env=stack.env(), capture_output=True, text=True,
                          timeout=240, stdin=subprocess.DEVNULL, check=False)


@pytest.mark.skipif(_cli("claude") is None, reason=f"Claude Code is not installed in {AGENTS_DIR} "
                    "(npm install --prefix ~/.cache/kimi-mcp-tests/agents @anthropic-ai/claude-code)")
def test_claude_code_headless_turn_calls_a_kimi_mcp_tool_through_the_proxy(stack: Stack) -> None:
    stack.init("claude-code")
    since = time.time()
    done = _run([str(_cli("claude")), "-p", "What does notes.txt say? Use the kimi-mcp tool.",
                 "--allowedTools", f"mcp__kimi-mcp__{TOOL}", "--output-format", "json"], stack)
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    assert "ORANGE-42" in json.loads(done.stdout)["result"]
    requests = stack.rows(since)
    assert requests and all(r.meta.get("inbound") == "anthropic_messages" for r in requests)
    assert all(r.status == "ok" for r in requests), [(r.status, r.error) for r in requests]
    assert _tool_result(stack)["path"] == "notes.txt"  # kimi-mcp's own answer reached the model


@pytest.mark.skipif(_cli("codex") is None, reason=f"Codex is not installed in {AGENTS_DIR} "
                    "(npm install --prefix ~/.cache/kimi-mcp-tests/agents @openai/codex)")
def test_codex_exec_turn_calls_a_kimi_mcp_tool_through_the_responses_api(stack: Stack) -> None:
    # --http: Codex does not hold the first turn for a still-starting stdio server, and a cold
    # Python start on a loaded two-core machine takes longer than a scripted turn
    stack.init("codex", "--http")
    since = time.time()
    done = _run([str(_cli("codex")), "exec", "--skip-git-repo-check",
                 "What does notes.txt say? Use the kimi-mcp tool."], stack)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    assert "ORANGE-42" in done.stdout
    requests = stack.rows(since)
    assert requests and all(r.meta.get("inbound") == "openai_responses" for r in requests)
    assert all(r.status == "ok" for r in requests), [(r.status, r.error) for r in requests]
    assert _tool_result(stack)["path"] == "notes.txt"
    calls = _tool_calls(stack, since)
    assert any(c.tool == TOOL and not c.is_error for c in calls)  # the /mcp call is in the ledger
