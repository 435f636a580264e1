"""`kimi-mcp init <client>`: register kimi-mcp with an MCP client, merging into its config.

Files written (`--print` writes nothing and shows them instead):

    continue     <workspace>/.continue/mcpServers/kimi-mcp.yaml   the MCP server block
                 <workspace>/.continue/models/kimi-mcp.yaml       models through the proxy
    claude       Claude Desktop's claude_desktop_config.json (per OS)
    cursor       <workspace>/.cursor/mcp.json  (--global: ~/.cursor/mcp.json)
    claude-code  <workspace>/.mcp.json, <workspace>/.claude/settings.local.json  (see agents.py)
    codex        $CODEX_HOME/config.toml (~/.codex/config.toml)                 (see agents.py)

An existing file is parsed and merged (other servers, models and keys stay); it is copied to a
timestamped `.bak` first. A file that cannot be parsed is never overwritten.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kimi_mcp import agents
from kimi_mcp.agents import InitError
from kimi_mcp.config import Settings
from kimi_mcp.errors import KimiError

NAME = "kimi-mcp"
CLIENTS = ("continue", "claude", "cursor", "claude-code", "codex")
MODEL_PREFIX = "kimi-mcp: "


def add_parser(sub: Any) -> None:
    p = sub.add_parser("init", help="register kimi-mcp with Continue, Claude Desktop, Cursor, "
                                    "Claude Code or Codex (the agents' model calls go through the proxy)")
    p.add_argument("client", choices=CLIENTS)
    p.add_argument("--print", action="store_true", dest="print_only",
                   help="show the configuration instead of writing it")
    p.add_argument("--workspace", action="append", metavar="DIR",
                   help="the project the tools work in (default: the current directory)")
    p.add_argument("--http", action="store_true",
                   help="register the running server's URL (/mcp) instead of a stdio command")
    p.add_argument("--global", action="store_true", dest="global_",
                   help="cursor: write ~/.cursor/mcp.json instead of the project's .cursor/mcp.json")
    p.add_argument("--model", metavar="REF",
                   help="claude-code, codex: the model the agent uses through the proxy "
                        "(default: routing.default_model)")
    p.add_argument("--config", type=Path, help="TOML config file of kimi-mcp")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if getattr(args, "model", None):  # checked as the proxy will resolve it: a typo fails here
        from kimi_mcp.catalog import Catalog

        for warning in Catalog(settings).check_choice(None, args.model, settings.routing.aliases):
            sys.stderr.write(f"kimi-mcp: warning: {warning}\n")
    plan = build_plan(args.client, settings, http=args.http, global_=getattr(args, "global_", False),
                      model=getattr(args, "model", None))
    if args.print_only:
        for target in plan:
            sys.stdout.write(f"# {target.path}\n{target.render(target.merge(None))}\n")
        return 0
    for target in plan:
        outcome = write(target)
        sys.stderr.write(f"kimi-mcp: {outcome}\n")
    if args.client == "claude-code":  # .mcp.json servers, stdio or --http, need the approval
        sys.stderr.write(f"kimi-mcp: note: {agents.APPROVAL_NOTE}\n")
    return 0


# ---- what gets written ---------------------------------------------------------------------------

@dataclass
class Target:
    path: Path
    fmt: str  # json | yaml | toml
    merge: Callable[[Any], Any]  # existing parsed document (or None) -> new document

    def render(self, doc: Any) -> str:
        if self.fmt == "json":
            return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        if self.fmt == "toml":
            import tomlkit

            return tomlkit.dumps(doc)
        import yaml

        return str(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100))

    def parse(self, text: str) -> Any:
        if not text.strip():
            return None
        if self.fmt == "json":
            return json.loads(text)
        if self.fmt == "toml":
            import tomlkit

            return tomlkit.parse(text)
        import yaml

        return yaml.safe_load(text)


def stdio_command(workspace: Path, config: Path | None) -> tuple[str, list[str]]:
    """The absolute command that starts `kimi-mcp stdio` (clients do not share our PATH, nor
    our working directory: the config file this init read goes in as an absolute --config)."""
    exe = shutil.which(NAME)
    args = ["stdio", *(["--config", str(config.resolve())] if config else []),
            "--workspace", str(workspace)]
    if exe:
        return str(Path(exe).resolve()), args
    return sys.executable, ["-m", "kimi_mcp", *args]


def base_url(settings: Settings) -> str:
    host = settings.server.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.server.port}"


def server_entry(client: str, settings: Settings, workspace: Path, http: bool) -> dict[str, Any]:
    if http:
        url = f"{base_url(settings)}/mcp"
        entry: dict[str, Any] = {"url": url}
        if client == "claude-code":
            entry = {"type": "http", "url": url}
        elif client == "continue":
            entry = {"name": NAME, "type": "streamable-http", "url": url}
        if settings.server.auth_tokens:  # the token itself never goes into a config file
            entry.update(_token_header(client))
        return entry
    command, args = stdio_command(workspace, settings.config_file)
    entry = {"command": command, "args": args, "env": {}}
    if client == "continue":
        entry = {"name": NAME, "type": "stdio", **entry, "cwd": str(workspace)}
    return entry


def _token_header(client: str) -> dict[str, Any]:
    """Each client's own way to read the bearer token from the environment or its secrets."""
    if client == "continue":
        return {"requestOptions": {"headers": {"Authorization": "Bearer ${{ secrets.KIMI_MCP_TOKEN }}"}}}
    if client == "cursor":
        return {"headers": {"Authorization": "Bearer ${env:KIMI_MCP_TOKEN}"}}
    return {"headers": {"Authorization": "Bearer ${KIMI_MCP_TOKEN}"}}


def claude_desktop_path() -> Path:
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "Claude" / "claude_desktop_config.json"
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", home / "AppData" / "Roaming")) / "Claude" / "claude_desktop_config.json"
    config = os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    return Path(config) / "Claude" / "claude_desktop_config.json"


def build_plan(client: str, settings: Settings, *, http: bool = False, global_: bool = False,
               model: str | None = None) -> list[Target]:
    workspace = settings.workspace_roots()[0]
    model = model or settings.routing.default_model
    if client == "codex":
        command, args = stdio_command(workspace, settings.config_file)
        server = agents.codex_server(command, args, f"{base_url(settings)}/mcp" if http else None,
                                     bool(settings.server.auth_tokens))
        return [Target(agents.codex_home(settings) / "config.toml", "toml",
                       agents.codex_config(settings, base_url(settings), model, server))]
    entry = server_entry(client, settings, workspace, http)
    if client == "continue":
        return [
            Target(workspace / ".continue" / "mcpServers" / f"{NAME}.yaml", "yaml",
                   lambda doc: merge_continue_block(doc, "mcpServers", [entry])),
            Target(workspace / ".continue" / "models" / f"{NAME}.yaml", "yaml",
                   lambda doc: merge_continue_block(doc, "models", continue_models(settings))),
        ]
    if client == "claude":
        if http:
            raise InitError("Claude Desktop starts MCP servers as commands only; drop --http")
        path = claude_desktop_path()
    elif client == "cursor":
        path = (Path.home() if global_ else workspace) / ".cursor" / "mcp.json"
    else:
        path = workspace / ".mcp.json"
    plan = [Target(path, "json", lambda doc: merge_mcp_servers(doc, entry, path))]
    if client == "claude-code":
        plan.append(Target(workspace / ".claude" / "settings.local.json", "json",
                           agents.claude_settings(settings, base_url(settings), model)))
    return plan


def continue_models(settings: Settings) -> list[dict[str, Any]]:
    """One Continue model per configured model, all through the proxy's /v1."""
    from kimi_mcp.catalog import Catalog

    catalog = Catalog(settings)
    refs: list[str] = []
    for provider in catalog.providers.values():
        if provider.ready:  # it has its key, or takes none (a local server)
            refs.extend(f"{provider.name}/{m}" for m in provider.models)
    default = settings.routing.default_model
    refs = [default, *[r for r in refs if r != default]] if default else refs
    models = []
    for alias in settings.routing.aliases:
        models.append(_continue_model(alias, None, settings))
    for ref in refs:
        try:
            window: int | None = catalog.resolve(ref).model.context_window
        except KimiError:
            window = None
        models.append(_continue_model(ref, window, settings))
    return models


def _continue_model(ref: str, window: int | None, settings: Settings) -> dict[str, Any]:
    model: dict[str, Any] = {
        "name": f"{MODEL_PREFIX}{ref}", "provider": "openai", "model": ref,
        "apiBase": f"{base_url(settings)}/v1",
        "apiKey": "${{ secrets.KIMI_MCP_TOKEN }}" if settings.server.auth_tokens else "kimi-mcp",
        "roles": ["chat", "edit", "apply", "summarize"],
        "capabilities": ["tool_use"],
    }
    if window:
        model["defaultCompletionOptions"] = {"contextLength": window}
    return model


# ---- merging -------------------------------------------------------------------------------------

def merge_continue_block(doc: Any, key: str, ours: list[dict[str, Any]]) -> dict[str, Any]:
    """A Continue block file (`name`, `version`, `schema: v1`, and a list under `key`)."""
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise InitError("expected a YAML mapping at the top")
    items = doc.get(key) or []
    if not isinstance(items, list):
        raise InitError(f"'{key}' is not a list")
    names = {item["name"] for item in ours}
    kept = [i for i in items if not (isinstance(i, dict) and (
        i.get("name") in names or str(i.get("name", "")).startswith(MODEL_PREFIX)))]
    result = {"name": doc.get("name", NAME if key == "mcpServers" else f"{NAME} models"),
              "version": doc.get("version", "0.0.1"), "schema": doc.get("schema", "v1")}
    result.update({k: v for k, v in doc.items() if k not in result and k != key})
    result[key] = kept + ours
    return result


def merge_mcp_servers(doc: Any, entry: dict[str, Any], path: Path) -> dict[str, Any]:
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise InitError("expected a JSON object at the top")
    servers = doc.get("mcpServers", {})
    if not isinstance(servers, dict):
        raise InitError("'mcpServers' is not an object")
    return {**doc, "mcpServers": {**servers, NAME: entry}}


def write(target: Target) -> str:
    path = target.path
    try:
        old_text = path.read_text(encoding="utf-8") if path.exists() else None
    except OSError as exc:
        raise InitError(f"cannot read {path}: {exc.strerror}") from None
    import tomlkit.exceptions
    import yaml

    try:
        existing = target.parse(old_text) if old_text is not None else None
    except (ValueError, yaml.YAMLError, tomlkit.exceptions.ParseError) as exc:
        raise InitError(f"{path} is not valid {target.fmt.upper()} ({_first_line(exc)}); "
                        "fix or move it, it was left unchanged") from None
    if old_text is not None and not os.access(path, os.W_OK):
        raise InitError(f"cannot write {path}: permission denied; it was left unchanged")
    try:
        new_text = target.render(target.merge(existing))
    except InitError as exc:
        raise InitError(f"{path}: {exc}; it was left unchanged") from None
    if new_text == old_text:
        return f"{path} is already up to date"
    backup = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if old_text is not None:
            backup = path.with_name(f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}.bak")
            shutil.copy2(path, backup)
        tmp = path.with_name(f".{path.name}.kimi-mcp.tmp")
        tmp.write_text(new_text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise InitError(f"cannot write {path}: {exc.strerror or exc}") from None
    return f"wrote {path}" + (f" (backup: {backup.name})" if backup else "")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
