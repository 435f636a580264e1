"""The token ledger: the one source of truth and the only writer to the database."""

from kimi_mcp.ledger.bus import Event, EventBus, Subscription
from kimi_mcp.ledger.sessions import SessionNotFound, Sessions
from kimi_mcp.ledger.store import Ledger, Tx

__all__ = ["Event", "EventBus", "Ledger", "SessionNotFound", "Sessions", "Subscription", "Tx"]
