from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from kimi_mcp.ledger import Ledger, queries
from kimi_mcp.ledger.models import SCHEMA_VERSION, Request

BASE = 1_800_000_000.0


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    ledger = Ledger(f"sqlite:///{tmp_path_factory.mktemp('r') / 'r.db'}")
    ledger.start()
    rnd = random.Random(7)
    for _ in range(3000):
        ledger.insert(
            Request, created_at=BASE + rnd.uniform(0, 12 * 3600), session_id=rnd.choice(["a", "b", None]),
            provider=rnd.choice(["kimi", "groq"]), model=rnd.choice(["m1", "m2", "m3"]),
            status=rnd.choice(["ok", "ok", "error"]), prompt_tokens=rnd.choice([None, rnd.randint(1, 999)]),
            est_prompt_tokens=rnd.randint(1, 999), completion_tokens=rnd.randint(0, 99),
            cost_usd=rnd.choice([None, rnd.random() / 100]), latency_ms=rnd.uniform(1, 900),
            saved_mask_tokens=rnd.randint(0, 50),
        )
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
            SUM(saved_mask_tokens), SUM(status != 'ok') FROM request WHERE {' AND '.join(clauses)}"""
        )).one()
    return {"requests": row[0], "prompt": row[1] or 0, "cost": row[2], "mask": row[3] or 0, "errors": row[4] or 0}


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


def test_hourly_timeseries_matches_minute_buckets_summed(filled: Ledger) -> None:
    with filled.read() as db:
        hourly = queries.timeseries(db, 3600)
        minutes = queries.timeseries(db, 60)
    assert sum(b["requests"] for b in hourly) == sum(b["requests"] for b in minutes) == 3000
    assert sum(b["prompt_tokens"] for b in hourly) == sum(b["prompt_tokens"] for b in minutes)


def test_a_schema_1_file_migrates_and_gets_its_rollups(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    ledger = Ledger(f"sqlite:///{path}")
    ledger.start()
    for i in range(10):
        ledger.insert(Request, provider="kimi", model="m", prompt_tokens=5, created_at=BASE + i)
    ledger.close()
    with sqlite3.connect(path) as conn:  # make it look like a file written by schema 1
        conn.execute("DROP TABLE rollup")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.close()
    ledger = Ledger(f"sqlite:///{path}")
    ledger.start()
    try:
        assert ledger.scalar("SELECT value FROM meta WHERE key = 'schema_version'") == str(SCHEMA_VERSION)
        assert ledger.scalar("SELECT SUM(n) FROM rollup") == 10
        with ledger.read() as db:
            assert queries.summary(db)["prompt_tokens"] == 50
    finally:
        ledger.close()
