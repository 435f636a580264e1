"""The root server's guard around every tool call: arguments read by the tool's public schema
(`mcp_arguments.normalize`), and every failure turned into an `isError` result that names the
public tool — never a pydantic dump, an internal function name, a traceback or SQL."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastmcp.exceptions import DisabledError, NotFoundError, ToolError, ValidationError
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools.base import ToolResult
from mcp import MCPError
from pydantic import ValidationError as PydanticValidationError

from kimi_mcp.errors import KimiError, LedgerError, describe
from kimi_mcp.mcp_arguments import explain, needs_normalizing, normalize

log = logging.getLogger(__name__)

# FastMCP wraps an exception a tool did not expect as ToolError("Error calling tool 'name'...")
_WRAPPED_PREFIX = "Error calling tool "


class ToolCallGuard(Middleware):
    """Normalizes arguments before validation and maps every failure to a clear tool error."""

    def __init__(self) -> None:
        self._schemas: dict[str, Mapping[str, Any] | None] = {}

    async def on_call_tool(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, ToolResult]
    ) -> ToolResult:
        name = str(context.message.name)
        schema = await self._schema(context, name)
        arguments = context.message.arguments or {}
        given = prepared(arguments, schema)
        if given is not arguments:
            context = context.copy(message=context.message.model_copy(update={"arguments": given}))
        try:
            return await call_next(context)
        except ToolError as exc:
            text = refusal(name, schema, exc)
            if text == str(exc):
                raise
            raise ToolError(text) from None
        except (NotFoundError, DisabledError, MCPError):
            raise
        except Exception as exc:  # noqa: BLE001 - the last resort: a clear message, logged cause
            raise ToolError(refusal(name, schema, exc)) from None

    async def _schema(self, context: MiddlewareContext[Any], name: str) -> Mapping[str, Any] | None:
        if name in self._schemas:
            return self._schemas[name]
        server = context.fastmcp_context.fastmcp if context.fastmcp_context else None
        tool = await server.get_tool(name) if server is not None else None
        schema = tool.parameters if tool is not None else None
        if tool is not None:
            self._schemas[name] = schema
        return schema


def prepared(arguments: dict[str, Any], schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """`arguments` read by the tool's public schema (`mcp_arguments.normalize`); the same
    object when there was nothing to read differently."""
    if schema is not None and needs_normalizing(arguments, schema):
        return normalize(arguments, schema)
    return arguments


def refusal(name: str, schema: Mapping[str, Any] | None, exc: Exception) -> str:
    """The text of the error result for a call of tool `name` that raised `exc`: a refused
    argument explained by the schema, a tool's own `ToolError` naming the public tool (as a
    prefix when it does not), anything else as an internal error (logged)."""
    if isinstance(exc, ValidationError):
        return _invalid(name, schema or {}, exc)
    if isinstance(exc, ToolError):
        if exc.__cause__ is not None and str(exc).startswith(_WRAPPED_PREFIX):
            return _unexpected(name, exc.__cause__)
        return str(exc) if name in str(exc) else f"{name}: {exc}"
    return _unexpected(name, exc)


def _invalid(name: str, schema: Mapping[str, Any], exc: ValidationError) -> str:
    cause = exc.__cause__
    if isinstance(cause, PydanticValidationError):
        return explain(name, schema, cause.errors(include_url=False, include_context=True))
    return explain(name, schema, [])


def _unexpected(name: str, exc: BaseException) -> str:
    if isinstance(exc, LedgerError):  # its text may quote a statement: never shown
        log.warning("%s: the ledger failed: %s", name, exc)
        return (f"{name} could not use the ledger database (closed, locked or not writable). "
                "Retry in a moment; if it persists, check `kimi-mcp status` and the server log.")
    if isinstance(exc, KimiError):  # our own errors are written for the caller
        return f"{name}: {describe(exc).message}"
    log.error("%s failed unexpectedly", name, exc_info=exc)
    return (f"{name} failed with an internal error (logged by the server). Check the arguments "
            "against the tool's description and retry; if it fails again, try another approach.")
