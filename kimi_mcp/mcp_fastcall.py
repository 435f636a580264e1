"""`tools/call` on the stdio front's fast path: the family's own tool run directly, answered in
the wire shape FastMCP and the SDK would give, recorded and guarded as every call is.

FastMCP's way to a tool goes through the root's middleware chain, a request context, an
OpenTelemetry span, provider and transform lookups (several per call) and the mounted child's
own `call_tool`: over a millisecond before the tool runs. What a plain call needs is less:

1. the tool, looked up once per name in the family that defines it (`Mount`);
2. the arguments read by its public schema (`mcp_calls.prepared`, as `ToolCallGuard` does);
3. the tool's own `run` (validation by its signature, the body, the result conversion);
4. a failure turned into the error result `mcp_calls.refusal` words (as `ToolCallGuard` does);
5. the result shaped for the negotiated protocol version by the SDK's own sieve;
6. the call recorded by the `LedgerMiddleware` of the server (`record`), before the answer.

Anything else — a tool this does not know, a call with a progress token or a task, the first
call while the client's roots are still to be asked for — goes the ordinary way (`takes`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mcp_types
from fastmcp import FastMCP
from fastmcp.tools.base import RawStructuredToolResult, Tool, ToolResult
from mcp_types.methods import serialize_server_result

from kimi_mcp.mcp_calls import prepared, refusal

if TYPE_CHECKING:
    from kimi_mcp.server import ClientRootsMiddleware, LedgerMiddleware


@dataclass(frozen=True)
class Mount:
    """A family as mounted: its server, and its public tool names by local name."""

    server: FastMCP
    namespace: str | None
    tool_names: Mapping[str, str]

    def local_name(self, public: str) -> str | None:
        for local, name in self.tool_names.items():
            if name == public:
                return local
        if self.namespace and public.startswith(f"{self.namespace}_"):
            return public[len(self.namespace) + 1:]
        return None


class FastCalls:
    """Direct tool calls for the stdio front; `build_mcp` fills it in (`mount`, `watch`)."""

    def __init__(self) -> None:
        self._mounts: list[Mount] = []
        self._tools: dict[str, Tool | None] = {}
        self._ledger: LedgerMiddleware | None = None
        self._roots: ClientRootsMiddleware | None = None

    def mount(self, mount: Mount) -> None:
        self._mounts.append(mount)

    def watch(self, ledger: LedgerMiddleware, roots: ClientRootsMiddleware | None) -> None:
        """The recorder every answered call goes to, and the roots that must be asked first."""
        self._ledger = ledger
        self._roots = roots

    def takes(self, name: str, params: Mapping[str, Any]) -> bool:
        """Whether this call can go the fast way (else the ordinary one, with the same answer)."""
        if self._ledger is None or (self._roots is not None and not self._roots.settled):
            return False
        if not set(params) <= {"name", "arguments", "_meta"}:
            return False
        meta = params.get("_meta")
        if meta is not None and (not isinstance(meta, dict) or "progressToken" in meta):
            return False
        arguments = params.get("arguments")
        if arguments is not None and not isinstance(arguments, dict):
            return False
        return self._tools.get(name, True) is not None and any(
            m.local_name(name) is not None for m in self._mounts)

    async def answer(self, name: str, arguments: dict[str, Any], version: str) -> dict[str, Any]:
        """The `result` of the JSON-RPC answer to a call of tool `name` on a `version` session."""
        started = time.perf_counter()
        tool = await self._tool(name)
        assert tool is not None and self._ledger is not None, "takes() said yes"
        result: ToolResult | None = None
        error: str | None = None
        try:
            result = await tool._run(prepared(arguments, tool.parameters))
        except Exception as exc:  # noqa: BLE001 - worded as ToolCallGuard words it
            error = refusal(name, tool.parameters, exc)
        finally:
            self._ledger.record(name, arguments, result, error, started)
        if result is None:
            wire = mcp_types.CallToolResult(
                content=[mcp_types.TextContent(type="text", text=error or "")], is_error=True)
        else:
            wire = _wire_result(result)
        dumped = wire.model_dump(by_alias=True, mode="json", exclude_none=True)
        return serialize_server_result("tools/call", version, dumped)

    async def _tool(self, name: str) -> Tool | None:
        if name not in self._tools:
            found: Tool | None = None
            for mount in self._mounts:
                local = mount.local_name(name)
                if local is not None:
                    found = await mount.server.get_tool(local)
                    if found is not None:
                        break
            self._tools[name] = found
        return self._tools[name]


def _wire_result(result: ToolResult) -> mcp_types.CallToolResult:
    """As FastMCP's `_on_call_tool` shapes a result for a handshake-era session: structured
    content that is not an object goes under `result`, as the listed output schema says."""
    if isinstance(result, RawStructuredToolResult) or (
            result.structured_content is not None
            and not isinstance(result.structured_content, dict)):
        meta = dict(result.meta or {})
        fastmcp_meta = meta.get("fastmcp")
        if not (isinstance(fastmcp_meta, dict) and fastmcp_meta.get("wrap_result") is True):
            meta["fastmcp"] = {**(fastmcp_meta if isinstance(fastmcp_meta, dict) else {}),
                               "wrap_result": True}
            result = ToolResult(content=result.content,
                                structured_content={"result": result.structured_content},
                                meta=meta, is_error=result.is_error)
    shaped = result.to_mcp_result()
    if isinstance(shaped, mcp_types.CallToolResult):
        return shaped
    if isinstance(shaped, tuple):
        content, structured = shaped
        return mcp_types.CallToolResult(content=content, structured_content=structured)
    return mcp_types.CallToolResult(content=shaped)
