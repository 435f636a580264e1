"""`kimi-mcp init claude-code | codex`: point a coding agent's model calls at the proxy and
register kimi-mcp's MCP server with it, approved.

    claude-code  <workspace>/.mcp.json                    the MCP server (project scope)
                 <workspace>/.claude/settings.local.json  `enabledMcpjsonServers: ["kimi-mcp"]`
                     (the approval: Claude Code 2.1 reads it in a trusted folder, or in a git
                     repository that does not track the file; elsewhere the server stays
                     "pending" until the folder is trusted), and `env`: ANTHROPIC_BASE_URL at the proxy,
                     ANTHROPIC_MODEL and ANTHROPIC_DEFAULT_{OPUS,SONNET,HAIKU}_MODEL = the model,
                     ANTHROPIC_AUTH_TOKEN (a placeholder, or `apiKeyHelper` reading
                     $KIMI_MCP_TOKEN when `server.auth_tokens` is set)
    codex        $CODEX_HOME/config.toml (~/.codex)       `[model_providers.kimi-mcp]` with
                     `wire_api = "responses"` at the proxy's /v1, `model_provider` and `model`,
                     and `[mcp_servers.kimi-mcp]` (`required = true`: the first turn has the tools)

Codex's file is merged with tomlkit, so its comments and other tables stay as they were.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kimi_mcp.config import Settings
from kimi_mcp.errors import RequestError

NAME = "kimi-mcp"
PLACEHOLDER_TOKEN = "kimi-mcp"  # the proxy holds the providers' keys; this only stops a login prompt
STARTUP_TIMEOUT_S = 60
MODEL_VARIABLES = ("ANTHROPIC_MODEL", "ANTHROPIC_DEFAULT_OPUS_MODEL", "ANTHROPIC_DEFAULT_SONNET_MODEL",
                   "ANTHROPIC_DEFAULT_HAIKU_MODEL", "ANTHROPIC_SMALL_FAST_MODEL")


class InitError(RequestError):
    """`kimi-mcp init` cannot write a client's config; the message names the file and why."""


# Claude Code ignores a project's settings.local.json for MCP approvals while the folder is not
# trusted, unless git says the file is local (untracked); trusting a folder is the user's call
APPROVAL_NOTE = ("Claude Code applies the approval in .claude/settings.local.json once the folder "
                 "is trusted (its first start there asks) or, before that, in a git repository "
                 "that does not track the file; until then `claude mcp list` shows kimi-mcp pending")


def claude_settings(settings: Settings, base_url: str, model: str) -> Callable[[Any], Any]:
    """The merge of `.claude/settings.local.json` (other keys, servers and variables kept)."""

    def merge(doc: Any) -> dict[str, Any]:
        doc = {} if doc is None else doc
        if not isinstance(doc, dict):
            raise InitError("expected a JSON object at the top")
        enabled = doc.get("enabledMcpjsonServers") or []
        if not isinstance(enabled, list):
            raise InitError("'enabledMcpjsonServers' is not a list")
        env = doc.get("env") or {}
        if not isinstance(env, dict):
            raise InitError("'env' is not an object")
        ours = {"ANTHROPIC_BASE_URL": base_url, **dict.fromkeys(MODEL_VARIABLES, model)}
        out = {**doc, "enabledMcpjsonServers": [*[s for s in enabled if s != NAME], NAME]}
        if settings.server.auth_tokens:
            env = {k: v for k, v in env.items() if k != "ANTHROPIC_AUTH_TOKEN"}
            out["apiKeyHelper"] = "printenv KIMI_MCP_TOKEN"
        else:
            ours["ANTHROPIC_AUTH_TOKEN"] = PLACEHOLDER_TOKEN
        out["env"] = {**env, **ours}
        return out

    return merge


def codex_home(settings: Settings) -> Path:
    found = settings.env("CODEX_HOME")
    return Path(found).expanduser() if found else Path.home() / ".codex"


def codex_config(settings: Settings, base_url: str, model: str,
                 server: dict[str, Any]) -> Callable[[Any], Any]:
    """The merge of Codex's `config.toml` (a tomlkit document: comments and order kept)."""
    import tomlkit

    def merge(doc: Any) -> Any:
        doc = tomlkit.document() if doc is None else doc
        if not isinstance(doc, dict):
            raise InitError("expected a TOML table at the top")
        doc["model"] = model
        doc["model_provider"] = NAME
        provider = tomlkit.table()
        provider.update({"name": NAME, "base_url": f"{base_url}/v1", "wire_api": "responses"})
        if settings.server.auth_tokens:
            provider["env_key"] = "KIMI_MCP_TOKEN"
        _table(doc, "model_providers")[NAME] = provider
        entry = tomlkit.table()
        entry.update(server)
        _table(doc, "mcp_servers")[NAME] = entry
        return doc

    return merge


def _table(doc: Any, key: str) -> Any:
    import tomlkit

    found = doc.get(key)
    if found is None:
        found = tomlkit.table(is_super_table=True)
        doc[key] = found
    elif not isinstance(found, dict):
        raise InitError(f"'{key}' is not a table")
    return found


def codex_server(command: str, args: list[str], url: str | None, token: bool) -> dict[str, Any]:
    """Codex's `[mcp_servers.kimi-mcp]`: a stdio command, or the running server's /mcp URL."""
    # `required`: Codex holds the session until the server is up (else a turn can start before
    # the tools arrive); a cold Python start can pass Codex's default 10 s on a busy machine
    if url is None:
        return {"command": command, "args": args, "required": True,
                "startup_timeout_sec": STARTUP_TIMEOUT_S}
    entry: dict[str, Any] = {"url": url, "required": True}
    if token:
        entry["bearer_token_env_var"] = "KIMI_MCP_TOKEN"
    return entry
