"""What each `kimi-mcp` subcommand does, given parsed arguments and the settings."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import socket
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from kimi_mcp.config import Settings, redacted
from kimi_mcp.deps import Deps, Lazy, build_deps
from kimi_mcp.errors import ConfigError, KimiError

if TYPE_CHECKING:
    from kimi_mcp.catalog import Provider
    from kimi_mcp.llm import Completions
    from kimi_mcp.proxy.pipeline import Proxy


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _started_deps(settings: Settings) -> Deps:
    """The ledger and the memory engine, each opened when a command first touches it."""
    return build_deps(settings, lazy=True)


def check_port(settings: Settings) -> None:
    host, port = settings.server.host, settings.server.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise KimiError(f"port {port} on {host} is already in use: {_holder(settings)}, "
                                "or choose another port with --port") from None
            raise KimiError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _holder(settings: Settings) -> str:
    """Who holds the port, as far as we can tell, and how to stop it: `kimi-mcp stop` stops
    only the server `kimi-mcp start` left in this data dir."""
    import httpx

    from kimi_mcp.clients import base_url
    from kimi_mcp.daemon import running_pid

    try:
        health = httpx.get(f"{base_url(settings)}/health", timeout=1).json()
        ours = isinstance(health, dict) and "version" in health and "ledger" in health
    except (httpx.HTTPError, ValueError):
        ours = False
    if not ours:
        return "another program listens there; stop it"
    pid = running_pid(settings)
    if pid is not None:
        return f"the background kimi-mcp server (pid {pid}) holds it; `kimi-mcp stop` stops it"
    return ("a kimi-mcp server not started by `kimi-mcp start` (a `kimi-mcp serve` in a "
            "terminal, or one with another data dir) holds it; stop that process (Ctrl-C where "
            "it runs)")


def serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from kimi_mcp.app import check_bind, create_app

    check_bind(settings)
    check_port(settings)
    settings.checked_workspace_roots()
    deps = build_deps(settings)
    try:
        app = create_app(settings, deps)
        sys.stderr.write(
            f"kimi-mcp {_version()} on http://{settings.server.host}:{settings.server.port}/ "
            f"(dashboard /, proxy /v1, MCP /mcp; ledger {deps.ledger.path or 'database.url'})\n"
        )
        uvicorn.run(app, host=settings.server.host, port=settings.server.port,
                    log_level=settings.server.log_level, access_log=False, lifespan="on",
                    timeout_graceful_shutdown=5)
    finally:
        deps.close()
    return 0


def stdio(args: argparse.Namespace, settings: Settings) -> int:
    """MCP over stdio: stdout carries only JSON-RPC; every log line goes to stderr.

    The wire is claimed first: the front answers the handshake from its snapshot while the
    server stack is imported and built (kimi_mcp/stdio_front.py)."""
    from kimi_mcp.stdio_front import Front, Snapshot

    settings.checked_workspace_roots()  # before the wire is claimed: a refusal exits at once
    front = Front.claim(Snapshot.load(settings)).start()
    front.wait_for_handshake()

    import anyio
    import anyio.lowlevel

    from kimi_mcp.mcp_fastcall import FastCalls
    from kimi_mcp.server import build_mcp, drain_tool_calls
    from kimi_mcp.stdio import serve

    deps = build_deps(settings, lazy=True)
    proxies: list[Proxy] = []

    def completions() -> Completions:
        # the proxy's pipeline serves task planning and summaries; built on the first such call
        from kimi_mcp.proxy.completions import ProxyCompletions
        from kimi_mcp.proxy.pipeline import Proxy
        from kimi_mcp.upstream import Upstream

        proxy = Proxy(deps, Upstream(settings.upstream))
        proxy.start()
        proxies.append(proxy)
        return ProxyCompletions(lambda: proxy)

    deps.completions = Lazy(completions)
    calls = FastCalls()
    server = build_mcp(deps, warm_up=True, calls=calls)
    closed = threading.Event()

    def shutdown() -> None:
        """Every answered call gets its complete row and the ledger commits what is queued
        (bounded: what is left stays in the spool for the next start)."""
        if not closed.is_set():
            closed.set()
            drain_tool_calls(server, STDIO_DRAIN_S)
            deps.close()

    async def close_proxies() -> None:
        for proxy in proxies:
            await proxy.aclose()

    async def run() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_exit_on_signal, close_proxies, shutdown)
            front.serve_calls(calls, anyio.lowlevel.current_token(), tg.start_soon)
            try:
                await serve(server, front)  # returns at EOF on stdin
            finally:
                await close_proxies()
            tg.cancel_scope.cancel()

    try:
        anyio.run(run)
    finally:
        shutdown()
        front.release()
    return 0


STDIO_DRAIN_S = 5.0


async def _exit_on_signal(close_proxies: Callable[[], Awaitable[None]],
                          shutdown: Callable[[], None]) -> None:
    """On SIGTERM or SIGINT (how editors stop a server, stdin often left open): store what was
    answered, then exit. The stdin reader is a thread blocked in read(), which no cancellation
    interrupts, so the process ends with os._exit once the ledger is closed."""
    import signal

    import anyio

    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            logging.getLogger("kimi_mcp").info("signal %d: storing the ledger, then exiting", signum)
            with anyio.move_on_after(STDIO_DRAIN_S):
                await close_proxies()
            await anyio.to_thread.run_sync(shutdown)
            sys.stderr.flush()
            os._exit(0)


def status(args: argparse.Namespace, settings: Settings) -> int:
    import httpx

    from kimi_mcp import stats

    url = f"http://{settings.server.host}:{settings.server.port}"
    headers = {}
    if settings.server.auth_tokens:
        headers["authorization"] = f"Bearer {settings.server.auth_tokens[0].get_secret_value()}"
    try:
        health = httpx.get(f"{url}/health", timeout=2, headers=headers).json()
        _out(f"server: up at {url} (version {health.get('version')}, "
             f"uptime {health.get('uptime_s', 0):.0f} s)")
        up = True
    except (httpx.HTTPError, ValueError):
        _out(f"server: not running at {url}")
        up = False
    deps = _started_deps(settings)
    try:
        totals = stats.summary(deps)["totals"]
    finally:
        deps.close()
    cost = totals["cost_usd"]
    _out(f"ledger: {deps.ledger.path or 'database.url'}")
    _out(f"requests: {totals['requests']} ({totals['errors']} errors), "
         f"tokens in/out: {totals['prompt_tokens']}/{totals['completion_tokens']}, "
         f"saved: {totals['saved_mask_tokens'] + totals['saved_compress_tokens']}, "
         f"cost: {'n/a' if cost is None else f'${cost:.4f}'}")
    _out(f"tool calls: {totals['tool_calls']} ({totals['tool_errors']} errors)")
    return 0 if up else 3


def sessions(args: argparse.Namespace, settings: Settings) -> int:
    import anyio

    deps = _started_deps(settings)
    try:
        if args.action == "list":
            rows = deps.sessions.list()
            if not rows:
                _out("no sessions yet")
            for s in rows:
                t = s["totals"]
                mark = "*" if s["active"] else " "
                _out(f"{mark} {s['id']}  {s['name']:<32} {s.get('model') or '-':<36} "
                     f"{t['requests']:>6} req {t['prompt_tokens']:>10} tok in")
        elif args.action == "create":
            aliases = settings.routing.aliases  # an unknown provider or model stops here
            for warning in deps.catalog.check_choice(args.provider, args.model, aliases):
                sys.stderr.write(f"kimi-mcp: warning: {warning}\n")
            created = deps.sessions.create_sync(args.name, args.provider, args.model, activate=False)
            _out(created["id"])
        else:
            session_id = deps.sessions.resolve(args.id)
            if session_id is None:
                raise KimiError(f"no session with id or name {args.id!r} (see `kimi-mcp sessions list`)")
            anyio.run(deps.sessions.delete, session_id)
            _out(f"deleted {session_id}")
    finally:
        deps.close()
    return 0


def export(args: argparse.Namespace, settings: Settings) -> int:
    import anyio

    from kimi_mcp.dashboard.export import stream_export

    since, until = _time(args.since, "since"), _time(args.until, "until")
    deps = _started_deps(settings)
    target = None
    try:
        session = None
        if args.session:  # an id or a name; an unknown one is refused, not exported as nothing
            session = deps.sessions.resolve(args.session)
            if session is None:
                sys.stderr.write(f"kimi-mcp: no session with id or name {args.session!r}; "
                                 "`kimi-mcp sessions list` shows them\n")
                return 2
        if args.output:
            try:
                target = args.output.open("wb")
            except OSError as exc:
                raise KimiError(f"cannot write {args.output}: {exc.strerror}") from None
        sink = target or sys.stdout.buffer

        async def run() -> None:
            async for chunk in stream_export(deps, args.format, session, since, until):
                sink.write(chunk)

        anyio.run(run)  # a RequestError (a KimiError) prints one line and exits 1
        sink.flush()
    finally:
        if target is not None:
            target.close()
        deps.close()
    return 0


def _time(raw: str | None, name: str) -> float | None:
    from kimi_mcp.httputil import parse_time

    if raw is None:
        return None
    try:
        return parse_time(raw, f"--{name}")
    except ValueError as exc:
        raise KimiError(str(exc)) from None


def config(args: argparse.Namespace, settings: Settings) -> int:
    from kimi_mcp.catalog import Catalog

    if args.action == "show":
        data: dict[str, Any] = redacted(settings)
        # the providers as they take effect: each built-in preset with what the file changes
        data["providers"] = {p.name: _effective(p) for p in Catalog(settings).providers.values()}
        data["_config_file"] = str(settings.config_file) if settings.config_file else None
        _out(json.dumps(data, indent=2, default=str))
        return 0

    catalog = Catalog(settings)  # raises ConfigError for a provider without base_url
    for ref in [settings.routing.default_model] + [
        m for alias in settings.routing.aliases.values() for m in alias.models
    ]:
        try:
            catalog.resolve(ref)
        except KimiError as exc:
            raise ConfigError(f"routing: {exc}") from None
    keys = [p.name for p in catalog.providers.values() if p.has_key]
    _out(f"ok: {settings.config_file or 'built-in defaults'}; providers with a key: "
         f"{', '.join(keys) or 'none (set e.g. MOONSHOT_API_KEY)'}")
    return 0


def _effective(provider: Provider) -> dict[str, Any]:
    """A provider in the shape of its TOML section, never with its key or a secret header."""
    from kimi_mcp.ledger.rows import redact_headers
    from kimi_mcp.proxy.wire import drop_params

    key = "set" if provider.has_key else "missing" if provider.key_required else "not needed"
    return {
        "base_url": provider.base_url, "api_key": key, "api_key_env": provider.key_env,
        "format": provider.format, "timeout_s": provider.timeout_s,
        "max_retries": provider.max_retries, "rpm": provider.rpm, "tpm": provider.tpm,
        "queue_timeout_s": provider.queue_timeout_s, "drop_params": list(drop_params(provider)),
        "profile": provider.profile,
        "headers": redact_headers(provider.headers),
        "models": {m.id: {"context_window": m.context_window,
                          "max_output_tokens": m.max_output_tokens,
                          "input_per_mtok": m.prices.input if m.prices else None,
                          "output_per_mtok": m.prices.output if m.prices else None}
                   for m in provider.models.values()},
    }


def memory(args: argparse.Namespace, settings: Settings) -> int:
    deps = _started_deps(settings)
    try:
        from kimi_mcp.memory.engine import MemoryEngine
        from kimi_mcp.memory.reindex import reindex

        def progress(done: int, total: int) -> None:
            width = 30
            filled = width * done // total if total else width
            sys.stderr.write(f"\rreindex [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
            sys.stderr.flush()

        engine = deps.memory
        if not isinstance(engine, MemoryEngine):
            raise KimiError("this build has no memory engine to reindex")
        count = reindex(engine, progress)
        sys.stderr.write("\n")
        _out(f"reindexed {count} memories")
    finally:
        deps.close()
    return 0


def _version() -> str:
    from kimi_mcp import __version__

    return __version__
