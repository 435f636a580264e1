"""A least-recently-used map bounded in bytes, not entries: what the stages remember per process.

Entries differ in size by orders of magnitude (an id, a conversation's index of lines), so a
bound on their number bounds nothing; each entry is put with its approximate size instead.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ByteLRU(Generic[K, V]):
    """`get` refreshes an entry; `put` evicts the least recently used ones until the total size
    is within `max_bytes` (an entry larger than the bound on its own is not kept)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    def put(self, key: K, value: V, size: int) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes:
                return
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def resize(self, key: K, size: int) -> None:
        """Record that an entry (mutated in place) now takes `size` bytes."""
        with self._lock:
            found = self._items.get(key)
        if found is not None:
            self.put(key, found[0], size)

    def pop(self, key: K) -> V | None:
        with self._lock:
            found = self._items.pop(key, None)
            if found is None:
                return None
            self._bytes -= found[1]
            return found[0]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)
