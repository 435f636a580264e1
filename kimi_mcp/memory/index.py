"""An in-process exact-cosine index: one float32 matrix per project, one matvec per search.

`LedgerSearch` fills it from the ledger's `memory_vector` table and keeps it following that
table. Exact search over one matrix per project is fast at the sizes one person's memories
reach (`bench/bench_memory.py` prints it); an approximate index would add recall errors.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from kimi_mcp.memory.embedder import Matrix
from kimi_mcp.memory.types import TYPES

_TYPE_CODE = {name: i for i, name in enumerate(TYPES)}


class _Shard:
    def __init__(self, dim: int) -> None:
        self.vectors: Matrix = np.zeros((64, dim), dtype=np.float32)
        self.types: npt.NDArray[np.int8] = np.zeros(64, dtype=np.int8)
        self.alive: npt.NDArray[np.bool_] = np.zeros(64, dtype=np.bool_)
        self.ids: list[str] = []
        self.row: dict[str, int] = {}
        self.dead = 0

    def add(self, mid: str, type_: str, vector: npt.NDArray[np.float32]) -> None:
        at = self.row.get(mid)
        if at is None:
            at = len(self.ids)
            if at == len(self.vectors):
                self._grow()
            self.ids.append(mid)
            self.row[mid] = at
        self.vectors[at] = vector
        self.types[at] = _TYPE_CODE.get(type_, 0)
        self.alive[at] = True

    def _grow(self) -> None:
        size = len(self.vectors) * 2
        self.vectors = np.resize(self.vectors, (size, self.vectors.shape[1]))
        self.types = np.resize(self.types, size)
        alive = np.zeros(size, dtype=np.bool_)
        alive[: len(self.alive)] = self.alive
        self.alive = alive

    def remove(self, mid: str) -> None:
        at = self.row.pop(mid, None)
        if at is not None:
            self.alive[at] = False
            self.dead += 1
            if self.dead > 1024 and self.dead > len(self.ids) // 4:
                self._compact()

    def _compact(self) -> None:
        n = len(self.ids)
        keep = np.flatnonzero(self.alive[:n])
        size = max(64, len(keep))
        vectors = np.zeros((size, self.vectors.shape[1]), dtype=np.float32)
        vectors[: len(keep)] = self.vectors[keep]
        types = np.zeros(size, dtype=np.int8)
        types[: len(keep)] = self.types[keep]
        self.alive = np.zeros(size, dtype=np.bool_)
        self.alive[: len(keep)] = True
        self.vectors, self.types = vectors, types
        self.ids = [self.ids[i] for i in keep]
        self.row = {mid: i for i, mid in enumerate(self.ids)}
        self.dead = 0

    def search(
        self, query: npt.NDArray[np.float32], k: int, type_: str | None
    ) -> list[tuple[str, float]]:
        n = len(self.ids)
        if n == 0:
            return []
        # einsum, not BLAS: a multi-threaded sgemv waits for a free core on a busy machine
        # (12 ms vs 3 ms for 10k rows at load 9 on 2 cores).
        scores = np.einsum("ij,j->i", self.vectors[:n], query)
        mask = self.alive[:n]
        if type_ is not None:
            mask = mask & (self.types[:n] == _TYPE_CODE.get(type_, -1))
        scores = np.where(mask, scores, -np.inf)
        k = min(k, n)
        top = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.ids[i], float(scores[i])) for i in top if np.isfinite(scores[i])]


class VectorIndex:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._shards: dict[str, _Shard] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return sum(len(s.row) for s in self._shards.values())

    def clear(self) -> None:
        with self._lock:
            self._shards.clear()

    def sizes(self) -> dict[str, int]:
        with self._lock:
            return {name: len(s.row) for name, s in self._shards.items() if s.row}

    def ids_of(self, project: str) -> list[str]:
        with self._lock:
            shard = self._shards.get(project)
            return list(shard.row) if shard is not None else []

    def add(self, project: str, items: Iterable[tuple[str, str]], vectors: Matrix) -> None:
        """Add or replace (id, type) rows of one project with their vectors."""
        with self._lock:
            shard = self._shards.get(project)
            if shard is None:
                shard = self._shards[project] = _Shard(self.dim)
            for (mid, type_), vector in zip(items, vectors, strict=True):
                shard.add(mid, type_, vector)

    def set_type(self, project: str, mid: str, type_: str) -> None:
        with self._lock:
            shard = self._shards.get(project)
            at = shard.row.get(mid) if shard else None
            if shard is not None and at is not None:
                shard.types[at] = _TYPE_CODE.get(type_, 0)

    def remove(self, project: str, ids: Iterable[str]) -> None:
        with self._lock:
            shard = self._shards.get(project)
            if shard is not None:
                for mid in ids:
                    shard.remove(mid)

    def vectors_of(self, project: str) -> tuple[list[str], Matrix]:
        with self._lock:
            shard = self._shards.get(project)
            if shard is None:
                return [], np.zeros((0, self.dim), dtype=np.float32)
            pairs = sorted(shard.row.items(), key=lambda pair: pair[1])
            return [mid for mid, _ in pairs], shard.vectors[[r for _, r in pairs]].copy()

    def search(
        self,
        query: npt.NDArray[np.float32],
        k: int,
        *,
        project: str | None,
        type_: str | None = None,
    ) -> list[tuple[str, float]]:
        with self._lock:
            shards = (
                list(self._shards.values())
                if project is None
                else [s for s in (self._shards.get(project),) if s is not None]
            )
            found: list[tuple[str, float]] = []
            for shard in shards:
                found.extend(shard.search(query, k, type_))
        found.sort(key=lambda pair: -pair[1])
        return found[:k]

