from __future__ import annotations

from pathlib import Path

import pytest

from kimi_mcp.config import load_settings, redacted
from kimi_mcp.errors import ConfigError


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_later_sources_win_defaults_toml_dotenv_env_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "kimi-mcp.toml", "[server]\nport = 9001\nhost = '127.0.0.2'\nlog_level = 'debug'\n"
                                        "[context]\nkeep_last_turns = 7\n")
    _write(tmp_path / ".env", "KIMI_MCP_SERVER__PORT=9002\nKIMI_MCP_CONTEXT__KEEP_LAST_TURNS=8\n")
    monkeypatch.setenv("KIMI_MCP_SERVER__PORT", "9003")
    settings = load_settings(overrides={"server": {"host": "127.0.0.9"}}, launch_dir=tmp_path)
    assert settings.server.port == 9003  # env beats .env and TOML
    assert settings.server.host == "127.0.0.9"  # CLI flags beat everything
    assert settings.server.log_level == "debug"  # TOML beats defaults
    assert settings.context.keep_last_turns == 8  # .env beats TOML
    assert settings.context.compress_at == 0.85  # the default stands
    assert settings.config_file == (tmp_path / "kimi-mcp.toml").resolve()


def test_toml_strings_expand_variables_with_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-from-env")
    _write(tmp_path / "kimi-mcp.toml", '[providers.kimi]\napi_key = "${MY_KEY}"\n'
           '[providers.local]\nbase_url = "http://${LOCAL_HOST:-127.0.0.1}:9000/v1"\n')
    settings = load_settings(launch_dir=tmp_path)
    assert settings.providers["kimi"].api_key is not None
    assert settings.providers["kimi"].api_key.get_secret_value() == "sk-from-env"
    assert settings.providers["local"].base_url == "http://127.0.0.1:9000/v1"


def test_dotenv_values_feed_variable_expansion(tmp_path: Path) -> None:
    _write(tmp_path / ".env", "MOONSHOT_API_KEY=sk-dotenv\n")
    _write(tmp_path / "kimi-mcp.toml", '[providers.kimi]\napi_key = "${MOONSHOT_API_KEY}"\n')
    settings = load_settings(launch_dir=tmp_path)
    assert settings.providers["kimi"].api_key.get_secret_value() == "sk-dotenv"  # type: ignore[union-attr]
    assert settings.env("MOONSHOT_API_KEY") == "sk-dotenv"


@pytest.mark.parametrize(
    "text,message",
    [
        ("[server]\nbogus = 1\n", "unknown key 'server.bogus'"),
        ("[serverr]\nport = 1\n", "unknown key 'serverr'"),
        ("[server]\nport = 'eighty'\n", "key 'server.port'"),
        ('[server]\nhost = "${UNSET_VAR_FOR_TEST}"\n', "UNSET_VAR_FOR_TEST is not set"),
        ("[server\nport = 1\n", "invalid TOML"),
        ("[providers.kimi]\nmodels = 3\n", "providers.kimi.models"),
    ],
)
def test_bad_config_is_a_config_error_naming_key_and_file(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path / "broken.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, launch_dir=tmp_path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)
    assert caught.value.exit_code == 2


def test_explicit_config_path_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml", launch_dir=tmp_path)


def test_user_config_dir_is_the_fallback(tmp_path: Path) -> None:
    user = tmp_path / "xdg-config" / "kimi-mcp"
    user.mkdir(parents=True)
    _write(user / "config.toml", "[server]\nport = 9100\n")
    assert load_settings(launch_dir=tmp_path / "elsewhere").server.port == 9100


def test_data_dir_comes_from_kimi_mcp_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIMI_MCP_DATA_DIR", str(tmp_path / "data"))
    settings = load_settings(launch_dir=tmp_path)
    assert settings.data_dir == tmp_path / "data"
    assert settings.database_url() == f"sqlite:///{tmp_path / 'data' / 'kimi-mcp.db'}"


def test_default_data_dir_is_the_platform_user_data_dir(tmp_path: Path) -> None:
    assert load_settings(launch_dir=tmp_path).data_dir == tmp_path / "xdg-data" / "kimi-mcp"


def test_relative_workspace_resolves_against_the_launch_dir(tmp_path: Path) -> None:
    (tmp_path / "proj").mkdir()
    settings = load_settings(overrides={"mcp": {"workspace": ["proj", str(tmp_path)]}}, launch_dir=tmp_path)
    assert settings.workspace_roots() == [tmp_path / "proj", tmp_path]


def test_redacted_settings_hide_every_secret(tmp_path: Path) -> None:
    _write(tmp_path / "kimi-mcp.toml", '[server]\nauth_tokens = ["tok-secret"]\n'
           '[providers.kimi]\napi_key = "sk-secret"\n'
           '[database]\nurl = "postgresql+psycopg://team:pg-secret@db:5432/kimi"\n'
           '[cluster]\nredis_url = "redis://:redis-secret@cache:6379/0"\n')
    shown = redacted(load_settings(launch_dir=tmp_path))
    assert "secret" not in str(shown)
    assert shown["cluster"]["redis_url"] == "redis://:***@cache:6379/0"
    assert shown["database"]["url"] == "postgresql+psycopg://team:***@db:5432/kimi"


def test_a_redis_url_without_a_redis_scheme_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    _write(tmp_path / "kimi-mcp.toml", '[cluster]\nredis_url = "cache.internal:6379"\n')
    with pytest.raises(ConfigError, match=r"cluster\.redis_url.*redis://127\.0\.0\.1:6379/0"):
        load_settings(launch_dir=tmp_path)


def test_an_unset_variable_in_a_provider_key_is_a_warning_and_the_provider_reads_that_variable(
        tmp_path: Path) -> None:
    _write(tmp_path / "kimi-mcp.toml", '[providers.kimi]\napi_key = "${MY_UNSET_KIMI_KEY}"\n'
           '[providers.groq]\napi_key = "Bearer ${ALSO_UNSET}"\n')
    settings = load_settings(launch_dir=tmp_path)
    assert settings.providers["kimi"].api_key is None
    assert settings.providers["kimi"].api_key_env == "MY_UNSET_KIMI_KEY"  # its 401 names it
    assert settings.providers["groq"].api_key is None
    assert any("providers.kimi.api_key" in w and "MY_UNSET_KIMI_KEY is not set" in w
               for w in settings.warnings)
    assert any("providers.groq.api_key" in w and "ALSO_UNSET" in w for w in settings.warnings)


def test_a_variable_set_to_the_empty_string_is_set_and_only_the_default_form_replaces_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIMI_REDIS_PASSWORD", "")
    monkeypatch.setenv("EMPTY_HOST", "")
    _write(tmp_path / "kimi-mcp.toml",
           '[cluster]\nredis_url = "redis://:${KIMI_REDIS_PASSWORD}@cache:6379/0"\n'
           '[server]\nhost = "${EMPTY_HOST:-127.0.0.3}"\n')
    settings = load_settings(launch_dir=tmp_path)
    assert settings.cluster.redis_url == "redis://:@cache:6379/0"
    assert settings.server.host == "127.0.0.3"


def test_a_bad_kimi_mcp_variable_is_named_not_the_config_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "x.toml", "[server]\nhost = '127.0.0.1'\n")
    monkeypatch.setenv("KIMI_MCP_SERVER__PORT", "notanint")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, launch_dir=tmp_path)
    message = str(caught.value)
    assert message.startswith("environment variable KIMI_MCP_SERVER__PORT: key 'server.port'")
    assert "x.toml" not in message
    monkeypatch.delenv("KIMI_MCP_SERVER__PORT")
    _write(tmp_path / ".env", "KIMI_MCP_CONTEXT__COMPRESS_AT=lots\n")
    with pytest.raises(ConfigError, match=r"\.env: KIMI_MCP_CONTEXT__COMPRESS_AT: key 'context\.compress_at'"):
        load_settings(path, launch_dir=tmp_path)
    monkeypatch.setenv("KIMI_MCP_SERVER__AUTH_TOKENS", "not-json")
    with pytest.raises(ConfigError, match=r"^environment variable KIMI_MCP_SERVER__AUTH_TOKENS: not valid JSON"):
        load_settings(path, launch_dir=tmp_path)
