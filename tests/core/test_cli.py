"""The `kimi-mcp` command, run as a real subprocess the way a user runs it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

EXE = [sys.executable, "-m", "kimi_mcp"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIMI_MCP_") and not k.endswith("_API_KEY")}
    env.update({"KIMI_MCP_DATA_DIR": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")})
    env.update(extra)
    return env


def run(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXE, *args], cwd=tmp_path, env=_env(tmp_path, **extra),
                          capture_output=True, text=True, timeout=60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_version_and_help(tmp_path: Path) -> None:
    assert run(tmp_path, "--version").stdout.startswith("kimi-mcp ")
    assert run(tmp_path).returncode == 2


def test_sessions_create_list_delete_and_export(tmp_path: Path) -> None:
    created = run(tmp_path, "sessions", "create", "refactor", "--model", "kimi/kimi-k2-0905-preview")
    assert created.returncode == 0, created.stderr
    sid = created.stdout.strip()
    listed = run(tmp_path, "sessions", "list")
    assert sid in listed.stdout and "refactor" in listed.stdout
    exported = run(tmp_path, "export", "--format", "json", "--session", sid)
    assert exported.returncode == 0 and json.loads(exported.stdout) == []
    by_name = run(tmp_path, "export", "--format", "json", "--session", "refactor")
    assert by_name.returncode == 0 and json.loads(by_name.stdout) == []
    unknown = run(tmp_path, "export", "--session", "no-such-session")
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert "no session with id or name 'no-such-session'" in unknown.stderr
    out = tmp_path / "out.csv"
    assert run(tmp_path, "export", "-o", str(out)).returncode == 0
    assert out.read_text().startswith("kind,id,created_at")
    assert run(tmp_path, "sessions", "delete", "refactor").returncode == 0
    assert "no sessions yet" in run(tmp_path, "sessions", "list").stdout
    missing = run(tmp_path, "sessions", "delete", "nope")
    assert missing.returncode == 1 and "no session" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_sessions_create_refuses_an_unknown_provider_and_warns_of_an_unlisted_model(tmp_path: Path) -> None:
    bogus = run(tmp_path, "sessions", "create", "s3", "--provider", "bogus", "--model", "nothing")
    assert bogus.returncode == 1 and bogus.stdout == ""
    assert "unknown provider 'bogus'; configured: kimi, " in bogus.stderr
    typo = run(tmp_path, "sessions", "create", "s4", "--model", "bogus/none")
    assert typo.returncode == 1 and "unknown provider 'bogus' in model 'bogus/none'" in typo.stderr
    free = run(tmp_path, "sessions", "create", "s5", "--provider", "groq", "--model", "new-model")
    assert free.returncode == 0  # a known provider takes any model id, as the proxy does
    assert "warning: model 'new-model' is not in the catalog of groq" in free.stderr
    assert "s3" not in run(tmp_path, "sessions", "list").stdout


def test_bad_config_exits_2_with_one_line_naming_key_and_file(tmp_path: Path) -> None:
    (tmp_path / "kimi-mcp.toml").write_text("[server]\nprot = 80\n")
    done = run(tmp_path, "config", "check")
    assert done.returncode == 2
    assert "unknown key 'server.prot'" in done.stderr and "kimi-mcp.toml" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_bad_environment_variable_is_named_in_the_error(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text("[server]\nlog_level = 'info'\n")
    done = run(tmp_path, "config", "check", "--config", "x.toml", KIMI_MCP_SERVER__PORT="notanint")
    assert done.returncode == 2
    assert "environment variable KIMI_MCP_SERVER__PORT" in done.stderr and "x.toml" not in done.stderr


def test_config_show_redacts_keys_and_check_reports_providers(tmp_path: Path) -> None:
    (tmp_path / "kimi-mcp.toml").write_text('[providers.kimi]\napi_key = "${MOONSHOT_API_KEY}"\n')
    (tmp_path / "kimi-mcp.toml").write_text(
        '[providers.kimi]\napi_key = "${MOONSHOT_API_KEY}"\n'
        '[providers.local]\nbase_url = "http://127.0.0.1:9000/v1"\napi_key = "${LOCAL_KEY:-none}"\n'
        '[providers.local.models."my-model"]\ncontext_window = 32768\n')
    shown = run(tmp_path, "config", "show", MOONSHOT_API_KEY="sk-live-123")
    assert shown.returncode == 0 and "sk-live-123" not in shown.stdout
    providers = json.loads(shown.stdout)["providers"]
    assert providers["kimi"]["base_url"].startswith("https://")  # the preset, as it takes effect
    assert providers["kimi"]["api_key"] == "set" and providers["groq"]["api_key"] == "missing"
    assert providers["groq"]["api_key_env"] == "GROQ_API_KEY"
    assert providers["local"]["api_key"] == "not needed"
    assert providers["local"]["models"]["my-model"]["context_window"] == 32768
    checked = run(tmp_path, "config", "check", MOONSHOT_API_KEY="sk-live-123")
    assert "providers with a key: kimi" in checked.stdout


def test_commands_run_with_a_provider_key_variable_unset_and_say_so(tmp_path: Path) -> None:
    # a Codex or an editor starts `kimi-mcp stdio` without the shell's environment
    (tmp_path / "kimi-mcp.toml").write_text('[providers.kimi]\napi_key = "${MOONSHOT_API_KEY}"\n')
    for args in (["config", "check"], ["stop"], ["status", "--config", "kimi-mcp.toml"]):
        done = run(tmp_path, *args, KIMI_MCP_SERVER__PORT=str(_free_port()))
        assert done.returncode in (0, 3), (args, done.stderr)  # status: 3 when no server answers
        assert "warning" in done.stderr and "MOONSHOT_API_KEY is not set" in done.stderr
        assert "config error" not in done.stderr
    checked = run(tmp_path, "config", "check")
    assert "providers with a key: none" in checked.stdout


@pytest.mark.parametrize("args", [["export", "--format", "csv"], ["status"], ["config", "show"],
                                  ["init", "claude-code", "--print"], ["sessions", "list"]])
def test_output_into_a_closed_pipe_exits_quietly(tmp_path: Path, args: list[str]) -> None:
    read, write = os.pipe()
    os.close(read)  # as `kimi-mcp … | head -1` once head has gone
    try:
        done = subprocess.run([*EXE, *args], cwd=tmp_path, stdout=write, stderr=subprocess.PIPE,
                              text=True, timeout=60,
                              env=_env(tmp_path, KIMI_MCP_SERVER__PORT=str(_free_port())))
    finally:
        os.close(write)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


def test_serve_answers_health_and_metrics_and_refuses_a_busy_port(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen([*EXE, "serve", "--port", str(port)], cwd=tmp_path, env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120  # a cold start on a loaded 2-core box takes a while
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "serve did not come up"
                time.sleep(0.1)
        assert health.json()["status"] == "ok"
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert "kimi_sessions" in metrics.text
        busy = run(tmp_path, "serve", "--port", str(port))
        assert busy.returncode == 1 and "already in use" in busy.stderr
        started = run(tmp_path, "start", "--port", str(port))  # `stop` cannot stop this one
        assert started.returncode == 1 and "not started by `kimi-mcp start`" in started.stderr
        assert "kimi-mcp stop" not in started.stderr
        stopped = run(tmp_path, "stop")
        assert stopped.stdout.startswith("not running: no server started by `kimi-mcp start`")
        assert proc.poll() is None  # the foreground server is not stopped
        status = run(tmp_path, "status", KIMI_MCP_SERVER__PORT=str(port))
        assert "server: up" in status.stdout and status.returncode == 0
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_start_on_a_port_another_program_holds_says_so(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        done = run(tmp_path, "start", "--port", str(port))
    assert done.returncode == 1 and "another program listens there" in done.stderr
    assert "kimi-mcp stop" not in done.stderr


def test_serve_refuses_a_public_address_without_tokens(tmp_path: Path) -> None:
    done = run(tmp_path, "serve", "--host", "0.0.0.0", "--port", str(_free_port()))
    assert done.returncode == 2 and "auth_tokens" in done.stderr


def test_a_corrupt_ledger_is_named_and_kept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "kimi-mcp.db").write_bytes(b"not sqlite at all" * 64)
    done = run(tmp_path, "sessions", "list")
    assert done.returncode == 1
    assert "kimi-mcp.db" in done.stderr and "Traceback" not in done.stderr
    assert (data / "kimi-mcp.db").read_bytes() == b"not sqlite at all" * 64


class _Rpc:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc, self.next_id = proc, 0

    def call(self, method: str, params: dict[str, object]) -> dict[str, object]:
        self.next_id += 1
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": self.next_id, "method": method,
                                          "params": params}).encode() + b"\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        reply: dict[str, object] = json.loads(line)  # stdout carries only JSON-RPC
        assert reply["id"] == self.next_id
        return reply

    def notify(self, method: str) -> None:
        assert self.proc.stdin
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", "method": method}).encode() + b"\n")
        self.proc.stdin.flush()


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25"])
def test_stdio_answers_initialize_and_reads_stats_summary(tmp_path: Path, version: str) -> None:
    proc = subprocess.Popen([*EXE, "stdio", "--workspace", str(tmp_path)], cwd=tmp_path,
                            env=_env(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        rpc = _Rpc(proc)
        init = rpc.call("initialize", {"protocolVersion": version, "capabilities": {},
                                       "clientInfo": {"name": "raw", "version": "1"}})
        assert init["result"]["protocolVersion"] == version  # type: ignore[index]
        assert init["result"]["serverInfo"]["name"] == "kimi-mcp"  # type: ignore[index]
        rpc.notify("notifications/initialized")
        read = rpc.call("resources/read", {"uri": "stats://summary"})
        content = read["result"]["contents"][0]  # type: ignore[index]
        assert content["mimeType"] == "application/json"
        assert json.loads(content["text"])["totals"]["requests"] == 0
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=15)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
