"""`kimi-mcp stdio` as a real subprocess: a tool call acknowledged to the client is in the ledger
however the client ends the server — stdin closed at once, SIGTERM, SIGINT — and a dashboard
on `kimi-mcp serve` sees it live."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kimi_mcp.ledger import Ledger

EXE = [sys.executable, "-m", "kimi_mcp"]


def env_for(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("KIMI_MCP_") and not k.endswith("_API_KEY")}
    env.update({"KIMI_MCP_DATA_DIR": str(tmp_path / "data"),
                "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
                "KIMI_MCP_LOGWATCH__ENABLED": "false"})
    return env


class Stdio:
    """A raw newline-delimited JSON-RPC client, as editors are."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.proc = subprocess.Popen([*EXE, "stdio", "--workspace", str(tmp_path)], cwd=tmp_path,
                                     env={**env_for(tmp_path), **env}, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._id = 0

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._id += 1
        self.send({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            assert line, "the server closed stdout"
            reply = json.loads(line)
            if reply.get("id") == self._id:
                return reply  # type: ignore[no-any-return]

    def start(self) -> None:
        self.call("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                 "clientInfo": {"name": "raw", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        reply = self.call("tools/call", {"name": name, "arguments": arguments})
        assert "result" in reply, reply
        return reply["result"]  # type: ignore[no-any-return]

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None and not stream.closed:
                    stream.close()
        assert self.proc.stderr is not None
        err = self.proc.stderr.read().decode()
        self.proc.stderr.close()
        return code, err


def tool_calls(tmp_path: Path) -> list[dict[str, Any]]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'data' / 'kimi-mcp.db'}",
                    spool_dir=tmp_path / "data" / "spool")
    ledger.start()  # replays whatever the server left in its spool
    ledger.flush()
    try:
        with ledger.read() as db:
            from sqlalchemy import text

            rows = db.execute(text("SELECT tool, is_error, result_tokens FROM tool_call")).all()
        return [{"tool": r[0], "is_error": bool(r[1]), "result_tokens": r[2]} for r in rows]
    finally:
        ledger.close()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_tool_call_answered_before_stdin_closes_at_once_is_recorded(tmp_path: Path) -> None:
    client = Stdio(tmp_path)
    client.start()
    result = client.tool("json_validate", {"document": "{\"a\": 1}"})
    assert not result.get("isError")
    assert client.proc.stdin is not None
    client.proc.stdin.close()  # the client leaves the moment it has its answer
    code, err = client.finish()
    assert code == 0, err
    calls = tool_calls(tmp_path)
    assert [c["tool"] for c in calls] == ["json_validate"]
    assert calls[0]["result_tokens"] > 0  # counted before exit, not a bare reservation
    assert "LedgerError" not in err and "not started" not in err


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_drains_the_ledger_before_stdio_exits(tmp_path: Path, sig: signal.Signals) -> None:
    client = Stdio(tmp_path)
    client.start()
    for _ in range(3):
        client.tool("json_validate", {"document": "[1, 2]"})
    client.proc.send_signal(sig)  # stdin stays open, as opencode leaves it
    code, err = client.finish()
    assert code in (0, 128 + sig), err
    assert [c["tool"] for c in tool_calls(tmp_path)] == ["json_validate"] * 3
