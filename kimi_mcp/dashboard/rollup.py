"""Per-minute rollups of the ledger for the page's first load, kept current from the bus.

Scanning 100,000 requests for every chart refresh costs hundreds of milliseconds, so the
dashboard keeps a small in-memory SQLite database of totals per (minute, source, provider,
model), per session and per tool. It is built by one SQL scan of each ledger table on first use
and updated by the ledger's after-commit events; charts query it in SQL. It is a cache: the
ledger stays the only writer of the real database, and a session deletion simply rebuilds it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Any

from sqlalchemy import text

from kimi_mcp.deps import Deps
from kimi_mcp.ledger import Event
from kimi_mcp.ledger.queries import COMPLETION, PROMPT

log = logging.getLogger(__name__)

LATENCY_KEEP = 1000  # the newest requests per provider kept for latency percentiles
SUMS = ("requests", "prompt_tokens", "completion_tokens", "saved_mask_tokens",
        "saved_compress_tokens", "cost_usd", "errors", "cached_tokens")
_SCHEMA = f"""
CREATE TABLE roll (size INTEGER, slot INTEGER, source TEXT, provider TEXT, model TEXT,
  {", ".join(f"{c} REAL DEFAULT 0" for c in SUMS)},
  PRIMARY KEY (size, slot, source, provider, model));
CREATE TABLE sess (session_id TEXT PRIMARY KEY, requests INTEGER, prompt_tokens INTEGER,
  completion_tokens INTEGER, cost_usd REAL, saved_tokens INTEGER, last_request_at REAL,
  tool_calls INTEGER DEFAULT 0);
CREATE TABLE lat (provider TEXT, created_at REAL, l REAL, t REAL);
CREATE INDEX lat_provider ON lat (provider, created_at);
CREATE TABLE tools (minute INTEGER, tool TEXT, family TEXT, calls INTEGER, errors INTEGER,
  args_tokens INTEGER, result_tokens INTEGER, latency_sum REAL, latency_max REAL,
  PRIMARY KEY (minute, tool, family));
"""
SIZES = (60, 900)  # slot sizes in seconds: per minute, and per quarter hour for long ranges
_ROLL_UPSERT = f"""INSERT INTO roll (size, slot, source, provider, model, {", ".join(SUMS)})
  VALUES (?, ?, ?, ?, ?, {", ".join("?" for _ in SUMS)})
  ON CONFLICT (size, slot, source, provider, model) DO UPDATE SET
  {", ".join(f"{c} = {c} + excluded.{c}" for c in SUMS)}"""
_SESS_UPSERT = """INSERT INTO sess VALUES (?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (session_id) DO UPDATE SET requests = requests + excluded.requests,
  prompt_tokens = prompt_tokens + excluded.prompt_tokens,
  completion_tokens = completion_tokens + excluded.completion_tokens,
  cost_usd = COALESCE(cost_usd, 0) + COALESCE(excluded.cost_usd, 0),
  saved_tokens = saved_tokens + excluded.saved_tokens,
  last_request_at = MAX(COALESCE(last_request_at, 0), COALESCE(excluded.last_request_at, 0)),
  tool_calls = tool_calls + excluded.tool_calls"""
_TOOL_UPSERT = """INSERT INTO tools VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (minute, tool, family) DO UPDATE SET calls = calls + excluded.calls,
  errors = errors + excluded.errors, args_tokens = args_tokens + excluded.args_tokens,
  result_tokens = result_tokens + excluded.result_tokens,
  latency_sum = latency_sum + excluded.latency_sum,
  latency_max = MAX(latency_max, excluded.latency_max)"""


class Rollup:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._marks = (0, 0)  # ledger ids already folded in: (request, tool_call)
        self._pending: list[Event] | None = None  # events seen while a build runs
        deps.ledger.bus.on_event(self._on_event)

    # ---- reading ------------------------------------------------------------------------------

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        db = self._ready()
        with self._lock:
            return db.execute(sql, params or {}).fetchall()

    def _ready(self) -> sqlite3.Connection:
        with self._lock:
            if self._db is not None:
                return self._db
        with self._build_lock:  # one build at a time; the writer thread is never held up by it
            with self._lock:
                if self._db is not None:
                    return self._db
                self._pending = []
            try:
                return self._build()
            except BaseException:
                with self._lock:
                    self._pending = None
                raise

    def _build(self) -> sqlite3.Connection:
        db = sqlite3.connect(":memory:", check_same_thread=False)
        db.executescript(_SCHEMA)
        with self.deps.ledger.read() as ledger:
            marks = (int(ledger.execute(text("SELECT COALESCE(MAX(id), 0) FROM request")).scalar() or 0),
                     int(ledger.execute(text("SELECT COALESCE(MAX(id), 0) FROM tool_call")).scalar() or 0))
            p = {"r": marks[0], "t": marks[1]}
            rows = ledger.execute(text(
                f"""SELECT 60, CAST(created_at / 60 AS INTEGER), source, provider, model, COUNT(*),
                SUM({PROMPT}), SUM({COMPLETION}), SUM(saved_mask_tokens),
                SUM(saved_compress_tokens), SUM(COALESCE(cost_usd, 0)), SUM(status != 'ok'),
                SUM(COALESCE(cached_tokens, 0)) FROM request WHERE id <= :r
                GROUP BY 2, 3, 4, 5"""), p).all()
            db.executemany(_ROLL_UPSERT, [tuple(r) for r in rows])
            db.execute(f"""INSERT INTO roll SELECT 900, slot / 15, source, provider, model,
                {", ".join(f"SUM({c})" for c in SUMS)} FROM roll WHERE size = 60
                GROUP BY 2, 3, 4, 5""")
            sess = ledger.execute(text(
                f"""SELECT COALESCE(session_id, ''), COUNT(*), SUM({PROMPT}), SUM({COMPLETION}),
                SUM(cost_usd), SUM(saved_mask_tokens + saved_compress_tokens), MAX(created_at), 0
                FROM request WHERE id <= :r GROUP BY COALESCE(session_id, '')"""), p).all()
            db.executemany(_SESS_UPSERT, [tuple(r) for r in sess])
            tool_sess = ledger.execute(text(
                """SELECT COALESCE(session_id, ''), 0, 0, 0, NULL, 0, NULL, COUNT(*)
                FROM tool_call WHERE id <= :t GROUP BY COALESCE(session_id, '')"""), p).all()
            db.executemany(_SESS_UPSERT, [tuple(r) for r in tool_sess])
            tools = ledger.execute(text(
                """SELECT CAST(created_at / 60 AS INTEGER), tool, family, COUNT(*),
                SUM(is_error), SUM(args_tokens), SUM(result_tokens), SUM(latency_ms),
                MAX(latency_ms) FROM tool_call WHERE id <= :t GROUP BY 1, 2, 3"""), p).all()
            db.executemany(_TOOL_UPSERT, [tuple(r) for r in tools])
            providers = ledger.execute(text("SELECT DISTINCT provider FROM request")).scalars().all()
            for provider in providers:
                lat = ledger.execute(text(
                    f"""SELECT provider, created_at, latency_ms, ttft_ms FROM request
                    WHERE provider = :p AND id <= :r ORDER BY created_at DESC
                    LIMIT {LATENCY_KEEP}"""), {**p, "p": provider}).all()
                db.executemany("INSERT INTO lat VALUES (?, ?, ?, ?)", [tuple(r) for r in lat])
        with self._lock:
            pending, self._pending = self._pending or [], None
            self._db, self._marks = db, marks
            for event in pending:
                self._apply(event)
            return self._db or db

    # ---- keeping current ----------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if event.type not in ("request", "tool_call", "session"):
            return
        with self._lock:
            if self._pending is not None:
                self._pending.append(event)
            elif self._db is not None:
                self._apply(event)

    def _apply(self, event: Event) -> None:
        assert self._db is not None
        d = event.data
        try:
            if event.type == "session":
                if d.get("action") == "deleted":
                    self._db = None  # its rows are gone from the ledger: rebuild on next use
                return
            if event.type == "request" and int(d.get("id") or 0) > self._marks[0]:
                self._add_request(self._db, d)
            elif event.type == "tool_call" and int(d.get("id") or 0) > self._marks[1]:
                self._add_tool_call(self._db, d)
        except (sqlite3.Error, TypeError, ValueError):
            log.warning("the dashboard rollup could not fold a %s event; rebuilding it",
                        event.type, exc_info=True)
            self._db = None

    @staticmethod
    def _add_request(db: sqlite3.Connection, d: dict[str, Any]) -> None:
        prompt = _first(d.get("prompt_tokens"), d.get("est_prompt_tokens"))
        completion = _first(d.get("completion_tokens"), d.get("est_completion_tokens"))
        saved_mask, saved_compress = int(d.get("saved_mask_tokens") or 0), int(d.get("saved_compress_tokens") or 0)
        cost = d.get("cost_usd")
        sums = (1, prompt, completion, saved_mask, saved_compress, float(cost or 0),
                int(d.get("status", "ok") != "ok"), int(d.get("cached_tokens") or 0))
        for size in SIZES:
            db.execute(_ROLL_UPSERT, (size, int(float(d["created_at"]) // size),
                                      d.get("source", "proxy"), d.get("provider", ""),
                                      d.get("model", ""), *sums))
        db.execute(_SESS_UPSERT, (d.get("session_id") or "", 1, prompt, completion, cost,
                                  saved_mask + saved_compress, float(d["created_at"]), 0))
        provider = d.get("provider", "")
        db.execute("INSERT INTO lat VALUES (?, ?, ?, ?)",
                   (provider, float(d["created_at"]), d.get("latency_ms"), d.get("ttft_ms")))
        if int(d.get("id") or 0) % 100 == 0:  # trim now and then, not on every row
            db.execute(f"""DELETE FROM lat WHERE provider = ? AND created_at < (
                SELECT created_at FROM lat WHERE provider = ? ORDER BY created_at DESC
                LIMIT 1 OFFSET {LATENCY_KEEP})""", (provider, provider))

    @staticmethod
    def _add_tool_call(db: sqlite3.Connection, d: dict[str, Any]) -> None:
        latency = float(d.get("latency_ms") or 0)
        db.execute(_TOOL_UPSERT, (int(float(d["created_at"]) // 60), d["tool"], d["family"], 1,
                                  int(bool(d.get("is_error"))), int(d.get("args_tokens") or 0),
                                  int(d.get("result_tokens") or 0), latency, latency))
        db.execute(_SESS_UPSERT, (d.get("session_id") or "", 0, 0, 0, None, 0, None, 1))


def _first(*values: Any) -> int:
    for v in values:
        if v is not None:
            return int(v)
    return 0
