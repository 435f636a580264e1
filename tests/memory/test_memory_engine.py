from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kimi_mcp.errors import MemoryEngineError
from kimi_mcp.ledger import Tx
from kimi_mcp.ledger.models import MemoryRecord
from kimi_mcp.memory import MemoryNotFound, masked_id, vecrows

if TYPE_CHECKING:
    from tests.memory.conftest import MakeEngine

pytestmark = pytest.mark.anyio

AWKWARD = [
    "line one\r\nline two\r\n",
    "trailing spaces and tabs \t \n\n",
    "nul \x00 bell \x07 escape \x1b[31m red",
    "lone surrogate \ud800 and \udfff",
    "emoji 🧠 combining e\u0301 rtl שלום zero-width \u200b bom \ufeff",
    "\u2028line separator\u2029paragraph",
]


@pytest.mark.parametrize("content", AWKWARD)
async def test_get_returns_content_byte_exact_also_after_a_restart(
    make_engine: MakeEngine, content: str
) -> None:
    engine = make_engine()
    stored = await engine.store(content)
    [item] = await engine.get([stored.id])
    assert item.content == content
    engine.close()
    [again] = await make_engine().get([stored.id])
    assert again.content == content
    assert again.content.encode("utf-8", "surrogatepass") == content.encode("utf-8", "surrogatepass")


async def test_storing_an_exact_duplicate_returns_the_existing_id(make_engine: MakeEngine) -> None:
    engine = make_engine()
    first = await engine.store("the build uses uv")
    second = await engine.store("the build uses uv", tags=["other"])
    near = await engine.store("the build uses uv ")
    assert first.created and not second.created and near.created
    assert second.id == first.id and near.id != first.id
    assert engine.count() == 2


async def test_the_same_text_in_another_project_is_a_new_memory(make_engine: MakeEngine) -> None:
    engine = make_engine()
    a = await engine.store("shared text", project="alpha")
    b = await engine.store("shared text", project="beta")
    assert a.created and b.created and a.id != b.id
    assert engine.count("alpha") == 1 and engine.count() == 2


async def test_an_explicit_id_is_kept_and_storing_it_again_changes_nothing(
    make_engine: MakeEngine,
) -> None:
    engine = make_engine()
    first = await engine.store("payload", id="m-0123456789abcdef")
    again = await engine.store("payload", id="m-0123456789abcdef")
    assert first.id == again.id == "m-0123456789abcdef"
    assert first.created and not again.created


async def test_recall_searches_the_current_project_unless_all_projects(
    make_engine: MakeEngine, backend: str
) -> None:
    engine = make_engine(search=backend)
    await engine.store("kafka topic retention is seven days", project="alpha")
    await engine.store("kafka topic retention is three days", project="beta")
    alpha = await engine.recall("kafka retention", project="alpha")
    assert [h.item.project for h in alpha] == ["alpha"]
    everywhere = await engine.recall("kafka retention", all_projects=True)
    assert sorted(h.item.project for h in everywhere) == ["alpha", "beta"]
    assert await engine.recall("kafka retention", project="gamma") == []


async def test_the_default_project_is_the_workspace_name(make_engine: MakeEngine) -> None:
    engine = make_engine()
    await engine.store("something")
    assert engine.default_project == "proj"
    assert engine.count("proj") == 1


async def test_an_empty_query_lists_memories_by_recency(make_engine: MakeEngine) -> None:
    engine = make_engine()
    for n in range(4):
        await engine.store(f"note number {n}")
    hits = await engine.recall("", limit=3)
    assert [h.item.content for h in hits] == ["note number 3", "note number 2", "note number 1"]
    assert all(h.score is None for h in hits)
    [listed] = await engine.get([hits[0].item.id])
    assert listed.recall_count == 0  # listing is not recalling


async def test_recall_filters_by_type_tags_and_min_score(
    make_engine: MakeEngine, backend: str
) -> None:
    engine = make_engine(search=backend)
    await engine.store("postgres runs on port 5432", type="semantic", tags=["db", "ports"])
    await engine.store("postgres was slow yesterday", tags=["db"])
    await engine.store("redis runs on port 6379", type="semantic", tags=["cache", "ports"])
    semantic = await engine.recall("postgres port", type="semantic")
    assert {h.item.content for h in semantic} == {
        "postgres runs on port 5432", "redis runs on port 6379"}
    tagged = await engine.recall("postgres port", tags=["DB", "ports"])
    assert [h.item.content for h in tagged] == ["postgres runs on port 5432"]
    strict = await engine.recall("postgres runs on port 5432", min_score=0.99)
    assert [h.item.content for h in strict] == ["postgres runs on port 5432"]
    assert [h.score for h in strict] == [pytest.approx(1.0, abs=1e-5)]


async def test_an_episodic_memory_recalled_often_becomes_frequent(
    make_engine: MakeEngine, backend: str
) -> None:
    engine = make_engine(memory={"promote_after": 3}, search=backend)
    stored = await engine.store("the staging url is staging.example.org")
    types = []
    for _ in range(3):
        [hit] = await engine.recall("staging url", limit=1)
        types.append(hit.item.type)
    assert types == ["episodic", "episodic", "frequent"]
    [item] = await engine.get([stored.id])
    assert item.type == "frequent" and item.recall_count == 3
    assert [h.item.id for h in await engine.recall("staging url", type="frequent")] == [stored.id]


async def test_recalls_older_than_the_window_do_not_promote(make_engine: MakeEngine) -> None:
    engine = make_engine(memory={"promote_after": 2, "promote_window_days": 1})
    stored = await engine.store("the vpn needs a hardware key")

    def age(tx: Tx) -> None:
        row = tx.db.get(MemoryRecord, stored.id)
        assert row is not None
        row.recalls = [1.0, 2.0, 3.0]  # long ago
        tx.db.add(row)

    await engine.ledger.write(age)
    [hit] = await engine.recall("vpn hardware key", limit=1)
    assert hit.item.type == "episodic"
    [hit] = await engine.recall("vpn hardware key", limit=1)
    assert hit.item.type == "frequent"


async def test_a_failed_vector_write_leaves_no_record(
    make_engine: MakeEngine, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    engine = make_engine(search=backend)
    await engine.store("first memory")

    def broken(*args: object, **kwargs: object) -> None:
        raise MemoryEngineError("vector store failed to write vectors: disk full")

    monkeypatch.setattr(engine.vector_search, "add", broken)
    with pytest.raises(MemoryEngineError, match="disk full"):
        await engine.store("second memory")
    assert engine.count() == 1
    assert [h.item.content for h in await engine.recall("", limit=10)] == ["first memory"]


async def test_a_failed_record_write_removes_the_vector_it_wrote(
    make_engine: MakeEngine, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    engine = make_engine(search=backend)
    await engine.store("kept")
    before = engine.vector_search.count()

    def failing_insert(new: object, *, dedupe: bool, vector: object = None) -> object:
        def fn(tx: Tx) -> None:
            raise RuntimeError("constraint failed")

        return fn

    monkeypatch.setattr("kimi_mcp.memory.records.insert_fn", failing_insert)
    with pytest.raises(RuntimeError):
        await engine.store("lost")
    assert engine.vector_search.count() == before
    assert engine.count() == 1


async def test_the_fast_path_is_readable_at_once_and_gets_its_vector_later(
    make_engine: MakeEngine, backend: str
) -> None:
    engine = make_engine(search=backend)
    block = "$ pytest\r\n" + "x" * 5000 + "\n== 3 failed ==\n"
    result = engine.store_text_sync(block)
    assert result.id == masked_id(block) and result.created
    [item] = await engine.get([result.id])
    assert item.content == block and item.source == "sanitizer"
    assert not engine.store_text_sync(block).created
    engine.flush_vectors()
    engine.ledger.flush()
    [item] = await engine.get([result.id])
    assert item.vector_ok
    assert result.id in [h.item.id for h in await engine.recall("pytest failed")]


async def test_update_changes_text_and_recall_follows(
    make_engine: MakeEngine, backend: str
) -> None:
    engine = make_engine(search=backend)
    stored = await engine.store("lunch is at noon", tags=["office"])
    item = await engine.update(stored.id, content="dinner is at eight", type="semantic")
    assert item.content == "dinner is at eight" and item.type == "semantic" and item.vector_ok
    assert item.tags == ["office"]
    [hit] = await engine.recall("dinner is at eight", limit=1)
    assert hit.item.id == stored.id and hit.score == pytest.approx(1.0, abs=1e-5)
    retagged = await engine.update(stored.id, tags=["home"], metadata={"k": 1})
    assert retagged.tags == ["home"] and retagged.metadata == {"k": 1}


async def test_update_of_an_unknown_id_is_not_found(make_engine: MakeEngine) -> None:
    with pytest.raises(MemoryNotFound):
        await make_engine().update("nope", content="x")


async def test_delete_removes_record_and_vector(make_engine: MakeEngine, backend: str) -> None:
    engine = make_engine(search=backend)
    a = await engine.store("alpha memory")
    b = await engine.store("beta memory")
    assert await engine.delete([a.id, "unknown"]) == [a.id]
    assert await engine.get([a.id]) == []
    assert engine.vector_search.count() == 1
    assert [h.item.id for h in await engine.recall("alpha memory")] == [b.id]


async def test_the_vector_search_is_rebuilt_from_the_ledger_after_a_restart(
    make_engine: MakeEngine, backend: str
) -> None:
    engine = make_engine(search=backend)
    stored = await engine.store("terraform state lives in s3")
    engine.close()
    reopened = make_engine(search=backend)  # qdrant: a new, empty in-memory collection
    [hit] = await reopened.recall("terraform state", limit=1)
    assert hit.item.id == stored.id


async def test_records_without_a_vector_are_repaired_when_the_engine_opens(
    make_engine: MakeEngine, backend: str
) -> None:
    engine = make_engine(search=backend)
    stored = await engine.store("helm charts live in deploy/")
    engine.ledger.write_sync(lambda tx: vecrows.drop(tx.db, [stored.id]))  # e.g. an old ledger
    engine.close()
    reopened = make_engine(search=backend)
    reopened.ready()
    reopened.flush_vectors()
    [hit] = await reopened.recall("helm charts", limit=1)
    assert hit.item.id == stored.id and hit.item.vector_ok


async def test_empty_content_and_unknown_types_are_refused(make_engine: MakeEngine) -> None:
    engine = make_engine()
    with pytest.raises(MemoryEngineError, match="content"):
        await engine.store("")
    with pytest.raises(MemoryEngineError, match="unknown memory type"):
        await engine.store("x", type="weird")


def test_importing_the_engine_loads_no_model_or_qdrant_client() -> None:
    import subprocess
    import sys

    code = (
        "import sys, kimi_mcp.memory, kimi_mcp.memory.engine;"
        "print(sorted(m for m in ('onnxruntime','qdrant_client','tokenizers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_a_deleted_masked_block_can_be_stored_again(make_engine: MakeEngine) -> None:
    engine = make_engine()
    first = engine.store_text_sync("block of output")
    engine.ledger.flush()
    assert not engine.store_text_sync("block of output").created
    await engine.delete([first.id])
    again = engine.store_text_sync("block of output")
    assert again.id == first.id and again.created
    assert [i.content for i in await engine.get([first.id])] == ["block of output"]


async def test_two_engines_on_one_data_dir_both_search_and_follow_each_other(
    make_engine: MakeEngine, tmp_path: Path
) -> None:
    first, second = make_engine(), make_engine()
    first.ready()
    second.ready()  # no folder lock: both open
    assert not (tmp_path / "data" / "qdrant").exists()
    stored = await first.store("the cache is warmed at startup")
    [hit] = await second.recall("cache warmed at startup", limit=1)
    assert hit.item.id == stored.id
    assert second.vector_search.count() == 1
    await first.delete([stored.id])
    assert await second.recall("cache warmed at startup", limit=1) == []
    second.vector_search.refresh()
    assert second.vector_search.count() == 0
    promoted = await second.store("a fact recalled often")
    for _ in range(3):
        await first.recall("a fact recalled often", limit=1)
    first.ledger.flush()
    [hit] = await second.recall("a fact recalled often", type="frequent", limit=1)
    assert hit.item.id == promoted.id


def test_importing_the_memory_package_and_its_protocol_loads_nothing_heavy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, kimi_mcp.memory, kimi_mcp.memory.protocol, kimi_mcp.memory.types;"
        "print(sorted(m for m in ('numpy','sqlalchemy','sqlmodel','onnxruntime','qdrant_client',"
        "'tiktoken') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_a_failed_background_write_is_logged_without_sql_or_content(
    make_engine: MakeEngine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import sqlite3

    from sqlalchemy.exc import OperationalError

    def failing_insert(new: object, *, dedupe: bool, vector: object = None) -> object:
        def fn(tx: Tx) -> None:
            raise OperationalError("INSERT INTO memory VALUES (?)", ("private text",),
                                   sqlite3.OperationalError("database is locked"))

        return fn

    engine = make_engine()
    monkeypatch.setattr("kimi_mcp.memory.records.insert_fn", failing_insert)
    with caplog.at_level("INFO"):
        engine.store_text_sync("private text")
        engine.ledger.flush()
        engine.flush_vectors()
    logged = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= 20)
    assert "stayed busy" in logged
    assert "INSERT" not in logged and "private text" not in logged
