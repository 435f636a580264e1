from __future__ import annotations

import contextlib
import random
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from kimi_mcp.ledger import Ledger, RequestRow, ToolCallRow, queries
from kimi_mcp.ledger.models import SCHEMA_VERSION
from tests.services import BACKENDS, postgres_schema

BASE = 1_800_000_000.0


@pytest.fixture(scope="module", params=BACKENDS)
def filled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('r') / 'r.db'}"
        else:
            url = stack.enter_context(postgres_schema())
        ledger = Ledger(url)
        ledger.start()
        rnd = random.Random(7)
        for _ in range(3000):
            ledger.append(RequestRow(
                created_at=BASE + rnd.uniform(0, 12 * 3600), session_id=rnd.choice(["a", "b", None]),
                provider=rnd.choice(["kimi", "groq"]), model=rnd.choice(["m1", "m2", "m3"]),
                status=rnd.choice(["ok", "ok", "error"]), prompt_tokens=rnd.choice([None, rnd.randint(1, 999)]),
                est_prompt_tokens=rnd.randint(1, 999), completion_tokens=rnd.randint(0, 99),
                cost_usd=rnd.choice([None, rnd.random() / 100]), latency_ms=rnd.uniform(1, 900),
                saved_mask_tokens=rnd.randint(0, 50),
            ))
        for _ in range(1000):
            ledger.append(ToolCallRow(
                created_at=BASE + rnd.uniform(0, 12 * 3600), session_id=rnd.choice(["a", "b", None]),
                tool=rnd.choice(["fs_read_file", "json_query"]), family="x",
                is_error=rnd.random() < 0.2, result_tokens=rnd.randint(0, 500),
                latency_ms=rnd.uniform(0, 50)))
        ledger.flush()
        yield ledger
        ledger.close()


def _raw(ledger: Ledger, since: float | None, until: float | None, session: str | None) -> dict[str, float]:
    clauses = ["1=1"]
    if since is not None:
        clauses.append(f"created_at >= {since!r}")
    if until is not None:
        clauses.append(f"created_at < {until!r}")
    if session is not None:
        clauses.append(f"session_id = '{session}'")
    with ledger.read() as db:
        row = db.execute(text(
            f"""SELECT COUNT(*), SUM(COALESCE(prompt_tokens, est_prompt_tokens, 0)), SUM(cost_usd),
            SUM(saved_mask_tokens), SUM(CASE WHEN status != 'ok' THEN 1 ELSE 0 END)
            FROM request WHERE {' AND '.join(clauses)}"""
        )).one()
        tools = db.execute(text(
            f"""SELECT COUNT(*), SUM(CASE WHEN is_error THEN 1 ELSE 0 END), SUM(result_tokens)
            FROM tool_call WHERE {' AND '.join(clauses)}""")).one()
    return {"requests": row[0], "prompt": row[1] or 0, "cost": row[2], "mask": row[3] or 0,
            "errors": row[4] or 0, "tools": tools[0], "tool_errors": tools[1] or 0,
            "tool_tokens": tools[2] or 0}


@settings(max_examples=60, deadline=None)
@given(
    since=st.one_of(st.none(), st.floats(BASE - 3600, BASE + 13 * 3600)),
    length=st.one_of(st.none(), st.floats(0, 14 * 3600)),
    session=st.sampled_from([None, "a", "b"]),
)
def test_rollup_summaries_equal_a_raw_scan_for_any_window(filled: Ledger, since, length, session) -> None:  # type: ignore[no-untyped-def]
    until = None if since is None or length is None else since + length
    expected = _raw(filled, since, until, session)
    with filled.read() as db:
        got = queries.summary(db, since, until, session)
        by_model = queries.breakdown(db, "model", since, until, session)
    assert got["requests"] == expected["requests"]
    assert got["prompt_tokens"] == expected["prompt"]
    assert got["saved_mask_tokens"] == expected["mask"]
    assert got["errors"] == expected["errors"]
    if expected["cost"] is None:
        assert got["cost_usd"] is None
    else:
        assert got["cost_usd"] == pytest.approx(expected["cost"])
    assert sum(r["requests"] for r in by_model) == expected["requests"]
    assert got["tool_calls"] == expected["tools"]
    assert got["tool_errors"] == expected["tool_errors"]
    assert got["tool_result_tokens"] == expected["tool_tokens"]


def test_hourly_timeseries_matches_minute_buckets_summed(filled: Ledger) -> None:
    with filled.read() as db:
        hourly = queries.timeseries(db, 3600)
        minutes = queries.timeseries(db, 60)
        seconds = queries.timeseries(db, 90, since=BASE - 45)
    assert sum(b["requests"] for b in hourly) == sum(b["requests"] for b in minutes) == 3000
    assert sum(b["requests"] for b in seconds) == 3000
    assert sum(b["prompt_tokens"] for b in hourly) == sum(b["prompt_tokens"] for b in minutes)


def test_a_schema_3_file_migrates_and_gets_minute_and_hour_rollups(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    ledger = Ledger(f"sqlite:///{path}")
    ledger.start()
    for i in range(10):
        ledger.append(RequestRow(provider="kimi", model="m", prompt_tokens=5, created_at=BASE + i * 50))
    ledger.append(ToolCallRow(tool="fs_read_file", family="fs", created_at=BASE, result_tokens=3))
    ledger.close()
    with sqlite3.connect(path) as conn:  # make it look like a file written by schema 3
        conn.execute("DROP TABLE request_rollup")
        conn.execute("DROP TABLE tool_rollup")
        conn.execute("CREATE TABLE rollup (bucket INTEGER, n INTEGER)")
        conn.execute("CREATE TABLE tc (id INTEGER PRIMARY KEY, session_id VARCHAR, created_at FLOAT, "
                     "tool VARCHAR, family VARCHAR, args_tokens INTEGER, result_tokens INTEGER, "
                     "latency_ms FLOAT, is_error BOOLEAN, error TEXT)")
        conn.execute("INSERT INTO tc SELECT id, session_id, created_at, tool, family, args_tokens, "
                     "result_tokens, latency_ms, is_error, error FROM tool_call")
        conn.execute("DROP TABLE tool_call")
        conn.execute("ALTER TABLE tc RENAME TO tool_call")
        conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    conn.close()
    ledger = Ledger(f"sqlite:///{path}")
    ledger.start()
    try:
        assert ledger.scalar("SELECT value FROM meta WHERE key = 'schema_version'") == str(SCHEMA_VERSION)
        assert ledger.scalar("SELECT SUM(n) FROM request_rollup WHERE size = 60") == 10
        assert ledger.scalar("SELECT SUM(n) FROM request_rollup WHERE size = 3600") == 10
        assert ledger.scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'rollup'") == 0
        with ledger.read() as db:
            assert queries.summary(db)["prompt_tokens"] == 50
            assert queries.summary(db)["tool_result_tokens"] == 3
        ledger.append(ToolCallRow(tool="json_query", family="json"))
        ledger.flush()
        assert ledger.scalar("SELECT COUNT(uid) FROM tool_call") == 1
    finally:
        ledger.close()
