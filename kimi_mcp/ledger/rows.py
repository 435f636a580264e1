"""The ledger's typed rows: one frozen type per table that callers append or read.

A row is checked where it is built, on the caller's side: a misspelt column is a `TypeError`
from the constructor and a value of the wrong kind a `TypeError` from `check()`, never a row
the writer drops later. The module imports nothing heavy (no SQLAlchemy), so the stdio server can
record tool calls before the database is even opened.

The token rule lives here once: a request's prompt and completion tokens are the provider's
reported figures when it sent them, else tiktoken's estimate (`effective_prompt_tokens`); the SQL
side of the same rule is `ledger.dialect.effective_prompt`.
"""

from __future__ import annotations

import dataclasses
import operator
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

STATUSES = ("ok", "error", "cancelled")
USAGE_SOURCES = ("provider", "estimate")


def now() -> float:
    """UNIX seconds: every `created_at` in the ledger."""
    return time.time()


def new_uid() -> str:
    """A row's unique id across processes and hosts (what a replayed spool entry is checked by):
    64 random bits, as 16 hex digits."""
    return os.urandom(8).hex()


R = TypeVar("R", bound="Row")


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """Base of the typed rows. `TABLE` names the table; `id` is set once the row is stored."""

    TABLE: ClassVar[str] = ""
    _TYPES: ClassVar[dict[str, tuple[type, ...]]] = {}

    id: int | None = None

    def values(self) -> dict[str, Any]:
        """The columns to insert (`id` left out while the database has not assigned it)."""
        names, getter = _getter(type(self))
        out = dict(zip(names, getter(self), strict=True))
        if out["id"] is None:
            del out["id"]
        return out

    def check(self: R) -> R:
        """Refuse values of the wrong kind (`TypeError`) or outside their set (`ValueError`)."""
        for name, kinds in self._TYPES.items():
            value = getattr(self, name)
            if value is not None and not isinstance(value, kinds):
                raise TypeError(f"{type(self).__name__}.{name} must be "
                                f"{' or '.join(k.__name__ for k in kinds)}, got {type(value).__name__}")
        return self

    @classmethod
    def of(cls: type[R], data: Mapping[Any, Any]) -> R:
        """A row from stored values (a database row or a spool entry); unknown keys are ignored."""
        names = _names(cls)
        return cls(**{k: v for k, v in data.items() if k in names})


_NAMES: dict[type, frozenset[str]] = {}
_GETTERS: dict[type, tuple[tuple[str, ...], Any]] = {}


def _getter(cls: type) -> tuple[tuple[str, ...], Any]:
    found = _GETTERS.get(cls)
    if found is None:
        names = tuple(f.name for f in dataclasses.fields(cls))
        found = _GETTERS[cls] = (names, operator.attrgetter(*names))
    return found


def _names(cls: type) -> frozenset[str]:
    found = _NAMES.get(cls)
    if found is None:
        found = _NAMES[cls] = frozenset(f.name for f in dataclasses.fields(cls))
    return found


_INT = (int,)
_NUM = (int, float)
_STR = (str,)


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRow(Row):
    """One proxied chat call (or one call seen in Continue's logs, `source = continue-log`)."""

    TABLE: ClassVar[str] = "request"
    _TYPES: ClassVar[dict[str, tuple[type, ...]]] = {
        "uid": _STR, "session_id": _STR, "created_at": _NUM, "provider": _STR, "model": _STR,
        "stream": (bool,), "status": _STR, "http_status": _INT, "prompt_tokens": _INT,
        "completion_tokens": _INT, "cached_tokens": _INT, "reasoning_tokens": _INT,
        "est_prompt_tokens": _INT, "est_completion_tokens": _INT, "cost_usd": _NUM,
        "ttft_ms": _NUM, "latency_ms": _NUM, "saved_mask_tokens": _INT,
        "saved_compress_tokens": _INT, "memory_tokens": _INT, "context_window": _INT,
        "meta": (dict,),
    }

    uid: str = field(default_factory=new_uid)
    session_id: str | None = None
    created_at: float = field(default_factory=now)
    source: str = "proxy"
    provider: str = ""
    model: str = ""
    stream: bool = False
    status: str = "ok"  # ok | error | cancelled
    http_status: int | None = None
    error: str | None = None
    # as the provider reported them (None when it did not)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    # as tiktoken estimated them
    est_prompt_tokens: int | None = None
    est_completion_tokens: int | None = None
    usage_source: str = "provider"  # provider | estimate
    cost_usd: float | None = None
    ttft_ms: float | None = None
    latency_ms: float | None = None
    saved_mask_tokens: int = 0
    saved_compress_tokens: int = 0
    memory_tokens: int = 0
    context_window: int | None = None
    route: str | None = None
    linked_uid: str | None = None  # a continue-log row that matched a proxy row
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> RequestRow:
        Row.check(self)
        if self.status not in STATUSES:
            raise ValueError(f"RequestRow.status must be one of {STATUSES}, got {self.status!r}")
        if self.usage_source not in USAGE_SOURCES:
            raise ValueError(f"RequestRow.usage_source must be one of {USAGE_SOURCES}, "
                             f"got {self.usage_source!r}")
        return self

    @property
    def effective_prompt_tokens(self) -> int:
        """The provider's prompt tokens when reported, else the estimate (0 when neither)."""
        return effective(self.prompt_tokens, self.est_prompt_tokens)

    @property
    def effective_completion_tokens(self) -> int:
        return effective(self.completion_tokens, self.est_completion_tokens)


def effective(reported: int | None, estimated: int | None) -> int:
    """The token rule: the provider's figure when it reported one, else tiktoken's estimate."""
    if reported is not None:
        return reported
    return estimated or 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallRow(Row):
    """One MCP tool call: the tokens its arguments and result put into the model's context."""

    TABLE: ClassVar[str] = "tool_call"
    _TYPES: ClassVar[dict[str, tuple[type, ...]]] = {
        "uid": _STR, "session_id": _STR, "created_at": _NUM, "tool": _STR, "family": _STR,
        "args_tokens": _INT, "result_tokens": _INT, "latency_ms": _NUM, "is_error": (bool,),
        "error": _STR,
    }

    uid: str = field(default_factory=new_uid)
    session_id: str | None = None
    created_at: float = field(default_factory=now)
    tool: str
    family: str
    args_tokens: int = 0
    result_tokens: int = 0
    latency_ms: float = 0.0
    is_error: bool = False
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertRow(Row):
    """A session's context passed one of `[context] alert_thresholds`."""

    TABLE: ClassVar[str] = "alert"
    _TYPES: ClassVar[dict[str, tuple[type, ...]]] = {
        "uid": _STR, "session_id": _STR, "created_at": _NUM, "threshold": _NUM, "usage": _NUM,
        "prompt_tokens": _INT, "context_window": _INT, "model": _STR, "message": _STR,
    }

    uid: str = field(default_factory=new_uid)
    session_id: str | None = None
    created_at: float = field(default_factory=now)
    threshold: float
    usage: float
    prompt_tokens: int
    context_window: int
    model: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRow:
    """A session as read (sessions are written through `Sessions`, never appended)."""

    id: str
    name: str
    provider: str | None = None
    model: str | None = None
    auto: bool = False
    active: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0
    context: dict[str, Any] = field(default_factory=dict)
    compress_requested: bool = False


SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "api-key", "x-api-key",
                            "x-goog-api-key", "cookie", "set-cookie"})
REDACTED = "[redacted]"


def redact_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    """Request headers as they may be stored: the value of every credential-bearing header
    (authorization, api keys, cookies, anything named like a key, token or secret) replaced by
    `[redacted]`, so the ledger shows the header was sent and never what it held."""
    out = {}
    for name, value in headers.items():
        lower = str(name).lower()
        secret = (lower in SECRET_HEADERS or "key" in lower or "token" in lower
                  or "secret" in lower or "auth" in lower or "cookie" in lower)
        out[str(name)] = REDACTED if secret else str(value)
    return out


APPENDABLE: dict[str, type[Row]] = {r.TABLE: r for r in (RequestRow, ToolCallRow, AlertRow)}
