"""A real `kimi-mcp serve` on loopback with a fake OpenAI-format provider, for browser tests
and the dashboard bench. Nothing here touches a non-loopback address."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
_PROMPT = re.compile(r"PROMPT=(\d+)")


class _FakeOpenAI(BaseHTTPRequestHandler):
    """/v1/chat/completions in OpenAI's shape. A message containing `PROMPT=<n>` makes the
    reported prompt_tokens n; `FAIL` makes it answer 500."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._json(200, {"object": "list", "data": [{"id": "fake-small", "object": "model"}]})

    def do_POST(self) -> None:
        size = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(size) or b"{}")
        text = json.dumps(body.get("messages", []))
        if "FAIL" in text:
            self._json(500, {"error": {"message": "the fake provider was told to fail",
                                       "type": "server_error"}})
            return
        found = _PROMPT.search(text)
        prompt = int(found.group(1)) if found else max(1, len(text) // 4)
        usage = {"prompt_tokens": prompt, "completion_tokens": 12, "total_tokens": prompt + 12}
        reply = "Hello from the fake provider."
        if body.get("stream"):
            self._stream(body, reply, usage)
            return
        self._json(200, {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "fake-small"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": reply}}],
            "usage": usage,
        })

    def _stream(self, body: dict[str, Any], reply: str, usage: dict[str, int]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                "model": body.get("model", "fake-small")}
        for word in reply.split(" "):
            chunk = {**base, "choices": [{"index": 0, "delta": {"content": word + " "}}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        last = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        self.wfile.write(f"data: {json.dumps(last)}\n\n".encode())
        self.wfile.write(f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def _json(self, status: int, data: dict[str, Any]) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


class FakeProvider:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeProvider:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, provider_url: str, extra: str = "") -> Path:
    path.write_text(f"""
[providers.fake]
base_url = "{provider_url}"
api_key = "x"
max_retries = 0

[providers.fake.models."fake-small"]
context_window = 8000
input_per_mtok = 1.0
output_per_mtok = 2.0

[providers.fake.models."fake-large"]
context_window = 32000
input_per_mtok = 3.0
output_per_mtok = 6.0

[routing]
default_model = "fake/fake-small"

[logwatch]
enabled = false

[memory]
embedder = "hash"
{extra}
""", encoding="utf-8")
    return path


@dataclass
class Server:
    """`kimi-mcp serve` in a subprocess; `restart()` keeps the port and the data dir."""

    root: Path
    config: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        exe = shutil.which("kimi-mcp")
        base = [exe] if exe else [sys.executable, "-m", "kimi_mcp"]
        return [*base, "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--config", str(self.config), "--workspace", str(self.root / "ws")]

    def start(self, timeout: float = 90) -> Server:
        (self.root / "ws").mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("KIMI_MCP_") and not k.endswith("_API_KEY")}
        env["KIMI_MCP_DATA_DIR"] = str(self.root / "data")
        log = (self.root / "server.log").open("ab")
        self.proc = subprocess.Popen(self.command(), cwd=self.root, env=env, stdout=log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kimi-mcp serve exited: {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # polling a starting subprocess; no event to wait on
        raise RuntimeError(f"kimi-mcp serve did not answer /health: {self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def chat(self, prompt_tokens: int, model: str = "fake/fake-small", session: str | None = None,
             stream: bool = False, fail: bool = False) -> httpx.Response:
        headers = {"x-kimi-session": session} if session else {}
        content = f"PROMPT={prompt_tokens} please answer" + (" FAIL" if fail else "")
        body = {"model": model, "stream": stream,
                "messages": [{"role": "user", "content": content}]}
        return httpx.post(f"{self.url}/v1/chat/completions", json=body, headers=headers,
                          timeout=30)

    def chat_with_tool_output(self, output: str, prompt_tokens: int = 4000,
                              session: str | None = None) -> httpx.Response:
        """A conversation whose early tool result is long enough for the sanitizer to mask."""
        messages: list[dict[str, Any]] = [
            {"role": "user", "content": "list the files"},
            {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "fs_tree", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "name": "fs_tree", "content": output},
        ]
        for i in range(6):
            messages += [{"role": "user", "content": f"step {i}"},
                         {"role": "assistant", "content": f"done {i}"}]
        messages.append({"role": "user", "content": f"PROMPT={prompt_tokens} summarise"})
        headers = {"x-kimi-session": session} if session else {}
        return httpx.post(f"{self.url}/v1/chat/completions", headers=headers, timeout=30,
                          json={"model": "fake/fake-large", "messages": messages})


def tool_output(lines: int = 400) -> str:
    """A verbose, deterministic tool result (several thousand tokens)."""
    return "\n".join(f"src/module_{i:04d}.py\t{i * 37 % 9000} bytes\tdef handler_{i}(request): ..."
                     for i in range(lines))
