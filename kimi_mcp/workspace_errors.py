"""How the workspace explains what the kernel refused: one mapping from OSError to a
WorkspaceError whose message says what happened to which path, and the net that applies it to
every path-taking operation (`kernel_errors`)."""

from __future__ import annotations

import errno
import functools
import inspect
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar, cast

from kimi_mcp.errors import WorkspaceError

P = ParamSpec("P")
R = TypeVar("R")


def kernel_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn any OSError the kernel raises during `fn` into a WorkspaceError naming the path
    the caller gave (the first text argument).

    The walk and each operation explain the failures they expect. This is the net under them
    for the rest: an entry removed, replaced or swapped for a link by another process between
    two system calls (ENOENT, ENOTDIR, ELOOP mid-operation), so no raw OSError, with its
    absolute path and traceback, reaches a tool's answer. Works for generator functions
    under `@contextmanager` too: their own steps are mapped, while an error raised by the
    caller's `with` body passes through unchanged (it is the caller's to explain).
    """
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args: Any, **kwargs: Any) -> Any:
            steps = cast(Callable[..., Generator[Any, None, None]], fn)(*args, **kwargs)
            with _mapped(args):
                value = next(steps)
            try:
                yield value
            except BaseException as body_error:  # noqa: BLE001  # the caller's `with` body: passed on
                try:
                    steps.throw(body_error)
                except StopIteration:
                    return
                raise RuntimeError(f"{fn.__qualname__} did not stop after an error") from None
            with _mapped(args):
                for _ in steps:
                    raise RuntimeError(f"{fn.__qualname__} yielded twice")

        wrapped = cast(Callable[P, R], generator)
    else:

        @functools.wraps(fn)
        def plain(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except OSError as exc:
                raise os_error(exc, _first_text(args)) from None

        wrapped = plain
    wrapped.kernel_errors = True  # type: ignore[attr-defined]  # checked by the tests
    return wrapped


@contextmanager
def _mapped(args: tuple[object, ...]) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise os_error(exc, _first_text(args)) from None


def _first_text(args: tuple[object, ...]) -> str:
    return next((a for a in args if isinstance(a, str)), "the path")


def os_error(exc: OSError | None, shown: str) -> WorkspaceError:
    """The refusal to show for `exc` on the path shown as `shown` (None: it changed)."""
    if exc is None:
        return WorkspaceError(f"Refused: {shown} changed during the call; try again")
    if isinstance(exc, FileNotFoundError):
        return WorkspaceError(f"Not found: {shown}")
    if exc.errno == errno.ELOOP:
        return WorkspaceError(
            f"Access denied: {shown} is a symlink where a real file or directory was expected; "
            "refusing to follow it"
        )
    if exc.errno == errno.ENOTDIR:
        return WorkspaceError(f"Not a directory: {shown}")
    if isinstance(exc, PermissionError):
        return WorkspaceError(f"Permission denied by the operating system: {shown}")
    return WorkspaceError(f"{exc.strerror or type(exc).__name__}: {shown}")
