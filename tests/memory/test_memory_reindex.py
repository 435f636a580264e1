from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from kimi_mcp.memory import masked_id, vecrows
from kimi_mcp.memory.reindex import reindex

if TYPE_CHECKING:
    from tests.memory.conftest import MakeEngine

pytestmark = pytest.mark.anyio


async def test_reindex_recreates_every_vector_from_the_records(
    make_engine: MakeEngine, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    monkeypatch.setattr("kimi_mcp.memory.reindex.BATCH", 50)
    engine = make_engine(search=backend)
    ids = [(await engine.store(f"memory about topic {n}", project=f"p{n % 2}")).id
           for n in range(120)]
    engine.store_text_sync("a masked block of output")
    engine.flush_vectors()
    engine.ledger.flush()
    every = [*ids, masked_id("a masked block of output")]
    engine.ledger.write_sync(lambda tx: vecrows.drop(tx.db, every))  # the vectors are lost
    engine.vector_search.clear()
    assert engine.vector_search.count() == 0
    calls: list[tuple[int, int]] = []
    assert reindex(engine, lambda done, total: calls.append((done, total))) == 121
    assert engine.vector_search.count() == 121
    assert calls[0] == (0, 121) and calls[-1] == (121, 121)
    assert [d for d, _ in calls] == [0, 50, 100, 121]
    [hit] = await engine.recall("memory about topic 7", project="p1", limit=1)
    assert hit.item.id == ids[7]
    engine.close()
    [hit] = await make_engine(search=backend).recall("memory about topic 8", project="p0", limit=1)
    assert hit.item.id == ids[8]


async def test_reindex_of_an_empty_store_reports_zero(make_engine: MakeEngine) -> None:
    calls: list[tuple[int, int]] = []
    assert reindex(make_engine(), lambda d, t: calls.append((d, t))) == 0
    assert calls == [(0, 0)]
