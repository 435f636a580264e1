"""The `kimi-mcp` command. The only module that reads argv; errors print one line and exit non-zero."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kimi_mcp import __version__
from kimi_mcp.config import Settings, load_settings
from kimi_mcp.errors import ConfigError, KimiError

log = logging.getLogger("kimi_mcp")


def _settings_args(p: argparse.ArgumentParser, workspace: bool = False) -> None:
    p.add_argument("--config", type=Path, help="TOML config file (default ./kimi-mcp.toml, "
                   "then ~/.config/kimi-mcp/config.toml)")
    if workspace:
        p.add_argument("--workspace", action="append", metavar="DIR",
                       help="an allowed root for the fs/json/tasks tools (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kimi-mcp",
        description="A token-saving companion for coding agents: MCP server + OpenAI-compatible proxy.",
    )
    parser.add_argument("--version", action="version", version=f"kimi-mcp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the HTTP server: proxy, dashboard, /mcp")
    _settings_args(serve, workspace=True)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--backfill", action="store_true",
                       help="read Continue's existing logs from the start, not only new lines")

    stdio = sub.add_parser("stdio", help="run the MCP server over stdio (for agents and editors)")
    _settings_args(stdio, workspace=True)

    status = sub.add_parser("status", help="is a server up, and the ledger's totals")
    _settings_args(status)

    sessions = sub.add_parser("sessions", help="list, create or delete sessions")
    _settings_args(sessions)
    ssub = sessions.add_subparsers(dest="action", required=True)
    ssub.add_parser("list")
    create = ssub.add_parser("create")
    create.add_argument("name")
    create.add_argument("--provider")
    create.add_argument("--model")
    delete = ssub.add_parser("delete")
    delete.add_argument("id")

    export = sub.add_parser("export", help="export requests and tool calls as CSV or JSON")
    _settings_args(export)
    export.add_argument("--format", choices=["csv", "json"], default="csv")
    export.add_argument("--session")
    export.add_argument("--since", help="UNIX seconds or ISO 8601")
    export.add_argument("--until", help="UNIX seconds or ISO 8601")
    export.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")

    config = sub.add_parser("config", help="show the effective settings, or check them")
    _settings_args(config)
    config.add_argument("action", choices=["show", "check"])

    for name, text in (("start", "start the server in the background"),
                       ("restart", "restart the background server")):
        p = sub.add_parser(name, help=text)
        _settings_args(p, workspace=True)
        p.add_argument("--host")
        p.add_argument("--port", type=int)
    stop = sub.add_parser("stop", help="stop the background server")
    _settings_args(stop)
    logs = sub.add_parser("logs", help="print the background server's log")
    _settings_args(logs)
    logs.add_argument("-n", "--lines", type=int, default=50)
    logs.add_argument("-f", "--follow", action="store_true")

    memory = sub.add_parser("memory", help="maintain the memory store")
    _settings_args(memory, workspace=True)
    memory.add_argument("action", choices=["reindex"])

    _add_init(sub)
    return parser


def _add_init(sub: Any) -> None:
    from kimi_mcp import clients  # imported here: `kimi-mcp stdio` starts without it

    clients.add_parser(sub)


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    server = {k: v for k in ("host", "port") if (v := getattr(args, k, None)) is not None}
    if server:
        overrides["server"] = server
    if getattr(args, "workspace", None):
        overrides["mcp"] = {"workspace": [str(Path(w).expanduser().resolve()) for w in args.workspace]}
    if getattr(args, "backfill", False):
        overrides["logwatch"] = {"backfill": True}
    return load_settings(getattr(args, "config", None), overrides)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_from(args)
        for warning in settings.warnings:
            print(f"kimi-mcp: warning: {warning}", file=sys.stderr)  # noqa: T201
        logging.getLogger("kimi_mcp").setLevel(settings.server.log_level.upper())
        code = int(COMMANDS[args.command](args, settings) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except BrokenPipeError:
        return _stdout_closed()
    except ConfigError as exc:
        print(f"kimi-mcp: config error: {exc}", file=sys.stderr)  # noqa: T201
        return exc.exit_code
    except KimiError as exc:
        print(f"kimi-mcp: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    except KeyboardInterrupt:
        return 130


def _stdout_closed() -> int:
    """The reader of our output went away (`kimi-mcp export | head -1`): as Python's docs advise
    for SIGPIPE, point stdout at devnull so the interpreter's last flush cannot fail, and exit
    quietly with the status a shell gives a process SIGPIPE ended (128 + 13)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141


def _lazy(module: str, name: str) -> Callable[[argparse.Namespace, Settings], int | None]:
    def run(args: argparse.Namespace, settings: Settings) -> int | None:
        import importlib

        fn: Callable[[argparse.Namespace, Settings], int | None]
        fn = getattr(importlib.import_module(module), name)
        return fn(args, settings)

    return run


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int | None]] = {
    "serve": _lazy("kimi_mcp.commands", "serve"),
    "stdio": _lazy("kimi_mcp.commands", "stdio"),
    "status": _lazy("kimi_mcp.commands", "status"),
    "sessions": _lazy("kimi_mcp.commands", "sessions"),
    "export": _lazy("kimi_mcp.commands", "export"),
    "config": _lazy("kimi_mcp.commands", "config"),
    "start": _lazy("kimi_mcp.daemon", "start"),
    "stop": _lazy("kimi_mcp.daemon", "stop"),
    "restart": _lazy("kimi_mcp.daemon", "restart"),
    "logs": _lazy("kimi_mcp.daemon", "logs"),
    "memory": _lazy("kimi_mcp.commands", "memory"),
    "init": _lazy("kimi_mcp.clients", "run"),
}


if __name__ == "__main__":
    sys.exit(main())
