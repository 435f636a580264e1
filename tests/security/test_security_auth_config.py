"""An auth token that is empty (or only whitespace, or an unset ${VAR}) is a configuration error,
never "authentication on" that lets everything in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kimi_mcp.config import load_settings
from kimi_mcp.errors import ConfigError

EMPTY = ['[""]', '["   "]', '["${KIMI_TOKEN:-}"]', '["good-token-1", ""]']


@pytest.mark.parametrize("tokens", EMPTY)
def test_an_empty_token_in_the_file_is_refused_naming_the_key(tmp_path: Path, tokens: str) -> None:
    config = tmp_path / "kimi-mcp.toml"
    config.write_text(f'[server]\nhost = "0.0.0.0"\nauth_tokens = {tokens}\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config, launch_dir=tmp_path)
    assert "server.auth_tokens" in str(info.value) and "empty" in str(info.value)


def test_an_empty_token_from_the_environment_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIMI_MCP_SERVER__AUTH_TOKENS", '[""]')
    with pytest.raises(ConfigError, match=r"server\.auth_tokens"):
        load_settings(launch_dir=tmp_path)


def test_serve_on_all_interfaces_with_an_empty_token_exits_2_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "kimi-mcp.toml").write_text('[server]\nauth_tokens = ["${KIMI_TOKEN:-}"]\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIMI_")}
    env["KIMI_MCP_DATA_DIR"] = str(tmp_path / "data")
    done = subprocess.run([sys.executable, "-m", "kimi_mcp", "serve", "--host", "0.0.0.0",
                           "--port", "0"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "server.auth_tokens" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_real_token_still_configures_authentication(tmp_path: Path) -> None:
    config = tmp_path / "kimi-mcp.toml"
    config.write_text('[server]\nhost = "0.0.0.0"\nauth_tokens = ["s3cret-token"]\n')
    settings = load_settings(config, launch_dir=tmp_path)
    assert [t.get_secret_value() for t in settings.server.auth_tokens] == ["s3cret-token"]
