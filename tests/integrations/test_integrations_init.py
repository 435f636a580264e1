"""`kimi-mcp init <client>`: written files load with each client's own format rules."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from kimi_mcp.cli import main


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    ws = tmp_path / "proj"
    ws.mkdir()
    return ws


def init(*args: str) -> int:
    return main(["init", *args])


def test_init_continue_writes_a_v1_mcp_block_and_proxy_models(project: Path) -> None:
    assert init("continue", "--workspace", str(project)) == 0
    block = yaml.safe_load((project / ".continue/mcpServers/kimi-mcp.yaml").read_text())
    assert (block["name"], block["version"], block["schema"]) == ("kimi-mcp", "0.0.1", "v1")
    [server] = block["mcpServers"]
    assert server["name"] == "kimi-mcp" and server["args"][-2:] == ["--workspace", str(project)]
    assert Path(server["command"]).is_absolute()
    models = yaml.safe_load((project / ".continue/models/kimi-mcp.yaml").read_text())
    assert models["schema"] == "v1"
    [model] = models["models"]
    assert model["provider"] == "openai"
    assert model["apiBase"] == "http://127.0.0.1:8765/v1"
    assert model["model"] == "kimi/kimi-k2-0905-preview"
    assert model["defaultCompletionOptions"]["contextLength"] == 262144


def test_init_continue_lists_every_model_of_a_provider_with_a_key(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "gsk-test")
    assert init("continue", "--workspace", str(project)) == 0
    models = yaml.safe_load((project / ".continue/models/kimi-mcp.yaml").read_text())["models"]
    names = [m["model"] for m in models]
    assert names[0] == "kimi/kimi-k2-0905-preview"
    assert "groq/llama-3.3-70b-versatile" in names
    assert all("gsk-test" not in json.dumps(m) for m in models)


def test_init_continue_lists_a_local_provider_whose_key_is_none_on_purpose(
    project: Path, tmp_path: Path
) -> None:
    (tmp_path / "kimi-mcp.toml").write_text(
        '[providers.local]\nbase_url = "http://127.0.0.1:9000/v1"\napi_key = "${LOCAL_KEY:-none}"\n'
        '[providers.local.models."my-model"]\ncontext_window = 32768\n')
    assert init("continue", "--workspace", str(project)) == 0
    models = yaml.safe_load((project / ".continue/models/kimi-mcp.yaml").read_text())["models"]
    local = next(m for m in models if m["model"] == "local/my-model")
    assert local["defaultCompletionOptions"] == {"contextLength": 32768}


def test_init_continue_keeps_other_servers_in_an_existing_block_and_a_backup(project: Path) -> None:
    path = project / ".continue/mcpServers/kimi-mcp.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("name: mine\nversion: 1.2.3\nschema: v1\nmcpServers:\n"
                    "  - name: other\n    command: other-server\n")
    assert init("continue", "--workspace", str(project)) == 0
    block = yaml.safe_load(path.read_text())
    assert block["name"] == "mine" and block["version"] == "1.2.3"
    assert [s["name"] for s in block["mcpServers"]] == ["other", "kimi-mcp"]
    assert len(list(path.parent.glob("kimi-mcp.yaml.*.bak"))) == 1
    assert init("continue", "--workspace", str(project)) == 0  # idempotent: no second entry
    assert [s["name"] for s in yaml.safe_load(path.read_text())["mcpServers"]] == ["other", "kimi-mcp"]


def test_init_claude_code_merges_into_an_existing_mcp_json(project: Path) -> None:
    path = project / ".mcp.json"
    path.write_text(json.dumps({"mcpServers": {"git": {"command": "git-mcp"}}, "extra": 1}))
    assert init("claude-code", "--workspace", str(project)) == 0
    doc = json.loads(path.read_text())
    assert doc["extra"] == 1 and doc["mcpServers"]["git"] == {"command": "git-mcp"}
    entry = doc["mcpServers"]["kimi-mcp"]
    assert entry["args"] == ["stdio", "--workspace", str(project)]
    backups = list(project.glob(".mcp.json.*.bak"))
    assert len(backups) == 1 and json.loads(backups[0].read_text())["extra"] == 1


def test_init_claude_code_points_claude_code_at_the_proxy_with_the_server_approved(project: Path) -> None:
    local = project / ".claude" / "settings.local.json"
    local.parent.mkdir()
    local.write_text(json.dumps({"permissions": {"allow": ["Bash(ls)"]},
                                 "enabledMcpjsonServers": ["git"], "env": {"FOO": "1"}}))
    assert init("claude-code", "--workspace", str(project), "--model", "kimi/kimi-k2-turbo-preview") == 0
    doc = json.loads(local.read_text())
    assert doc["permissions"] == {"allow": ["Bash(ls)"]}
    assert doc["enabledMcpjsonServers"] == ["git", "kimi-mcp"]
    env = doc["env"]
    assert env["FOO"] == "1" and env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:8765"
    assert env["ANTHROPIC_MODEL"] == env["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == "kimi/kimi-k2-turbo-preview"
    assert env["ANTHROPIC_AUTH_TOKEN"] == "kimi-mcp"
    assert json.loads((project / ".mcp.json").read_text())["mcpServers"]["kimi-mcp"]["args"][0] == "stdio"
    assert init("claude-code", "--workspace", str(project)) == 0  # idempotent
    assert json.loads(local.read_text())["enabledMcpjsonServers"] == ["git", "kimi-mcp"]


def test_init_claude_code_says_when_claude_code_applies_the_approval(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert init("claude-code", "--workspace", str(project)) == 0
    err = capsys.readouterr().err
    assert "once the folder is trusted" in err and "`claude mcp list` shows kimi-mcp pending" in err


def test_init_claude_code_with_auth_tokens_reads_the_token_from_the_environment(
    project: Path, tmp_path: Path
) -> None:
    config = tmp_path / "kimi.toml"
    config.write_text('[server]\nauth_tokens = ["s3cret-token"]\n')
    assert init("claude-code", "--workspace", str(project), "--config", str(config)) == 0
    text = (project / ".claude" / "settings.local.json").read_text()
    assert "s3cret-token" not in text and "ANTHROPIC_AUTH_TOKEN" not in text
    assert json.loads(text)["apiKeyHelper"] == "printenv KIMI_MCP_TOKEN"


def test_init_codex_adds_a_responses_provider_and_the_server_keeping_the_users_config(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tomllib

    home = tmp_path / "codex-home"
    home.mkdir()
    monkeypatch.setenv("CODEX_HOME", str(home))
    path = home / "config.toml"
    path.write_text('# my codex\napproval_policy = "never"\n\n[mcp_servers.git]\ncommand = "git-mcp"\n')
    assert init("codex", "--workspace", str(project)) == 0
    text = path.read_text()
    assert text.startswith("# my codex\n")
    doc = tomllib.loads(text)
    assert doc["approval_policy"] == "never" and doc["mcp_servers"]["git"] == {"command": "git-mcp"}
    assert (doc["model"], doc["model_provider"]) == ("kimi/kimi-k2-0905-preview", "kimi-mcp")
    assert doc["model_providers"]["kimi-mcp"] == {"name": "kimi-mcp", "wire_api": "responses",
                                                  "base_url": "http://127.0.0.1:8765/v1"}
    server = doc["mcp_servers"]["kimi-mcp"]
    assert server["args"] == ["stdio", "--workspace", str(project)] and os.path.isabs(server["command"])
    assert server["startup_timeout_sec"] == 60 and server["required"] is True
    assert init("codex", "--workspace", str(project)) == 0
    assert tomllib.loads(path.read_text()) == doc


@pytest.mark.parametrize("client", ["continue", "claude", "cursor", "claude-code", "codex"])
def test_init_registers_the_stdio_command_with_the_same_config_file_as_an_absolute_path(
    client: str, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tomllib

    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex-home"))
    (tmp_path / "team.toml").write_text("[server]\nport = 9876\n")
    assert init(client, "--config", "team.toml", "--workspace", str(project)) == 0
    if client == "continue":
        [entry] = yaml.safe_load((project / ".continue/mcpServers/kimi-mcp.yaml").read_text())["mcpServers"]
    elif client == "codex":
        entry = tomllib.loads((tmp_path / "codex-home" / "config.toml").read_text())["mcp_servers"]["kimi-mcp"]
    else:
        path = {"claude": tmp_path / "xdg-config" / "Claude" / "claude_desktop_config.json",
                "cursor": project / ".cursor" / "mcp.json",
                "claude-code": project / ".mcp.json"}[client]
        entry = json.loads(path.read_text())["mcpServers"]["kimi-mcp"]
    args = entry["args"]
    assert args[args.index("--config") + 1] == str(tmp_path / "team.toml")
    assert args[-2:] == ["--workspace", str(project)]


@pytest.mark.parametrize("client", ["codex", "claude-code"])
def test_init_refuses_a_model_of_an_unknown_provider_and_writes_nothing(
    client: str, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex-home"))
    assert init(client, "--model", "bogus/none", "--workspace", str(project)) == 1
    assert "unknown provider 'bogus' in model 'bogus/none'; configured: kimi" in capsys.readouterr().err
    assert not (tmp_path / "codex-home").exists() and not (project / ".mcp.json").exists()


def test_init_codex_refuses_a_config_it_cannot_parse(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CODEX_HOME", str(tmp_path))
    (tmp_path / "config.toml").write_text("model = [broken\n")
    assert init("codex", "--workspace", str(project)) == 1
    assert "not valid TOML" in capsys.readouterr().err
    assert (tmp_path / "config.toml").read_text() == "model = [broken\n"


def test_init_claude_writes_the_desktop_config_in_the_user_config_dir(
    project: Path, tmp_path: Path
) -> None:
    assert init("claude", "--workspace", str(project)) == 0
    path = (tmp_path / "xdg-config" / "Claude" / "claude_desktop_config.json"
            if sys.platform.startswith("linux") else None)
    assert path is not None and path.is_file()
    entry = json.loads(path.read_text())["mcpServers"]["kimi-mcp"]
    assert entry["args"][0] == "stdio" and os.path.isabs(entry["command"])


def test_init_cursor_http_registers_the_server_url(project: Path, tmp_path: Path) -> None:
    assert init("cursor", "--http", "--global", "--workspace", str(project)) == 0
    doc = json.loads((tmp_path / "home" / ".cursor" / "mcp.json").read_text())
    assert doc["mcpServers"]["kimi-mcp"] == {"url": "http://127.0.0.1:8765/mcp"}


def test_init_refuses_to_touch_a_file_it_cannot_parse(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = project / ".cursor" / "mcp.json"
    path.parent.mkdir()
    path.write_text("{ broken json")
    assert init("cursor", "--workspace", str(project)) == 1
    assert path.read_text() == "{ broken json"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not valid JSON" in err[0] and "left unchanged" in err[0]
    assert list(path.parent.glob("*.bak")) == []


def test_init_reports_an_unwritable_location_in_one_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / ".continue").write_text("a file where a directory should be")
    assert init("continue", "--workspace", str(project)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write" in err[0]
    assert (project / ".continue").read_text() == "a file where a directory should be"


def test_init_print_shows_the_config_and_writes_nothing(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert init("claude-code", "--print", "--workspace", str(project)) == 0
    out = capsys.readouterr().out
    files = {head: json.loads(body) for head, body in
             (block.split("\n", 1) for block in out.split("# ")[1:])}
    assert files[str(project / ".mcp.json")]["mcpServers"]["kimi-mcp"]["args"][0] == "stdio"
    local = files[str(project / ".claude" / "settings.local.json")]
    assert local["env"]["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:8765"
    assert not (project / ".mcp.json").exists() and not (project / ".claude").exists()


def test_claude_desktop_refuses_http(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert init("claude", "--http", "--workspace", str(project)) == 1
    assert "drop --http" in capsys.readouterr().err


def test_the_root_mcp_json_launches_a_real_entry_point() -> None:
    root = Path(__file__).resolve().parents[2]
    entry = json.loads((root / "mcp.json").read_text())["mcpServers"]["kimi-mcp"]
    assert entry["command"] == "kimi-mcp" and entry["args"][0] == "stdio"
    from kimi_mcp.cli import build_parser

    args = build_parser().parse_args(entry["args"])
    assert args.command == "stdio"
