"""`build_mcp(deps)`: the aggregating FastMCP server, its ledger middleware and `stats://`."""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types
from fastmcp import FastMCP
from fastmcp.exceptions import NotFoundError, ToolError
from fastmcp.server.completions import MAX_COMPLETION_VALUES, CompletionReference
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.server.transforms import GetToolNext, Transform, VersionSpec
from fastmcp.tools.base import Tool, ToolResult

from kimi_mcp import __version__
from kimi_mcp.config import is_home, root_refusal
from kimi_mcp.deps import Deps
from kimi_mcp.ledger.rows import ToolCallRow
from kimi_mcp.ledger.store import Pending
from kimi_mcp.mcp_calls import ToolCallGuard
from kimi_mcp.mcp_fastcall import FastCalls, Mount
from kimi_mcp.mcp_watch import ResourceWatch

if TYPE_CHECKING:
    from fastmcp.server.http import StarletteWithLifespan

log = logging.getLogger(__name__)

FAMILY_MODULES = {
    "memory": "kimi_mcp.servers.memory",
    "tasks": "kimi_mcp.servers.tasks",
    "thinking": "kimi_mcp.servers.thinking",
    "fs": "kimi_mcp.servers.fs",
    "json": "kimi_mcp.servers.jsonq",
}

INSTRUCTIONS = (
    "kimi-mcp: memory that recalls by meaning (memory_*), a task-master compatible board "
    "(tasks_*), sequential thinking (thinking_*), a workspace-confined filesystem (fs_*) and "
    "JSONPath queries (json_*). Results are capped; follow a tool's `truncated` hint to read on. "
    "Masked tool outputs in your context can be read back in full with memory_get."
)


def build_mcp(deps: Deps, warm_up: bool = False, calls: FastCalls | None = None) -> FastMCP:
    """The root server. With `warm_up`, the ledger opens in the background right after the
    client's `initialize` has been answered (stdio: the handshake must not wait for it).
    `calls` is told the families and the ledger, to answer plain tool calls directly."""
    ledger = LedgerMiddleware(deps, warm_up)
    middleware: list[Middleware] = [ledger]
    roots = None
    if warm_up and deps.settings.mcp.use_client_roots:
        roots = ClientRootsMiddleware(deps)
        middleware.append(roots)
    middleware.append(ToolCallGuard())  # innermost: the ledger records what the caller saw
    if calls is not None:
        calls.watch(ledger, roots)
    watch = ResourceWatch(deps)
    root = FastMCP(
        "kimi-mcp",
        instructions=INSTRUCTIONS,
        version=__version__,
        middleware=middleware,
        lifespan=watch.lifespan,
    )
    watch.install(root)
    completers: dict[tuple[str, str], Completer] = {
        ("stats://sessions/{session_id}", "session_id"): lambda typed: _session_ids(deps, typed),
    }
    for family in deps.settings.mcp.families:
        module = importlib.import_module(FAMILY_MODULES[family])  # only enabled families load
        build: Callable[[Deps], FastMCP] = module.build_server
        # a family may name its tools itself, so its resources keep their own URI scheme
        # (thinking://sessions/{id} rather than thinking://thinking/sessions/{id})
        tool_names = getattr(module, "MOUNT_TOOL_NAMES", None)
        child = build(deps)
        if deps.settings.mcp.read_only:
            child.add_transform(ReadOnlyTools())
        if tool_names:
            root.mount(child, tool_names=tool_names)
        else:
            root.mount(child, namespace=family)
        if calls is not None:
            calls.mount(Mount(child, None if tool_names else family, tool_names or {}))
        # a family may complete its resource templates' arguments: {(template, arg): fn}
        family_completers = getattr(module, "completers", None)
        if family_completers is not None:
            completers.update(family_completers(deps))
    _add_stats_resources(root, deps)
    _add_completions(root, completers)
    return root


class ReadOnlyTools(Transform):
    """`[mcp] read_only = true`: a family offers only the tools annotated `readOnlyHint` —
    the others are neither listed nor found (a call is an unknown tool), whatever the family."""

    async def list_tools(self, tools: Sequence[Tool]) -> Sequence[Tool]:
        return [tool for tool in tools if _reads_only(tool)]

    async def get_tool(self, name: str, call_next: GetToolNext, *,
                       version: VersionSpec | None = None) -> Tool | None:
        tool = await call_next(name, version=version)
        return tool if tool is not None and _reads_only(tool) else None


def _reads_only(tool: Tool) -> bool:
    return tool.annotations is not None and tool.annotations.read_only_hint is True


def http_app(root: FastMCP) -> StarletteWithLifespan:
    """The streamable HTTP transport of `root` at `/mcp`, for the composition root to mount.

    Every SSE stream starts with a priming event (an id, empty data and `retry`), so a client
    whose stream drops reconnects after `retry` ms with `Last-Event-ID` and gets what it missed
    (SEP-1699; clients of 2025-11-25 and later). Missed events are kept in memory, bounded in
    count and age. Host and Origin are checked by the app's own guard on every route.
    """
    from fastmcp.server.event_store import EventStore
    from key_value.aio.stores.memory import MemoryStore

    events = EventStore(storage=MemoryStore(max_entries_per_collection=SSE_KEPT_EVENTS),
                        max_events_per_stream=100, ttl=SSE_KEPT_SECONDS)
    return root.http_app(path="/mcp", host_origin_protection=False, event_store=events,
                         retry_interval=SSE_RETRY_MS)


SSE_RETRY_MS = 1000
SSE_KEPT_EVENTS = 5000
SSE_KEPT_SECONDS = 300

Completer = Callable[[str], list[str]]
UNKNOWN_TOOL = "unknown"  # tool and family of a recorded call of a tool that does not exist


def _add_completions(root: FastMCP, completers: dict[tuple[str, str], Completer]) -> None:
    """`completion/complete` for resource-template arguments: session ids by prefix (or by a
    session's name); any other reference gets no candidates, not an error."""

    @root.completion
    async def complete(ref: CompletionReference, argument: mcp_types.CompletionArgument,
                       context: mcp_types.CompletionContext | None) -> mcp_types.Completion | None:
        if not isinstance(ref, mcp_types.ResourceTemplateReference):
            return None
        completer = completers.get((ref.uri, argument.name))
        if completer is None:
            return None
        values = await anyio.to_thread.run_sync(completer, argument.value)
        return mcp_types.Completion(values=values[:MAX_COMPLETION_VALUES], total=len(values),
                                    has_more=len(values) > MAX_COMPLETION_VALUES)


def _session_ids(deps: Deps, typed: str) -> list[str]:
    wanted = typed.strip().lower()
    return [str(s["id"]) for s in deps.sessions.list()
            if str(s["id"]).lower().startswith(wanted) or wanted in str(s.get("name", "")).lower()]


class LedgerMiddleware(Middleware):
    """Records every tool call: tool, family, argument and result tokens, latency, error.

    Before the result goes back to the client, the call's row is durable: `Ledger.reserve`
    writes it to the spool (one `write()`, a few microseconds), so a client that closes the
    server at once, or a crash, loses no call. Counting tokens, finding the session and queuing
    the complete row run on a worker thread, off the call's critical path; `drain` waits for them.
    """

    def __init__(self, deps: Deps, warm_up: bool = False) -> None:
        self.deps = deps
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kimi-tool-ledger")
        self._warm_up = warm_up

    async def on_initialize(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        result = await call_next(context)
        if self._warm_up:
            self._warm_up = False
            self._pool.submit(self._open_ledger)
        return result

    def _open_ledger(self) -> None:
        try:
            self.deps.ledger.start()
            self.deps.mcp_session_id()
        except Exception:
            log.exception("could not open the ledger")

    async def on_call_tool(
        self,
        context: MiddlewareContext[Any],
        call_next: CallNext[Any, ToolResult],
    ) -> ToolResult:
        started = time.perf_counter()
        name = str(context.message.name)
        error: str | None = None
        result: ToolResult | None = None
        try:
            result = await call_next(context)
            return result
        except NotFoundError as exc:
            # a name no tool has is the client's text: it never becomes a family or a label
            name, error = UNKNOWN_TOOL, str(exc) or type(exc).__name__
            raise
        except Exception as exc:
            error = str(exc) or type(exc).__name__
            raise
        finally:
            self.record(name, context.message.arguments or {}, result, error, started)

    def record(self, name: str, arguments: dict[str, Any], result: ToolResult | None,
               error: str | None, started: float) -> None:
        """Record a call of `name` answered with `result` or refused with `error`, begun at
        `started` (`time.perf_counter()`): durable in the spool now, completed off the path."""
        latency = round((time.perf_counter() - started) * 1000, 3)
        pending = self._reserve(name, result, error, latency)
        if pending is not None:
            self._pool.submit(self._complete, pending, arguments, result)

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait (at most `timeout` s) until every call so far has its complete row queued."""
        try:
            self._pool.submit(lambda: None).result(timeout)
        except (TimeoutError, RuntimeError):
            return False
        return True

    def _reserve(self, name: str, result: ToolResult | None, error: str | None,
                 latency_ms: float) -> Pending[ToolCallRow] | None:
        try:
            is_error = error is not None or bool(getattr(result, "is_error", False))
            if is_error and error is None:
                error = _result_text(result)[:500]
            family = UNKNOWN_TOOL if name == UNKNOWN_TOOL else name.split("_", 1)[0]
            row = ToolCallRow(tool=name, family=family, latency_ms=latency_ms,
                              is_error=is_error, error=error)
            return self.deps.ledger.reserve(row)
        except Exception:
            log.exception("could not record the call of %s", name)
            return None

    def _complete(self, pending: Pending[ToolCallRow], arguments: dict[str, Any],
                  result: ToolResult | None) -> None:
        from kimi_mcp import tokens

        try:
            row = dataclasses.replace(
                pending.row,
                session_id=self.deps.mcp_session_id(),
                args_tokens=tokens.count_text(json.dumps(arguments, ensure_ascii=False, default=str)),
                result_tokens=tokens.count_text(_result_text(result)),
            )
            self.deps.ledger.complete(pending, row)
        except Exception:  # the reserved row is stored as it is
            log.exception("could not count the tokens of a call of %s", pending.row.tool)


def drain_tool_calls(server: FastMCP, timeout: float = 5.0) -> bool:
    """Wait until every tool call `server` answered has its complete row queued in the ledger
    (stdio calls this before closing the ledger). False when `timeout` passed first: the calls
    still counting keep their reserved rows."""
    return all(m.drain(timeout) for m in server.middleware if isinstance(m, LedgerMiddleware))


class ClientRootsMiddleware(Middleware):
    """Under stdio there is one client: the MCP roots it offers replace the workspace roots.

    Asked once, before the first tool call, and again after `notifications/roots/list_changed`.
    Roots are a classic-handshake feature (deprecated by protocol 2026-07-28); a client without
    them keeps the configured workspace.
    """

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self._asked = False

    @property
    def settled(self) -> bool:
        """Whether the client's roots were asked for since it last said they changed."""
        return self._asked

    async def on_notification(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        if context.method == "notifications/roots/list_changed":
            self._asked = False
        return await call_next(context)

    async def on_call_tool(self, context: MiddlewareContext[Any], call_next: CallNext[Any, ToolResult]) -> ToolResult:
        if not self._asked and context.fastmcp_context is not None:
            self._asked = True
            roots = await _client_roots(context.fastmcp_context)
            refusals = [r for root in roots if (r := root_refusal(root))]
            if refusals:
                self._asked = False  # asked again on the next call: the client may fix them
                raise ToolError(f"kimi-mcp refuses the client's roots: {refusals[0]}")
            for root in filter(is_home, roots):
                log.warning("the client's root %s is your whole home directory; open a "
                            "project directory instead", root)
            if roots:
                self.deps.roots[:] = roots
                log.info("workspace roots from the client: %s", ", ".join(map(str, roots)))
        return await call_next(context)


async def _client_roots(ctx: Any) -> list[Path]:
    import warnings

    session = ctx.session
    caps = getattr(getattr(session, "client_params", None), "capabilities", None)
    if caps is None or getattr(caps, "roots", None) is None:
        return []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = await session.list_roots()
    except Exception as exc:  # noqa: BLE001 - a client that cannot answer keeps the workspace
        log.warning("the client's roots could not be read: %s", exc)
        return []
    return _existing_dirs([str(root.uri) for root in result.roots])


def _existing_dirs(uris: list[str]) -> list[Path]:
    from urllib.parse import unquote, urlparse

    paths = []
    for raw in uris:
        uri = urlparse(raw)
        path = Path(unquote(uri.path)).expanduser()
        if uri.scheme == "file" and path.is_dir():
            paths.append(path.resolve())
    return paths


def _result_text(result: ToolResult | None) -> str:
    if result is None:
        return ""
    parts = []
    for block in result.content or ():
        text = getattr(block, "text", None)
        if isinstance(text, str):
            parts.append(text)
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, default=str))
    return "\n".join(parts)


def _add_stats_resources(root: FastMCP, deps: Deps) -> None:
    def dump(data: Any) -> str:
        return json.dumps(data, ensure_ascii=False, default=str)

    class _Stats:  # imports the ledger's queries on first read, not at server start
        def __getattr__(self, name: str) -> Any:
            from kimi_mcp import stats as module

            return getattr(module, name)

    stats = _Stats()

    @root.resource("stats://summary", name="stats_summary",
                   mime_type="application/json",
                   description="Ledger totals: requests, tokens, cost, savings, tool calls.")
    def summary() -> str:
        return dump(stats.summary(deps))

    @root.resource("stats://sessions", name="stats_sessions",
                   mime_type="application/json",
                   description="Every session with its totals.")
    def sessions() -> str:
        return dump(stats.sessions(deps))

    @root.resource("stats://sessions/{session_id}", name="stats_session",
                   mime_type="application/json",
                   description="One session: its totals, by model, and its latest requests.")
    def session(session_id: str) -> str:
        return dump(stats.session(deps, session_id))

    @root.resource("stats://tools", name="stats_tools",
                   mime_type="application/json",
                   description="MCP tool calls per tool: count, errors, latency, tokens.")
    def tools() -> str:
        return dump(stats.tools(deps))

    @root.resource("stats://providers", name="stats_providers",
                   mime_type="application/json",
                   description="Configured providers (key present yes/no, never the key) and their traffic.")
    def providers() -> str:
        return dump(stats.providers(deps))
