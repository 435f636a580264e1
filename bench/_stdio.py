"""A raw newline-delimited JSON-RPC client for MCP stdio servers (used by the benches)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any


class StdioClient:
    def __init__(self, cmd: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> None:
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})},
                                     cwd=cwd)
        self._id = 0

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._id += 1
        msg = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": params or {}}
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"server closed stdout while waiting for {method}")
            reply = json.loads(line)
            if reply.get("id") == self._id:
                return reply  # type: ignore[no-any-return]

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        assert self.proc.stdin
        msg = {"jsonrpc": "2.0", "method": method, "params": params or {}}
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        self.proc.stdin.flush()

    def initialize(self, version: str = "2025-06-18") -> tuple[dict[str, Any], float]:
        reply = self.request("initialize", {"protocolVersion": version, "capabilities": {},
                                            "clientInfo": {"name": "bench", "version": "0"}})
        elapsed = time.perf_counter() - self.started
        self.notify("notifications/initialized")
        return reply, elapsed

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
