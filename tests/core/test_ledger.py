from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from kimi_mcp.errors import LedgerError
from kimi_mcp.ledger import Event, Ledger, RequestRow, ToolCallRow, open_ledger, queries
from kimi_mcp.ledger.models import SCHEMA_VERSION, Request, ToolCall
from kimi_mcp.ledger.models import Session as SessionModel
from kimi_mcp.ledger.sessions import Sessions
from tests.services import BACKENDS


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ledger(database_url: str, tmp_path: Path) -> Iterator[Ledger]:
    led = open_ledger(database_url, tmp_path / "data")
    led.start()
    yield led
    led.close()


def count(ledger: Ledger, table: str) -> int:
    return int(ledger.scalar(f"SELECT COUNT(*) FROM {table}"))


def test_concurrent_writers_lose_no_row(ledger: Ledger) -> None:
    def write(worker: int) -> None:
        for i in range(2000):
            ledger.append(RequestRow(provider=f"p{worker}", model="m", prompt_tokens=i))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ledger.flush()
    assert count(ledger, "request") == 16000
    assert ledger.scalar("SELECT SUM(prompt_tokens) FROM request") == 8 * sum(range(2000))
    assert ledger.stats().dropped_rows == 0
    assert ledger.stats().spool_pending == 0


def test_events_arrive_after_the_row_is_committed(ledger: Ledger) -> None:
    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def on_event(event: Event) -> None:
        if event.type != "request":
            return
        try:  # another connection must already see the row when its event arrives
            found = ledger.scalar("SELECT COUNT(*) FROM request WHERE id = :i", i=event.data["id"])
            seen.append((event.data["id"], found))
        except BaseException as exc:
            errors.append(exc)

    ledger.bus.on_event(on_event)
    for i in range(50):
        ledger.append(RequestRow(provider="kimi", model="m", prompt_tokens=i))
    ledger.flush()
    assert errors == []
    assert len(seen) == 50
    assert all(found == 1 for _, found in seen)


@pytest.mark.anyio
async def test_async_subscribers_receive_typed_events(ledger: Ledger) -> None:
    sub = ledger.bus.subscribe()
    ledger.append(ToolCallRow(tool="fs_read_file", family="fs", result_tokens=12))
    with anyio.fail_after(5):
        event = await sub.queue.get()
    sub.close()
    assert event.type == "tool_call" and not event.remote
    assert event.data["tool"] == "fs_read_file" and event.data["id"] == 1


def test_a_failing_write_function_loses_nothing_else(ledger: Ledger) -> None:
    ledger.append(RequestRow(provider="a", model="m"))

    def broken(tx):  # type: ignore[no-untyped-def]
        tx.db.add(ToolCall(tool="x", family="x"))
        raise ValueError("boom")

    future = ledger.submit(broken)
    ledger.append(RequestRow(provider="b", model="m"))
    with pytest.raises(ValueError, match="boom"):
        future.result(10)
    ledger.flush()
    assert count(ledger, "request") == 2
    assert count(ledger, "tool_call") == 0  # its own writes rolled back


def test_a_write_function_that_keeps_meeting_a_lock_fails_alone_and_its_batch_mates_commit(
        ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    monkeypatch.setattr("kimi_mcp.ledger.writer.MAX_BACKOFF_S", 0.01)
    gate = threading.Event()

    def locked(tx):  # type: ignore[no-untyped-def]
        raise OperationalError("UPDATE x", {}, sqlite3.OperationalError("database is locked"))

    def add(tx):  # type: ignore[no-untyped-def]
        tx.db.add(SessionModel(id="kept", name="kept"))
        return "done"

    held = ledger.submit(lambda tx: gate.wait(10))  # the next items queue into one batch
    stuck = ledger.submit(locked)
    innocent = ledger.submit(add)
    ledger.append(RequestRow(provider="a", model="m"))
    gate.set()
    held.result(30)
    with pytest.raises(LedgerError, match="busy"):
        stuck.result(30)
    assert innocent.result(30) == "done"
    ledger.flush()
    assert count(ledger, "request") == 1
    assert count(ledger, "session") == 1


def test_a_misspelt_column_is_a_type_error_where_the_row_is_built(ledger: Ledger) -> None:
    with pytest.raises(TypeError, match="not_a_column"):
        RequestRow(provider="a", model="m", not_a_column=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="not_a_column"):
        ledger.insert(Request, provider="a", model="m", not_a_column=1)
    with pytest.raises(TypeError, match="prompt_tokens"):
        ledger.insert(Request, provider="a", prompt_tokens="12")
    with pytest.raises(ValueError, match="status"):
        RequestRow(status="fine").check()
    ledger.flush()
    assert count(ledger, "request") == 0
    assert ledger.stats().dropped_rows == 0


def test_a_reserved_row_is_stored_at_close_even_without_a_spool(database_url: str) -> None:
    ledger = Ledger(database_url)  # no spool dir: nothing written to disk, entries still tracked
    ledger.start()
    ledger.reserve(ToolCallRow(tool="fs_read_file", family="fs"))
    ledger.close()
    again = Ledger(database_url)
    again.start()
    try:
        assert count(again, "tool_call") == 1
    finally:
        again.close()


def test_a_refused_write_reaches_the_caller_without_sql_or_stored_content(
        ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    secret = "the memory text nobody may see"

    def add(tx):  # type: ignore[no-untyped-def]
        tx.db.add(SessionModel(id="fixed", name=secret))

    ledger.write_sync(add)
    caplog.set_level(logging.INFO)
    with pytest.raises(LedgerError) as caught:
        ledger.write_sync(add)
    message = str(caught.value)
    assert "conflicts" in message
    for leak in (secret, "INSERT", "session"):
        assert leak not in message
    for record in caplog.records:
        if record.levelno >= logging.INFO:
            assert secret not in record.getMessage() and "INSERT" not in record.getMessage()


@pytest.mark.slow
@pytest.mark.timeout(300)  # 100k appends on a shared 2-core machine
def test_summaries_stay_correct_at_100k_rows(ledger: Ledger, backend: str) -> None:
    n = 100_000 if backend == "sqlite" else 20_000
    for i in range(n):
        ledger.append(RequestRow(provider="kimi" if i % 2 else "groq", model=f"m{i % 5}",
                                 prompt_tokens=10, completion_tokens=1, cost_usd=0.001,
                                 created_at=1_000_000.0 + i, saved_mask_tokens=i % 3))
    ledger.flush()
    with ledger.read() as db:
        total = queries.summary(db)
        by_provider = {r["key"]: r for r in queries.breakdown(db, "provider")}
        window = queries.summary(db, since=1_000_000.0, until=1_000_100.0)
        series = queries.timeseries(db, n / 10, since=1_000_000.0)
    assert total["requests"] == n and total["prompt_tokens"] == 10 * n
    assert total["saved_mask_tokens"] == sum(i % 3 for i in range(n))
    assert total["cost_usd"] == pytest.approx(0.001 * n)
    assert by_provider["kimi"]["requests"] == n // 2
    assert window["requests"] == 100
    assert len(series) == 10 and sum(b["requests"] for b in series) == n


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
    ledger.append(RequestRow(session_id=named["id"], provider="p", model="m"))
    ledger.append(ToolCallRow(session_id=named["id"], tool="fs_read_file", family="fs"))
    await ledger.aflush()
    listed = {s["id"]: s["totals"] for s in sessions.list()}
    assert listed[named["id"]]["requests"] == 1 and listed[named["id"]]["tool_calls"] == 1
    await sessions.delete(named["id"])
    await ledger.aflush()
    assert count(ledger, "request") == 0
    assert {s["id"] for s in sessions.list()} == {first, other}
    with ledger.read() as db:
        assert queries.summary(db)["tool_calls"] == 0


# ---- SQLite files ----------------------------------------------------------------------------------


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
        led = Ledger(f"sqlite:///{path}", busy_timeout_ms=200)
        with pytest.raises(LedgerError, match="locked"):
            led.start()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
