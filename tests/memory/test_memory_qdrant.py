"""`QdrantSearch`, the `VectorSearch` used when `memory.qdrant_url` is set.

Which Qdrant: qdrant-client's in-memory mode (`QdrantClient(location=":memory:")`), not a
Qdrant server. A server could not be started on this machine: there is no Docker engine,
and neither PyPI nor Debian carries a runnable Qdrant server (PyPI has clients and
`qdrant-edge-py`, an embedded engine; Debian has no qdrant package), while a test may not
download a binary. The in-memory mode runs the same client calls this module makes
(collections, upserts, payload filters, `set_payload`, `scroll`, `count`, `query_points`) in
process. What it does not cover: the HTTP transport and payload indexes (which have no
effect there). Failures of an unreachable server are tested against a closed loopback port.

The engine-level behaviours (recall filters, promotion, update, delete, a failed write, a
restart, reindex) run against both implementations through the `backend` fixture.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kimi_mcp.config import load_settings
from kimi_mcp.errors import MemoryEngineError
from kimi_mcp.ledger import Ledger
from kimi_mcp.memory.embedder import HashEmbedder
from kimi_mcp.memory.engine import MemoryEngine
from kimi_mcp.memory.ledgersearch import LedgerSearch
from kimi_mcp.memory.qdrant import QdrantSearch
from kimi_mcp.memory.search import open_search

if TYPE_CHECKING:
    from tests.memory.conftest import MakeEngine

pytestmark = pytest.mark.anyio


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_settings_choose_the_search(tmp_path: Path, ledger: Ledger) -> None:
    embedded = load_settings(overrides={"data_dir": str(tmp_path)}, launch_dir=tmp_path)
    assert isinstance(open_search(embedded, ledger, "minilm", 384), LedgerSearch)
    server = load_settings(overrides={"data_dir": str(tmp_path), "memory": {
        "qdrant_url": "http://127.0.0.1:6333", "collection": "team"}}, launch_dir=tmp_path)
    search = open_search(server, ledger, "minilm", 384)
    assert isinstance(search, QdrantSearch) and search.collection == "team"
    assert isinstance(open_search(server, ledger, "hash", 384), QdrantSearch)


async def test_searching_in_qdrant_filters_by_project_and_type(make_engine: MakeEngine) -> None:
    engine = make_engine(search="qdrant")
    await engine.store("apples are red", project="p")
    await engine.store("bananas are yellow", project="p", type="semantic")
    await engine.store("apples grow on trees", project="q")
    assert isinstance(engine.vector_search, QdrantSearch)
    hits = await engine.recall("red apples", project="p")
    assert [h.item.content for h in hits] == ["apples are red", "bananas are yellow"]
    semantic = await engine.recall("apples", project="p", type="semantic")
    assert [h.item.content for h in semantic] == ["bananas are yellow"]
    everywhere = await engine.recall("apples", all_projects=True)
    assert {h.item.project for h in everywhere} == {"p", "q"}


async def test_an_empty_qdrant_collection_is_given_the_ledger_vectors_when_it_opens(
    make_engine: MakeEngine, ledger: Ledger
) -> None:
    embedded = make_engine()
    stored = [await embedded.store(f"service {n} listens on port {8000 + n}") for n in range(30)]
    embedded.close()
    search = QdrantSearch(ledger, "hash", 384, collection="fresh", location=":memory:")
    engine = make_engine(vector_search=search)
    assert engine.vector_search.count() == 30  # copied from the ledger, nothing re-embedded
    [hit] = await engine.recall("service 17 listens on port 8017", limit=1)
    assert hit.item.id == stored[17].id


async def test_a_promotion_changes_the_type_qdrant_filters_on(make_engine: MakeEngine) -> None:
    engine = make_engine(search="qdrant", memory={"promote_after": 2})
    stored = await engine.store("the on-call phone is in the drawer")
    for _ in range(2):
        await engine.recall("on-call phone", limit=1)
    engine.ledger.flush()
    found = engine.vector_search.search(
        HashEmbedder().embed(["on-call phone"])[0], 5, project="proj", type_="frequent")
    assert [mid for mid, _ in found] == [stored.id]


async def test_consolidation_replaces_the_sources_in_qdrant(make_engine: MakeEngine) -> None:
    engine = make_engine(search="qdrant")
    await engine.store("the cache ttl is five minutes")
    await engine.store("the cache ttl is five minutes.")
    await engine.store("lunch is at noon")
    report = await engine.consolidate(0.9, dry_run=False)
    [cluster] = report.clusters
    assert engine.vector_search.count() == 2
    [hit] = await engine.recall("cache ttl", limit=1)
    assert hit.item.id == cluster.merged_id and hit.item.type == "semantic"


def test_an_unreachable_qdrant_server_is_a_clear_error_and_stores_nothing(
    tmp_path: Path, ledger: Ledger
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    settings = load_settings(overrides={"data_dir": str(tmp_path / "data"), "memory": {
        "embedder": "hash", "qdrant_url": url}}, launch_dir=tmp_path)
    engine = MemoryEngine(settings, ledger)
    try:
        with pytest.raises(MemoryEngineError) as failed:
            engine.store_sync("a fact that must not be half stored")
        message = str(failed.value)
        assert url in message and "cannot be reached" in message
        assert "memory.qdrant_url" in message and "fact" not in message
        assert engine.count() == 0
    finally:
        engine.close()

