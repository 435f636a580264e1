"""The token ledger: the one source of truth and the only writer to the database.

Importing the package is cheap: `rows`, `spool`, `bus` and `store` load no database library, so
the stdio server records tool calls before SQLAlchemy is imported. The modules that need it
(`sessions`, `queries`, `reads`) are imported by name where they are used.
"""

from __future__ import annotations

from kimi_mcp.errors import SessionNotFound
from kimi_mcp.ledger.bus import Event, EventBus, Subscription
from kimi_mcp.ledger.rows import AlertRow, RequestRow, SessionRow, ToolCallRow
from kimi_mcp.ledger.store import Ledger, LedgerStats, Pending, Tx, open_ledger

__all__ = ["AlertRow", "Event", "EventBus", "Ledger", "LedgerStats", "Pending", "RequestRow",
           "SessionNotFound", "SessionRow", "Subscription", "ToolCallRow", "Tx", "open_ledger"]
