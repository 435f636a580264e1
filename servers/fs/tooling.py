"""Shared pieces of the fs tool modules: annotations, parameter types, error mapping, caps."""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal, TypeVar

import anyio.to_thread
from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.tools.base import Tool
from fastmcp.utilities.json_schema import dereference_refs
from mcp.types import ToolAnnotations
from pydantic import Field

from kimi_mcp.errors import WorkspaceError

MAX_CHARS = 100_000  # per answer: about 25k tokens
MAX_LIST = 1_000  # entries in any list an answer carries

READ: dict[str, Any] = {
    "readOnlyHint": True,
    "destructiveHint": False,
    "idempotentHint": True,
    "openWorldHint": False,
}
CREATE: dict[str, Any] = {**READ, "readOnlyHint": False, "idempotentHint": False}
CREATE_IDEMPOTENT: dict[str, Any] = {**CREATE, "idempotentHint": True}
DESTRUCTIVE: dict[str, Any] = {**CREATE, "destructiveHint": True}
DESTRUCTIVE_IDEMPOTENT: dict[str, Any] = {**DESTRUCTIVE, "idempotentHint": True}

PathArg = Annotated[
    str,
    Field(description="Path inside the workspace: relative to the first root, or absolute"),
]
Encoding = Annotated[str, Field(description="Text encoding; undecodable bytes become U+FFFD")]
ExcludePatterns = Annotated[
    list[str],
    Field(
        description="Globs to skip: a bare name or `*.log` matches at any depth, a pattern "
        "with `/` matches the path from the search root; excluded dirs are not entered"
    ),
]


T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def tool(
    mcp: FastMCP, *, annotations: dict[str, Any], output_schema: dict[str, Any] | None = None
) -> Callable[[F], F]:
    """Register a function as a tool whose schemas are already self-contained.

    FastMCP inlines `$ref`s into every tool's schemas on each tools/list (some clients cannot
    follow refs); doing it once here leaves that middleware nothing to do, which makes
    tools/list several times cheaper.
    """

    def register(fn: F) -> F:
        made = Tool.from_function(
            fn,
            annotations=ToolAnnotations.model_validate(annotations),
            output_schema=output_schema if output_schema is not None else ...,
        )
        updates: dict[str, Any] = {"parameters": dereference_refs(made.parameters)}
        if made.output_schema is not None:
            updates["output_schema"] = dereference_refs(made.output_schema)
        mcp.add_tool(made.model_copy(update=updates))
        return fn

    return register


async def offload(work: Callable[[], T], *, inline: bool) -> T:
    """Run cheap work on the event loop (no thread hop, the bulk of a small call's cost);
    anything that may take long goes to a worker thread so the loop stays responsive."""
    if inline:
        return work()
    return await anyio.to_thread.run_sync(work)


@contextmanager
def refusals() -> Iterator[None]:
    """Turn refusals and OS errors into ToolError text the model can act on."""
    try:
        yield
    except ToolError:
        raise
    except WorkspaceError as exc:
        raise ToolError(str(exc)) from None
    except FileNotFoundError as exc:
        raise ToolError(f"Not found: {exc.filename}") from None
    except IsADirectoryError as exc:
        raise ToolError(f"Is a directory, not a file: {exc.filename}") from None
    except NotADirectoryError as exc:
        raise ToolError(f"Not a directory: {exc.filename}") from None
    except PermissionError as exc:
        raise ToolError(f"Permission denied by the operating system: {exc.filename}") from None
    except OSError as exc:
        raise ToolError(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None
    except LookupError as exc:
        if type(exc) is not LookupError:  # a KeyError/IndexError is a bug: let it show
            raise
        raise ToolError(f"Unknown encoding: {exc}") from None


def iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds")


EntryKind = Literal["file", "directory", "symlink", "other"]


def kind(mode: int) -> EntryKind:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


def require_dir(path: str) -> None:
    if not os.path.isdir(path):
        raise WorkspaceError(f"Not a directory: {path}")
