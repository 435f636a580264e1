"""Real kimi-mcp processes for the conformance tests: `kimi-mcp serve` and `kimi-mcp stdio`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

FAMILY_CALLS: dict[str, tuple[str, dict[str, object]]] = {
    "memory": ("memory_recall", {"query": "conformance"}),
    "tasks": ("tasks_list", {}),
    "thinking": ("thinking_sequential", {"thought": "one step", "next_thought_needed": False,
                                         "thought_number": 1, "total_thoughts": 1}),
    "fs": ("fs_list_allowed_directories", {}),
    "json": ("json_query", {"expression": "$.name", "path": "data.json"}),
}


def make_workspace(root: Path) -> Path:
    ws = root / "ws"
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "data.json").write_text(json.dumps({"name": "kimi", "items": [1, 2, 3]}))
    return ws


def server_env(root: Path) -> dict[str, str]:
    """The process environment minus anyone's keys and config, with a private data dir."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("KIMI_MCP_") and not k.endswith("_API_KEY")}
    env.update({
        "HOME": str(root / "home"), "XDG_CONFIG_HOME": str(root / "xdg-config"),
        "XDG_DATA_HOME": str(root / "xdg-data"), "KIMI_MCP_DATA_DIR": str(root / "data"),
        "KIMI_MCP_MEMORY__EMBEDDER": "hash", "KIMI_MCP_LOGWATCH__ENABLED": "false",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def stdio_command(ws: Path) -> list[str]:
    return [sys.executable, "-m", "kimi_mcp", "stdio", "--workspace", str(ws)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class HttpServer:
    url: str
    process: subprocess.Popen[str]
    stderr: list[str] = field(default_factory=list)


@contextmanager
def run_http_server(root: Path, ws: Path, timeout: float = 90) -> Iterator[HttpServer]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "kimi_mcp", "serve", "--port", str(port), "--workspace", str(ws)],
        cwd=root, env=server_env(root), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )
    server = HttpServer(f"http://127.0.0.1:{port}/mcp", process)
    ready = threading.Event()

    def drain() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            server.stderr.append(line)
            if "Application startup complete" in line or "Uvicorn running" in line:
                ready.set()
        ready.set()  # the process ended: let the waiter look

    threading.Thread(target=drain, daemon=True).start()
    try:
        if not ready.wait(timeout) or process.poll() is not None:
            raise RuntimeError("kimi-mcp serve did not start:\n" + "".join(server.stderr[-30:]))
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
