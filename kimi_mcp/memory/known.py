"""What this process knows about stored ids without asking the ledger: records queued by the
fast path but not committed yet (readable at once), and ids seen stored (the sanitizer asks
about the same masked blocks on every request of a conversation)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from kimi_mcp.memory.types import MemoryItem

_KNOWN_MAX = 100_000


class KnownIds:
    def __init__(self) -> None:
        self._pending: dict[str, MemoryItem] = {}
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def has(self, mid: str) -> bool:
        """Queued or seen stored (False means: ask the ledger)."""
        with self._lock:
            return mid in self._pending or mid in self._known

    def queue(self, item: MemoryItem) -> bool:
        """Hold a record until its write settles; False when it is already queued."""
        with self._lock:
            if item.id in self._pending:
                return False
            self._pending[item.id] = item
            return True

    def settled(self, mid: str, *, stored: bool) -> None:
        with self._lock:
            self._pending.pop(mid, None)
        if stored:
            self.remember(mid)

    def queued(self, ids: Iterable[str]) -> dict[str, MemoryItem]:
        """The queued records among `ids`."""
        with self._lock:
            return {m: self._pending[m] for m in ids if m in self._pending}

    def remember(self, mid: str) -> None:
        with self._lock:
            if len(self._known) >= _KNOWN_MAX:  # bounded: start over rather than grow
                self._known.clear()
            self._known.add(mid)

    def forget(self, ids: Sequence[str]) -> None:
        with self._lock:
            self._known.difference_update(ids)
