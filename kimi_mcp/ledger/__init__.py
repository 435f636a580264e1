"""The token ledger: the one source of truth and the only writer to the database.

Importing the package is cheap: `rows`, `spool`, `bus` and `store` load no database library, so
the stdio server records tool calls before SQLAlchemy is imported. The names below that need it
(`Sessions`, `queries`) load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kimi_mcp.errors import SessionNotFound
from kimi_mcp.ledger.bus import Event, EventBus, Subscription
from kimi_mcp.ledger.rows import AlertRow, RequestRow, SessionRow, ToolCallRow
from kimi_mcp.ledger.store import Ledger, LedgerStats, Pending, Tx, open_ledger

if TYPE_CHECKING:
    from kimi_mcp.ledger import queries, reads
    from kimi_mcp.ledger.sessions import Sessions

__all__ = ["AlertRow", "Event", "EventBus", "Ledger", "LedgerStats", "Pending", "RequestRow",
           "SessionNotFound", "SessionRow", "Sessions", "Subscription", "ToolCallRow", "Tx",
           "open_ledger", "queries", "reads"]

_LAZY = {"Sessions": "kimi_mcp.ledger.sessions", "queries": "kimi_mcp.ledger.queries", "reads": "kimi_mcp.ledger.reads"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kimi_mcp.ledger' has no attribute {name!r}")
    loaded = importlib.import_module(module)
    return loaded if name in ("queries", "reads") else getattr(loaded, name)
