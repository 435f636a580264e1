"""Settings: built-in defaults → TOML file → `.env` → environment (`KIMI_MCP_*`) → CLI flags.

This is the only module that reads the process environment. Strings in the TOML file expand
`${VAR}` (a variable set to "" is set: POSIX) and `${VAR:-default}` (unset or empty); an unknown
key, a wrong type or an unset `${VAR}` is a `ConfigError` that names the key and the file, or
the variable when the value came from the environment. One exception: an unset `${VAR}` in a
provider's `api_key` is a warning (`Settings.warnings`), and that provider has no key until the
variable is set (its calls get a 401 naming it), so commands that need no provider still run.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from kimi_mcp.errors import ConfigError

_log = logging.getLogger(__name__)

ENV_PREFIX = "KIMI_MCP_"
CONFIG_NAMES = ("kimi-mcp.toml",)
Family = Literal["memory", "tasks", "thinking", "fs", "json"]
FAMILIES: tuple[Family, ...] = ("memory", "tasks", "thinking", "fs", "json")
# the provider profiles a provider can inherit (kimi_mcp/proxy/profiles/presets.py has each one)
ProfileName = Literal["openai", "local", "kimi", "nvidia", "mistral", "openrouter",
                      "siliconflow", "groq", "cerebras", "gemini", "anthropic"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    auth_tokens: list[SecretStr] = Field(default_factory=list)
    max_body_mb: float = Field(default=32, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("auth_tokens")
    @classmethod
    def _tokens_have_values(cls, tokens: list[SecretStr]) -> list[SecretStr]:
        # an empty token would look like authentication while letting every request in
        if any(not t.get_secret_value().strip() for t in tokens):
            raise ValueError("a token is empty or only whitespace (is a ${VAR} unset?): give every "
                             "token a value, or remove the key to serve loopback without tokens")
        return tokens


class ModelSettings(Section):
    context_window: int | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    input_per_mtok: float | None = Field(default=None, ge=0)
    output_per_mtok: float | None = Field(default=None, ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)
    reasoning_per_mtok: float | None = Field(default=None, ge=0)


class ProviderSettings(Section):
    """A provider as written in TOML; `None` means "as the built-in preset says"."""

    base_url: str | None = None
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    format: Literal["openai", "gemini", "anthropic"] | None = None
    profile: ProfileName | None = None  # whose wire quirks it shares; None: its preset's or format's
    timeout_s: float | None = Field(default=None, gt=0)
    max_retries: int | None = Field(default=None, ge=0, le=10)
    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)
    queue_timeout_s: float | None = Field(default=None, ge=0)
    drop_params: list[str] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True
    models: dict[str, ModelSettings] = Field(default_factory=dict)


class AliasSettings(Section):
    strategy: Literal["cheapest", "fastest", "balanced"] = "balanced"
    models: list[str] = Field(default_factory=list)


class RoutingSettings(Section):
    default_model: str = "kimi/kimi-k2-0905-preview"
    aliases: dict[str, AliasSettings] = Field(default_factory=dict)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_cooldown_s: float = Field(default=30, gt=0)


class ContextSettings(Section):
    sanitize: bool = True
    memory_tags: bool = True
    first_sight: bool = True
    compression: bool = True
    mask_threshold_tokens: int = Field(default=75, ge=1)  # three placeholders (~25 tokens each)
    keep_last_turns: int = Field(default=5, ge=0)
    keep_read_turns: int = Field(default=2, ge=0)
    keep_output_turns: int = Field(default=1, ge=0)
    cached_price_ratio: float | None = Field(default=None, ge=0, le=1)
    mask_step_turns: int = Field(default=1, ge=1)
    compress_at: float = Field(default=0.85, gt=0, le=1)
    alert_thresholds: list[float] = Field(default_factory=lambda: [0.5, 0.8, 0.95])
    summary_model: str = ""


class McpSettings(Section):
    families: list[Family] = Field(default_factory=lambda: list(FAMILIES))
    workspace: str | list[str] = "."
    read_only: bool = False
    use_client_roots: bool = True


class MemorySettings(Section):
    qdrant_url: str = ""
    qdrant_api_key: SecretStr | None = None
    collection: str = "kimi_memories"
    embedder: Literal["minilm", "hash"] = "minilm"
    promote_after: int = Field(default=3, ge=1)
    promote_window_days: float = Field(default=7, gt=0)
    consolidate_threshold: float = Field(default=0.92, gt=0, le=1)


class TasksSettings(Section):
    llm_model: str = ""


class LogwatchSettings(Section):
    enabled: bool = True
    core_log: str = "~/.continue/logs/core.log"
    dev_data_dir: str = "~/.continue/dev_data"
    backfill: bool = False
    poll_interval_s: float = Field(default=1.0, gt=0)


class DatabaseSettings(Section):
    url: str = ""


class ClusterSettings(Section):
    """What several `serve` workers share beyond the database: rate limits and breakers."""

    redis_url: str = ""
    key_prefix: str = Field(default="kimi-mcp:", min_length=1)

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, url: str) -> str:
        if url and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("write a Redis URL such as redis://127.0.0.1:6379/0 (or rediss://, "
                             "unix://), or leave it empty for limits and breakers per worker")
        return url


class UpstreamSettings(Section):
    """The one HTTP client to providers (aiohttp's connection pool under httpx's API)."""

    max_connections: int = Field(default=256, ge=1)
    keepalive_expiry_s: float = Field(default=30.0, gt=0)


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("kimi-mcp", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",  # .env holds other tools' variables too; unknown TOML keys are checked below
        validate_assignment=True,
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    server: ServerSettings = Field(default_factory=ServerSettings)
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    context: ContextSettings = Field(default_factory=ContextSettings)
    mcp: McpSettings = Field(default_factory=McpSettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    tasks: TasksSettings = Field(default_factory=TasksSettings)
    logwatch: LogwatchSettings = Field(default_factory=LogwatchSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    upstream: UpstreamSettings = Field(default_factory=UpstreamSettings)

    _config_file: Path | None = PrivateAttr(default=None)
    _environ: dict[str, str] = PrivateAttr(default_factory=dict)
    _warnings: tuple[str, ...] = PrivateAttr(default=())
    _launch_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, dotenv_settings, _TomlSource(settings_cls))

    @property
    def config_file(self) -> Path | None:
        return self._config_file

    @property
    def launch_dir(self) -> Path:
        return self._launch_dir

    @property
    def warnings(self) -> tuple[str, ...]:
        """What loading found wrong but survivable, one line each (the CLI prints them)."""
        return self._warnings

    def env(self, name: str) -> str | None:
        """A variable from the environment (or `.env`) as it was when the settings loaded."""
        value = self._environ.get(name)
        return value if value else None

    def workspace_roots(self) -> list[Path]:
        raw = self.mcp.workspace
        items = [raw] if isinstance(raw, str) else list(raw)
        roots = []
        for item in items or ["."]:
            path = Path(item).expanduser()
            if not path.is_absolute():
                base = self._config_file.parent if self._config_file and item != "." else None
                path = (base or self._launch_dir) / path
            roots.append(path.resolve())
        return roots

    def checked_workspace_roots(self) -> list[Path]:
        """The workspace roots, refused (ConfigError) when one is the whole filesystem; a root
        that is the home directory itself is named on stderr (through the log)."""
        roots = self.workspace_roots()
        for root in roots:
            refusal = root_refusal(root)
            if refusal:
                raise ConfigError(refusal)
            if is_home(root):
                _log.warning("the workspace root %s is your whole home directory; pass a "
                             "project directory to keep the tools out of the rest of it", root)
        return roots

    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'kimi-mcp.db'}"


# ---- the TOML source ------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_toml_path: Path | None = None
_toml_environ: Mapping[str, str] = {}
_toml_warnings: list[str] = []


class _TomlSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if _toml_path is None:
            return {}
        return read_toml(_toml_path, _toml_environ, _toml_warnings)


def read_toml(path: Path, environ: Mapping[str, str],
              warnings: list[str] | None = None) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    unknown = sorted(set(data) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(f"{path}: unknown key '{unknown[0]}'")
    providers = data.get("providers")
    if isinstance(providers, dict):
        data["providers"] = {name: _without_unset_key(name, section, environ, path, warnings)
                             for name, section in providers.items()}
    result = _expand(data, environ, path, ())
    assert isinstance(result, dict)
    return result


def _without_unset_key(name: str, section: Any, environ: Mapping[str, str], path: Path,
                       warnings: list[str] | None) -> Any:
    """A provider's section without an `api_key` whose `${VAR}` is unset: a warning, not an
    error, so `stdio`, `status`, `stop`… run without every provider's key (a Codex or editor
    starts MCP servers without the shell's environment). `api_key = "${VAR}"` then reads VAR
    like `api_key_env = "VAR"`, so the provider's 401 names the variable."""
    if not isinstance(section, dict) or not isinstance(section.get("api_key"), str):
        return section
    raw = section["api_key"]
    unset = [m.group(1) for m in _VAR.finditer(raw) if m.group(2) is None and m.group(1) not in environ]
    if not unset:
        return section
    kept = {k: v for k, v in section.items() if k != "api_key"}
    whole = _VAR.fullmatch(raw)
    if whole is not None and "api_key_env" not in kept:
        kept["api_key_env"] = unset[0]
    if warnings is not None:
        warnings.append(f"{path}: key 'providers.{name}.api_key' uses ${{{unset[0]}}} but "
                        f"{unset[0]} is not set; the {name} provider has no key until it is")
    return kept


def _expand(value: Any, environ: Mapping[str, str], path: Path, key: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, environ, path, (*key, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, environ, path, (*key, str(i))) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = environ.get(name)
        if default is not None:  # ${VAR:-default}: unset or empty
            return found or default
        if found is not None:  # ${VAR}: set, even to ""
            return found
        raise ConfigError(
            f"{path}: key '{'.'.join(key)}' uses ${{{name}}} but {name} is not set; "
            f"set it or write ${{{name}:-default}}"
        )

    return _VAR.sub(substitute, value)


def find_config_file(explicit: Path | None, launch_dir: Path) -> Path | None:
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"{explicit}: config file not found")
        return explicit.resolve()
    for name in CONFIG_NAMES:
        candidate = launch_dir / name
        if candidate.is_file():
            return candidate.resolve()
    user = Path(platformdirs.user_config_dir("kimi-mcp", appauthor=False)) / "config.toml"
    return user if user.is_file() else None


def load_settings(
    config: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    launch_dir: Path | None = None,
) -> Settings:
    """Build the one Settings object; every failure is a `ConfigError` naming key and file."""
    global _toml_path, _toml_environ, _toml_warnings
    here = launch_dir or Path.cwd()
    path = find_config_file(config, here)
    dotenv = _dotenv(here / ".env")
    environ = {**dotenv, **os.environ}
    # where each KIMI_MCP_ variable came from, to name it when its value is wrong
    env_origin = {**{k.upper(): f"{here / '.env'}: {k}" for k in dotenv if k.upper().startswith(ENV_PREFIX)},
                  **{k.upper(): f"environment variable {k}" for k in os.environ
                     if k.upper().startswith(ENV_PREFIX)}}
    warnings: list[str] = []
    _toml_path, _toml_environ, _toml_warnings = path, environ, warnings
    try:
        settings = Settings(**dict(overrides or {}), _env_file=here / ".env")  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, env_origin)) from None
    except ValueError as exc:  # the env/dotenv sources raise plain ValueError on bad JSON
        raise ConfigError(_bad_json(exc, env_origin)) from None
    finally:
        _toml_path, _toml_environ, _toml_warnings = None, {}, []
    settings._config_file = path
    settings._environ = environ
    settings._warnings = tuple(dict.fromkeys(warnings))  # the source may be read more than once
    settings._launch_dir = here
    return settings


def _dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values  # python-dotenv, which pydantic-settings uses for .env

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


_SECRETISH = re.compile(r"key|token|secret|password|url", re.I)  # URLs may hold a password


def _describe(exc: ValidationError, path: Path | None, env_origin: Mapping[str, str]) -> str:
    lines = []
    for error in exc.errors()[:5]:
        key = ".".join(str(p) for p in error["loc"]) or "(root)"
        where = _origin(error["loc"], env_origin) or (str(path) if path else "settings")
        if error["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key '{key}'")
        else:
            shown = "" if _SECRETISH.search(key) else f" (got {error.get('input')!r})"
            lines.append(f"{where}: key '{key}': {error['msg']}{shown}")
    return "; ".join(lines)


def _origin(loc: tuple[int | str, ...], env_origin: Mapping[str, str]) -> str | None:
    """The `KIMI_MCP_…` variable that set this key (`KIMI_MCP_SERVER__PORT`, or the JSON of a
    whole section, `KIMI_MCP_SERVER`), when one did: the environment beats the file."""
    parts = [str(p).upper() for p in loc]
    for end in range(len(parts), 0, -1):
        found = env_origin.get(ENV_PREFIX + "__".join(parts[:end]))
        if found is not None:
            return found
    return None


def _bad_json(exc: ValueError, env_origin: Mapping[str, str]) -> str:
    """`error parsing value for field "server" …` with the variables that set that field."""
    field = re.search(r'field "(\w+)"', str(exc))
    name = ENV_PREFIX + (field.group(1).upper() if field else "")
    origins = [o for k, o in env_origin.items() if field and (k == name or k.startswith(name + "__"))]
    where = "; ".join(origins) or "environment"
    return f"{where}: not valid JSON (a list or table is written as JSON, e.g. '[\"a\", \"b\"]'): {exc}"


_USERINFO = re.compile(r"^([a-z][a-z0-9+.-]*://[^:/@]*):[^@/]*@", re.I)


def without_password(url: str) -> str:
    """`url` with the password of its user info (`scheme://user:secret@host`) shown as `***`."""
    return _USERINFO.sub(r"\1:***@", url)


def redacted(settings: Settings) -> dict[str, Any]:
    """The settings as plain data with every secret replaced by `***`."""
    data = settings.model_dump(mode="json")

    def scrub(node: Any, key: str = "") -> Any:
        if isinstance(node, dict):
            return {k: scrub(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [scrub(v, key) for v in node]
        if key in {"api_key", "auth_tokens", "qdrant_api_key"} and node:
            return "***"
        if key in {"redis_url", "url"} and isinstance(node, str):
            return without_password(node)
        return node

    result = scrub(data)
    assert isinstance(result, dict)
    return result


def root_refusal(root: Path | str) -> str | None:
    """Why `root` cannot be a workspace root (it is the whole filesystem), else None."""
    path = Path(root)
    if path.resolve() == Path(path.anchor or os.sep).resolve():
        return (f"the workspace root {path} is the whole filesystem; pass a project directory "
                "(--workspace /path/to/project, [mcp] workspace, or the client's roots)")
    return None


def is_home(root: Path | str) -> bool:
    """Whether `root` is the user's home directory itself (allowed, but worth a warning)."""
    try:
        return Path(root).resolve() == Path.home().resolve()
    except RuntimeError:  # no home directory can be determined
        return False
