"""Rows survive a crash of their process, concurrent processes share one file, followers see
each other's rows. Child processes are real (`kill -9` included); nothing here sleeps to wait."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kimi_mcp.ledger import Event, Ledger, RequestRow, ToolCallRow, open_ledger
from kimi_mcp.ledger.sessions import Sessions
from tests.services import BACKENDS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def reopen(database_url: str, data: Path) -> Iterator[type[Ledger]]:
    opened: list[Ledger] = []

    def make(spool_dir: Path | None = None) -> Ledger:
        ledger = open_ledger(database_url, spool_dir or data)
        opened.append(ledger)
        return ledger

    yield make  # type: ignore[misc]
    for ledger in opened:
        ledger.close()


def run_child(code: str, url: str, data: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    prelude = textwrap.dedent(f"""
        import os, signal, sys
        from pathlib import Path
        from kimi_mcp.ledger import open_ledger, RequestRow, ToolCallRow
        URL, DATA = {url!r}, Path({str(data)!r})
    """)
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def count(ledger: Ledger, sql: str) -> int:
    return int(ledger.scalar(sql))


def test_a_row_appended_before_the_ledger_starts_is_stored_once_it_does(reopen) -> None:  # type: ignore[no-untyped-def]
    ledger = reopen()
    ledger.append(ToolCallRow(tool="fs_read_file", family="fs", result_tokens=7))
    assert ledger.stats().queue_depth == 1 and ledger.stats().spool_pending == 1
    ledger.start()
    ledger.flush()
    assert count(ledger, "SELECT SUM(result_tokens) FROM tool_call") == 7
    stats = ledger.stats()
    assert stats.queue_depth == 0 and stats.spool_pending == 0 and stats.dropped_rows == 0


def test_rows_of_a_process_killed_before_it_committed_are_replayed_by_the_next_start(
        reopen, database_url: str, data: Path) -> None:  # type: ignore[no-untyped-def]
    done = run_child("""
        led = open_ledger(URL, DATA)
        for i in range(200):
            led.append(RequestRow(provider="kimi", model="m", prompt_tokens=i))
        led.append(ToolCallRow(tool="memory_store", family="memory", args_tokens=5))
        print("acknowledged", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """, database_url, data)
    assert done.returncode == -9 and "acknowledged" in done.stdout, done.stderr
    ledger = reopen()
    ledger.start()
    ledger.flush()
    assert count(ledger, "SELECT COUNT(*) FROM request") == 200
    assert count(ledger, "SELECT SUM(prompt_tokens) FROM request") == sum(range(200))
    assert count(ledger, "SELECT COUNT(*) FROM tool_call") == 1
    assert ledger.stats().replayed_rows == 201
    assert not list((data / "spool").glob("*.spool"))  # the orphan is gone once replayed


def test_a_killed_process_whose_rows_were_partly_committed_is_never_counted_twice(
        reopen, database_url: str, data: Path) -> None:  # type: ignore[no-untyped-def]
    done = run_child("""
        led = open_ledger(URL, DATA)
        led.start()
        for i in range(300):
            led.append(RequestRow(provider="kimi", model="m", prompt_tokens=1))
            if i == 150:
                led.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    """, database_url, data)
    assert done.returncode == -9, done.stderr
    ledger = reopen()
    ledger.start()
    ledger.flush()
    assert count(ledger, "SELECT COUNT(*) FROM request") == 300
    assert count(ledger, "SELECT COUNT(DISTINCT uid) FROM request") == 300
    with ledger.read() as db:
        from kimi_mcp.ledger import queries

        assert queries.summary(db)["requests"] == 300  # the rollups agree


def test_a_killed_process_replays_the_final_form_of_a_reserved_row(
        reopen, database_url: str, data: Path) -> None:  # type: ignore[no-untyped-def]
    done = run_child("""
        led = open_ledger(URL, DATA)
        first = RequestRow(provider="kimi", model="m", status="ok")
        pending = led.reserve(first)
        led.reserve(RequestRow(provider="kimi", model="never-completed"))
        led.complete(pending, RequestRow(uid=first.uid, created_at=first.created_at,
                                         provider="kimi", model="m", est_prompt_tokens=42))
        os.kill(os.getpid(), signal.SIGKILL)
    """, database_url, data)
    assert done.returncode == -9, done.stderr
    ledger = reopen()
    ledger.start()
    ledger.flush()
    assert count(ledger, "SELECT COUNT(*) FROM request") == 2
    assert count(ledger, "SELECT est_prompt_tokens FROM request WHERE model = 'm'") == 42


def test_a_reserved_row_is_stored_in_its_final_form_or_as_reserved_at_close(reopen) -> None:  # type: ignore[no-untyped-def]
    ledger = reopen()
    ledger.start()
    row = RequestRow(provider="kimi", model="m")
    ledger.complete(ledger.reserve(row), RequestRow(uid=row.uid, created_at=row.created_at,
                                                    provider="kimi", model="m", prompt_tokens=9))
    ledger.reserve(RequestRow(provider="kimi", model="stuck"))  # its producer never finishes
    ledger.flush()
    assert count(ledger, "SELECT COUNT(*) FROM request") == 1
    ledger.close()
    again = reopen()
    again.start()
    assert count(again, "SELECT COUNT(*) FROM request") == 2
    assert count(again, "SELECT prompt_tokens FROM request WHERE model = 'm'") == 9
    with pytest.raises(ValueError, match="uid"):
        again.complete(again.reserve(row), RequestRow(provider="kimi"))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_close_gives_up_after_its_bound_and_the_next_start_stores_the_rest(
        reopen, database_url: str, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    ledger = reopen()
    ledger.start()
    holder = sqlite3.connect(database_url.split("///", 1)[1], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        for i in range(20):
            ledger.append(RequestRow(provider="kimi", model="m", prompt_tokens=i))
        started = time.monotonic()
        ledger.close(timeout=1.0)
        assert time.monotonic() - started < 20  # bounded, not the busy timeout times retries
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "stay in the spool" in caplog.text
    again = reopen()
    again.start()
    again.flush()
    assert count(again, "SELECT COUNT(*) FROM request") == 20


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_two_processes_writing_one_sqlite_file_never_see_a_locked_database(
        database_url: str, tmp_path: Path) -> None:
    code = """
        from sqlmodel import select
        from kimi_mcp.ledger.models import Session
        led = open_ledger(URL, DATA)
        led.start()
        tag = sys.argv[1]
        def add(i):
            def fn(tx):  # read, then write: the pattern that fails without BEGIN IMMEDIATE
                tx.db.exec(select(Session).where(Session.name == f"{tag}-{i - 1}")).first()
                tx.db.add(Session(name=f"{tag}-{i}"))
            return fn
        for i in range(300):
            led.write_sync(add(i))
            led.append(RequestRow(provider=tag, model="m"))
        led.close()
        print("ok", flush=True)
    """
    prelude = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from kimi_mcp.ledger import open_ledger, RequestRow
        URL = {database_url!r}
    """)
    Ledger(database_url).start()  # create the schema first, as `serve` would
    procs = [subprocess.Popen(
        [sys.executable, "-c", prelude + f"DATA = Path({str(tmp_path / tag)!r})\n"
         + textwrap.dedent(code), tag], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True) for tag in ("a", "b")]
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0 and out.strip() == "ok", err
        assert "locked" not in err
    ledger = Ledger(database_url)
    ledger.start()
    try:
        assert count(ledger, "SELECT COUNT(*) FROM session") == 600
        assert count(ledger, "SELECT COUNT(*) FROM request") == 600
    finally:
        ledger.close()


def test_a_follower_publishes_rows_another_process_writes_once(reopen, data: Path) -> None:  # type: ignore[no-untyped-def]
    watcher = reopen()
    watcher.start(follow=True)
    seen: list[Event] = []
    arrived = threading.Event()

    def on_event(event: Event) -> None:
        if event.type in ("request", "tool_call"):
            seen.append(event)
            if len(seen) >= 3:
                arrived.set()

    watcher.bus.on_event(on_event)
    other = reopen(data.parent / "other-process")
    other.start()
    other.append(ToolCallRow(tool="fs_read_file", family="fs", result_tokens=3))
    other.append(RequestRow(provider="kimi", model="m", prompt_tokens=4))
    watcher.append(RequestRow(provider="groq", model="own"))
    assert arrived.wait(30), [e.data for e in seen]
    watcher.flush()
    other.flush()
    time.sleep(0)  # let a late duplicate, if any, show up with the checks below
    remote = [e for e in seen if e.remote]
    assert sorted(e.type for e in remote) == ["request", "tool_call"]
    assert {e.data["id"] for e in remote if e.type == "request"} != set()
    own = [e for e in seen if e.data.get("model") == "own"]
    assert len(own) == 1 and not own[0].remote
    assert watcher.stats().followed_rows == 2


def test_a_follower_publishes_session_changes_of_another_process(reopen, data: Path) -> None:  # type: ignore[no-untyped-def]
    watcher = reopen()
    watcher.start(follow=True)
    changed = threading.Event()
    watcher.bus.on_event(lambda e: changed.set() if e.type == "session" and e.remote else None)
    other = reopen(data.parent / "other-process")
    Sessions(other).create_sync("elsewhere")
    assert changed.wait(30)
