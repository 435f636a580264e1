"""Shared pieces of the fs tool modules: annotations, parameter types, error mapping, caps."""

from __future__ import annotations

import datetime as dt
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal, TypeVar

import anyio.to_thread
import regex as re
from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.tools.base import Tool
from fastmcp.utilities.json_schema import dereference_refs
from mcp.types import ToolAnnotations
from pydantic import Field

from kimi_mcp.errors import WorkspaceError
from kimi_mcp.workspace import Workspace

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
Encoding = Annotated[
    str,
    Field(
        description="Text encoding (a Python codec name). Files that are not valid in it are "
        "reported as such, with undecodable bytes shown as U+FFFD"
    ),
]
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
def refusals(tool: str = "", **params: object) -> Iterator[None]:
    """Turn refusals and OS errors into ToolError text the model can act on, naming the
    public tool (`fs_<tool>`) and, when it can tell, the parameter at fault."""
    try:
        yield
    except ToolError:
        raise
    except WorkspaceError as exc:
        raise ToolError(_explain(str(exc), tool, params)) from None
    except FileNotFoundError as exc:
        raise ToolError(_explain(f"Not found: {exc.filename}", tool, params)) from None
    except PermissionError as exc:
        text = f"Permission denied by the operating system: {exc.filename}"
        raise ToolError(_explain(text, tool, params)) from None
    except OSError as exc:
        text = f"{exc.strerror or type(exc).__name__}: {exc.filename or ''}".rstrip(": ")
        raise ToolError(_explain(text, tool, params)) from None
    except UnicodeError as exc:
        text = (
            f"The text cannot be converted with encoding {params.get('encoding', 'utf-8')!r} "
            f"({getattr(exc, 'reason', exc)}); pass an encoding that fits, e.g. encoding='utf-8'"
        )
        raise ToolError(_explain(text, tool, {"encoding": params.get("encoding")})) from None
    except LookupError as exc:
        if type(exc) is not LookupError:  # a KeyError/IndexError is a bug: let it show
            raise
        encoding = params.get("encoding")
        what = f"Unknown encoding {encoding!r}" if isinstance(encoding, str) else str(exc)
        text = f"{what}; use a Python codec name such as utf-8 or latin-1"
        raise ToolError(_explain(text, tool, {"encoding": params.get("encoding")})) from None


def _explain(message: str, tool: str, params: dict[str, object]) -> str:
    if not tool:
        return message
    named = [
        k
        for k, v in params.items()
        for item in (v if isinstance(v, list) else [v])
        if isinstance(item, str) and item and item in message
    ]
    if not named:  # a path problem shown in another form: blame the first path parameter
        named = [k for k, v in params.items() if v is not None and k != "encoding"][:1]
    where = f"fs_{tool}" + (f", parameter `{named[0]}`" if named else "")
    return f"{message} ({where})"


def compile_regex(pattern: str, flags: int, param: str) -> re.Pattern[str]:
    """A user regex for the `regex` module (run with a timeout by the caller)."""
    try:
        return re.compile(pattern, flags)
    except (re.error, ValueError, OverflowError) as exc:
        raise WorkspaceError(
            f"Invalid regex in `{param}` {pattern!r}: {exc}; fix the pattern (Python syntax)"
        ) from None


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


def require_dir(ws: Workspace, path: str) -> None:
    if not stat.S_ISDIR(ws.stat(path).st_mode):
        raise WorkspaceError(f"Not a directory: {ws.display(path)}; give a directory")
