from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import anyio
import pytest

from kimi_mcp.errors import LedgerError
from kimi_mcp.ledger import Ledger, Sessions, queries
from kimi_mcp.ledger.models import SCHEMA_VERSION, Request, ToolCall


@pytest.fixture
def ledger(tmp_path: Path):  # type: ignore[no-untyped-def]
    led = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    led.start()
    yield led
    led.close()


def test_concurrent_writers_lose_no_row(ledger: Ledger) -> None:
    def write(worker: int) -> None:
        for i in range(2000):
            ledger.insert(Request, provider=f"p{worker}", model="m", prompt_tokens=i)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ledger.flush()
    assert ledger.scalar("SELECT COUNT(*) FROM request") == 16000
    assert ledger.scalar("SELECT SUM(prompt_tokens) FROM request") == 8 * sum(range(2000))
    assert ledger.lost_rows == 0


def test_events_arrive_after_the_row_is_committed(ledger: Ledger) -> None:
    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def on_event(event) -> None:  # type: ignore[no-untyped-def]
        if event.type != "request":
            return
        try:  # another connection must already see the row when its event arrives
            conn = sqlite3.connect(str(ledger.path))
            found = conn.execute("SELECT COUNT(*) FROM request WHERE id = ?",
                                 (event.data["id"],)).fetchone()[0]
            conn.close()
            seen.append((event.data["id"], found))
        except BaseException as exc:
            errors.append(exc)

    ledger.bus.on_event(on_event)
    for i in range(50):
        ledger.insert(Request, provider="kimi", model="m", prompt_tokens=i)
    ledger.flush()
    assert errors == []
    assert len(seen) == 50
    assert all(found == 1 for _, found in seen)


@pytest.mark.anyio
async def test_async_subscribers_receive_typed_events(ledger: Ledger) -> None:
    sub = ledger.bus.subscribe()
    ledger.insert(ToolCall, tool="fs_read_file", family="fs", result_tokens=12)
    with anyio.fail_after(5):
        event = await sub.queue.get()
    sub.close()
    assert event.type == "tool_call"
    assert event.data["tool"] == "fs_read_file" and event.data["id"] == 1


def test_a_failing_write_function_loses_nothing_else(ledger: Ledger) -> None:
    ledger.insert(Request, provider="a", model="m")

    def broken(tx):  # type: ignore[no-untyped-def]
        tx.db.add(ToolCall(tool="x", family="x"))
        raise ValueError("boom")

    future = ledger.submit(broken)
    ledger.insert(Request, provider="b", model="m")
    with pytest.raises(ValueError, match="boom"):
        future.result(10)
    ledger.flush()
    assert ledger.scalar("SELECT COUNT(*) FROM request") == 2
    assert ledger.scalar("SELECT COUNT(*) FROM tool_call") == 0  # its own writes rolled back


def test_unknown_column_is_refused_at_write(ledger: Ledger) -> None:
    future = ledger.submit(lambda tx: None)
    future.result(5)
    ledger.insert(Request, provider="a", model="m", not_a_column=1)
    ledger.flush()
    assert ledger.scalar("SELECT COUNT(*) FROM request") == 0
    assert ledger.lost_rows == 1


def test_summaries_stay_correct_at_100k_rows(ledger: Ledger) -> None:
    for i in range(100_000):
        ledger.insert(Request, provider="kimi" if i % 2 else "groq", model=f"m{i % 5}",
                      prompt_tokens=10, completion_tokens=1, cost_usd=0.001,
                      created_at=1_000_000.0 + i, saved_mask_tokens=i % 3)
    ledger.flush()
    with ledger.read() as db:
        total = queries.summary(db)
        by_provider = {r["key"]: r for r in queries.breakdown(db, "provider")}
        window = queries.summary(db, since=1_000_000.0, until=1_000_100.0)
        series = queries.timeseries(db, 10_000, since=1_000_000.0)
    assert total["requests"] == 100_000 and total["prompt_tokens"] == 1_000_000
    assert total["saved_mask_tokens"] == sum(i % 3 for i in range(100_000))
    assert by_provider["kimi"]["requests"] == 50_000
    assert window["requests"] == 100
    assert len(series) == 10 and sum(b["requests"] for b in series) == 100_000


def test_schema_version_is_stamped_and_a_newer_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    led = Ledger(f"sqlite:///{path}")
    led.start()
    assert led.scalar("SELECT value FROM meta WHERE key = 'schema_version'") == str(SCHEMA_VERSION)
    led.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(LedgerError, match="newer kimi-mcp"):
        Ledger(f"sqlite:///{path}").start()


def test_a_corrupt_file_is_named_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    garbage = b"this is not a database" * 100
    path.write_bytes(garbage)
    with pytest.raises(LedgerError) as caught:
        Ledger(f"sqlite:///{path}").start()
    assert str(path) in str(caught.value)
    assert path.read_bytes() == garbage


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_an_unwritable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    with pytest.raises(LedgerError, match="data dir"):
        Ledger(f"sqlite:///{locked / 'sub' / 'x.db'}").start()


def test_a_file_in_place_of_the_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(LedgerError, match="data dir"):
        Ledger(f"sqlite:///{blocker / 'x.db'}").start()


def test_a_locked_database_is_named(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=DELETE")
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        led = Ledger(f"sqlite:///{path}")
        led._busy_timeout_ms = 200
        with pytest.raises(LedgerError, match="locked"):
            led.start()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.anyio
async def test_sessions_have_one_auto_session_per_model_and_delete_vacuums(ledger: Ledger) -> None:
    sessions = Sessions(ledger)
    first = await sessions.auto_for("kimi/k2")
    assert await sessions.auto_for("kimi/k2") == first
    assert await Sessions(ledger).auto_for("kimi/k2") == first  # found in the database too
    other = await sessions.auto_for("groq/x")
    assert other != first
    named = await sessions.create("mine")
    assert sessions.active()["id"] == named["id"]  # type: ignore[index]
    ledger.insert(Request, session_id=named["id"], provider="p", model="m")
    await sessions.delete(named["id"])
    await ledger.aflush()
    assert ledger.scalar("SELECT COUNT(*) FROM request") == 0
    assert {s["id"] for s in sessions.list()} == {first, other}
