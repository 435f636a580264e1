"""What the faces and the tool families are given: built once by the composition root."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kimi_mcp.config import Settings

if TYPE_CHECKING:
    from kimi_mcp.catalog import Catalog
    from kimi_mcp.ledger import Event, Ledger, Sessions
    from kimi_mcp.memory.engine import MemoryEngine

_UNSET: Any = object()


@dataclass
class Deps:
    settings: Settings
    ledger: Ledger
    memory: MemoryEngine
    roots: list[Path] = field(default_factory=list)
    # test seam: the transport of the proxy's upstream httpx client (None: the network)
    http_transport: Any = None
    extras: dict[str, Any] = field(default_factory=dict)
    _active: Any = field(default=_UNSET, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.roots:
            self.roots = self.settings.workspace_roots()

    @property
    def project(self) -> str:
        """The project memories and thoughts belong to: the first workspace root's name."""
        return self.roots[0].name if self.roots else "default"

    @cached_property
    def catalog(self) -> Catalog:
        from kimi_mcp.catalog import Catalog

        return Catalog(self.settings)

    @cached_property
    def sessions(self) -> Sessions:
        from kimi_mcp.ledger import Sessions

        self.ledger.bus.on_event(self._on_event)
        return Sessions(self.ledger)

    def mcp_session_id(self) -> str | None:
        """The session MCP tool calls are recorded under: the active one, if any."""
        with self._lock:
            cached = self._active
        if cached is _UNSET:
            active = self.sessions.active()
            cached = active["id"] if active else None
            with self._lock:
                self._active = cached
        return cached  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop the memory engine's background work, then the ledger's writer."""
        if self.memory is not None:
            self.memory.close()
        self.ledger.close()

    def _on_event(self, event: Event) -> None:
        if event.type == "session":
            with self._lock:
                self._active = _UNSET


class LazyLedger:
    """Opens the real ledger on first use, so `kimi-mcp stdio` can answer `initialize` before
    SQLAlchemy is even imported. Every attribute is the started ledger's."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._real: Ledger | None = None
        self._lock = threading.Lock()

    def real(self) -> Ledger:
        with self._lock:
            if self._real is None:
                from kimi_mcp.ledger import Ledger

                ledger = Ledger(self.url)
                ledger.start()
                self._real = ledger
            return self._real

    def start(self) -> None:
        self.real()

    def close(self) -> None:
        with self._lock:
            if self._real is not None:
                self._real.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real(), name)


def build_deps(settings: Settings, lazy: bool = False) -> Deps:
    """The real dependencies: the ledger in the data dir (not started) and the memory engine.

    With `lazy`, the ledger opens (and starts) on first use.
    """
    if lazy:
        ledger: Any = LazyLedger(settings.database_url())
    else:
        from kimi_mcp.ledger import Ledger

        ledger = Ledger(settings.database_url())
    deps = Deps(settings=settings, ledger=ledger, memory=None)  # type: ignore[arg-type]

    def engine() -> MemoryEngine:
        from kimi_mcp.memory.engine import MemoryEngine

        return MemoryEngine(settings, ledger)

    deps.memory = LazyMemory(engine) if lazy else engine()  # type: ignore[assignment]
    return deps


class LazyMemory:
    """Builds the memory engine on first use (numpy and friends load then, not at start)."""

    def __init__(self, factory: Callable[[], MemoryEngine]) -> None:
        self._factory = factory
        self._real: MemoryEngine | None = None
        self._lock = threading.Lock()

    def _get(self) -> MemoryEngine:
        with self._lock:
            if self._real is None:
                self._real = self._factory()
            return self._real

    def close(self) -> None:
        with self._lock:
            if self._real is not None:
                self._real.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)
