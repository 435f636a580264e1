"""`LedgerSearch`: the embedded default `VectorSearch` — the ledger's `memory_vector` rows
searched through an in-process exact index (`VectorIndex`).

Several processes (the proxy and editors' stdio servers) write the same ledger, so the index
follows the table: each search first reads the rows written since the last one it saw (by
`seq`, 0.6 ms at 10k); then, when that found something or `check_s` has passed, it compares
the counts per project (1.7 ms at 10k) and, where they differ (a delete, or a row another
writer committed late), reconciles that project's ids. Until then a memory deleted elsewhere
may still be found; recall drops hits whose record is gone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from kimi_mcp.ledger import Ledger
from kimi_mcp.memory import vecrows
from kimi_mcp.memory.embedder import Matrix
from kimi_mcp.memory.index import VectorIndex
from kimi_mcp.memory.types import Point


class LedgerSearch:
    check_s = 1.0

    def __init__(self, ledger: Ledger, model: str, dim: int) -> None:
        self.ledger = ledger
        self.model = model
        self.index = VectorIndex(dim)
        self.seq = 0
        self._checked = 0.0
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return self.index.dim

    # ---- VectorSearch -------------------------------------------------------------------

    def open(self) -> None:
        with self._lock:
            self.index.clear()
            self.seq = 0
            self._pull()
            self._checked = time.monotonic()

    def close(self) -> None:
        with self._lock:
            self.index.clear()
            self.seq = 0

    def add(self, points: Sequence[Point], vectors: Matrix) -> None:
        for project in {p.project for p in points}:
            rows = [n for n, p in enumerate(points) if p.project == project]
            self.index.add(project, [(points[n].id, points[n].type) for n in rows], vectors[rows])

    def remove(self, points: Sequence[Point]) -> None:
        for project in {p.project for p in points}:
            self.index.remove(project, [p.id for p in points if p.project == project])

    def retype(self, points: Sequence[Point]) -> None:
        for p in points:
            self.index.set_type(p.project, p.id, p.type)

    def search(
        self, query: Matrix, k: int, *, project: str | None, type_: str | None
    ) -> list[tuple[str, float]]:
        self._sync(project)
        return self.index.search(query, k, project=project, type_=type_)

    def refresh(self) -> None:
        self._sync(None, full=True)

    def clear(self) -> None:
        """Empty the index; the next search loads the table again."""
        with self._lock:
            self.index.clear()
            self.seq = 0

    def count(self) -> int:
        return len(self.index)

    # ---- following the table ------------------------------------------------------------

    def _pull(self) -> bool:
        rows = vecrows.since(self.ledger, self.seq, self.model, self.dim)
        if rows:
            _apply(self.index, rows)
            self.seq = max(self.seq, max(r.seq for r in rows))
        return bool(rows)

    def _sync(self, project: str | None, *, full: bool = False) -> None:
        """Bring the index up to the table for one project (every project when None);
        `full` compares the counts now."""
        with self._lock:
            t = time.monotonic()
            if not self._pull() and not full and t - self._checked < self.check_s:
                return
            self._checked = t
            stored = vecrows.counts(self.ledger, self.model, self.dim, project)
            have = self.index.sizes()
            names = {project} if project is not None else set(stored) | set(have)
            for name in names:
                if stored.get(name, 0) != have.get(name, 0):
                    self._reconcile(name)

    def _reconcile(self, project: str) -> None:
        ids = vecrows.ids_of(self.ledger, project, self.model, self.dim)
        held = set(self.index.ids_of(project))
        gone = held - ids
        if gone:
            self.index.remove(project, gone)
        new = ids - held
        if new:
            _apply(self.index, vecrows.by_ids(self.ledger, sorted(new), self.model, self.dim))


def _apply(index: VectorIndex, rows: list[vecrows.VectorRow]) -> None:
    by_project: dict[str, list[vecrows.VectorRow]] = {}
    for row in rows:
        by_project.setdefault(row.project, []).append(row)
    for project, found in by_project.items():
        index.add(project, [(r.id, r.type) for r in found], vecrows.stack([r.vector for r in found]))
