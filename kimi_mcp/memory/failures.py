"""Ledger failures seen by the memory engine, as `MemoryEngineError`s a model can act on.

A database error carries the statement and its parameters (the memory's text); none of it
may reach a tool result or a log line at info level or above. The message says what failed,
why in plain words, and what to do; the original is logged at debug level only.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from kimi_mcp.errors import LedgerError, MemoryEngineError

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

_BUSY = ("database is locked", "database is busy", "deadlock", "could not serialize",
         "lock timeout")


def reason(exc: BaseException) -> str:
    """Why the ledger failed, in words that carry no SQL and no stored content."""
    if isinstance(exc, MemoryEngineError):
        return str(exc)
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    first = str(orig).splitlines()[0].lower() if str(orig) else ""
    if any(word in first for word in _BUSY) or "busy" in first:
        return "the ledger database stayed busy while other kimi-mcp processes wrote to it"
    if isinstance(exc, LedgerError):
        if "not started" in first or "closed" in first:
            return "the ledger is closed (kimi-mcp is shutting down)"
        return str(exc)  # our own words
    if "disk" in first or "full" in first:
        return "the ledger database could not be written (disk full or I/O error)"
    return f"the ledger database failed ({type(orig).__name__})"


def to_memory_error(what: str, exc: BaseException) -> MemoryEngineError:
    if isinstance(exc, MemoryEngineError):
        return exc
    log.debug("could not %s", what, exc_info=exc)
    why = reason(exc)
    advice = "" if "retry" in why or "try again" in why else "; nothing was changed, try again"
    return MemoryEngineError(f"could not {what}: {why}{advice}")


@contextmanager
def mapped(what: str) -> Iterator[None]:
    """Turn ledger failures inside the block into a `MemoryEngineError` saying `what`."""
    try:
        yield
    except (SQLAlchemyError, LedgerError, sqlite3.Error) as exc:
        raise to_memory_error(what, exc) from None


def guarded(what: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """`mapped(what)` around every call of the decorated function."""

    def wrap(fn: Callable[P, T]) -> Callable[P, T]:
        @wraps(fn)
        def inner(*args: P.args, **kwargs: P.kwargs) -> T:
            with mapped(what):
                return fn(*args, **kwargs)

        return inner

    return wrap
