"""Foundation figures: ledger writes/s and the durability step (SQLite and PostgreSQL side by
side), summary queries at 100k rows, token counting, stdio cold start.

Each figure is printed beside a baseline measured in the same run:
  - ledger: 8 threads appending durable rows (spool + batched commits) vs the naive "one session
    + commit per row", on SQLite and on PostgreSQL (--postgres URL; default the loopback server)
  - durability: what one proxied call pays for its row being crash-proof (`Ledger.reserve`:
    the row written to the spool) vs the same call without a spool (the in-memory entry)
  - summary: the rollup-backed aggregate vs loading the rows into Python and summing there
  - tokens: count_chat with its per-string cache (a resent conversation) vs cold encoding
  - cold start: `kimi-mcp stdio` (all families) vs a bare one-tool fastmcp server
  - rate limits: a provider's rpm/tpm check shared through Redis (`[cluster] redis_url`, one Lua
    script per call) vs the worker's own buckets (--redis URL; default the loopback server)

Run: python bench/bench_foundation.py [--rows 100000] [--starts 7] [--postgres URL|none]
     [--redis URL|none]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stdio import StdioClient

from kimi_mcp import tokens
from kimi_mcp.ledger import Ledger, RequestRow, open_ledger, queries
from kimi_mcp.ledger.models import Request

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/0"

TRACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def line(name: str, value: str, note: str = "") -> None:
    print(f"  {name:<44} {value:>16}  {note}")


def _row(i: int) -> RequestRow:
    return RequestRow(provider="kimi", model="kimi-k2", prompt_tokens=i, completion_tokens=10,
                      cost_usd=0.0001, latency_ms=12.5, meta={"route": "kimi/kimi-k2"})


def _ours(url: str, spool: Path, per_writer: int) -> float:
    ledger = open_ledger(url, spool)
    ledger.start()
    start = time.perf_counter()

    def writer() -> None:
        for i in range(per_writer):
            ledger.append(_row(i))

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ledger.flush()
    rate = 8 * per_writer / (time.perf_counter() - start)
    assert ledger.stats().dropped_rows == 0 and ledger.stats().spool_pending == 0
    ledger.close()
    return rate


def _naive(url: str, n: int = 1000) -> float:
    from sqlmodel import Session, create_engine

    engine = create_engine(url)
    Request.metadata.create_all(engine)
    start = time.perf_counter()
    for i in range(n):
        with Session(engine) as db:
            db.add(Request(provider="kimi", model="kimi-k2", prompt_tokens=i))
            db.commit()
    rate = n / (time.perf_counter() - start)
    engine.dispose()
    return rate


def bench_writes(tmp: Path, per_writer: int, postgres: str | None) -> None:
    print("ledger writes (8 concurrent writers, every row durable before append returns)")
    backends = [("SQLite", lambda: f"sqlite:///{tmp / 'writes.db'}",
                 lambda: f"sqlite:///{tmp / 'naive.db'}", 5000)]
    if postgres:
        backends.append(("PostgreSQL", lambda: _pg_schema(postgres, "w"),
                         lambda: _pg_schema(postgres, "n"), 2000))
    for name, ours_url, naive_url, target in backends:
        ours = _ours(ours_url(), tmp / f"spool-{name}", per_writer)
        naive = _naive(naive_url())
        line(f"{name}: spool + single writer, batched", f"{ours:,.0f} rows/s",
             f"(target >= {target:,})")
        line(f"{name}: baseline one ORM session + commit per row", f"{naive:,.0f} rows/s",
             f"ratio {ours / naive:.1f}x")


_SCHEMAS: list[str] = []


def _pg_schema(base: str, tag: str) -> str:
    """A fresh schema on the server, dropped at exit."""
    import secrets
    from urllib.parse import quote

    import psycopg

    name = f"bench_{tag}_{secrets.token_hex(4)}"
    with psycopg.connect(base.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    _SCHEMAS.append(name)
    return f"{base}?options={quote(f'-csearch_path={name}')}"


def _drop_schemas(base: str) -> None:
    import psycopg

    with psycopg.connect(base.replace("+psycopg", ""), autocommit=True) as conn:
        for name in _SCHEMAS:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def bench_durability(tmp: Path, postgres: str | None, calls: int = 20_000) -> None:
    """The request path's share of the ledger: build the call's row and make it crash-proof."""
    print(f"durability step per proxied call ({calls:,} calls, row built + reserved)")
    urls = [("SQLite", f"sqlite:///{tmp / 'durable.db'}")]
    if postgres:
        urls.append(("PostgreSQL", _pg_schema(postgres, "d")))
    for name, url in urls:
        results = {}
        for mode, spool in (("spool", tmp / f"dspool-{name}"), ("none", None)):
            ledger = Ledger(url, spool_dir=spool)
            samples = []
            for i in range(calls):
                t = time.perf_counter()
                ledger.reserve(_row(i))
                samples.append((time.perf_counter() - t) * 1e6)
            results[mode] = samples
            ledger.spool.close()
        spool_p50, none_p50 = statistics.median(results["spool"]), statistics.median(results["none"])
        line(f"{name}: reserve() with the spool write", f"p50 {spool_p50:.1f} us",
             f"p99 {pct(results['spool'], .99):.1f} us")
        line(f"{name}: baseline: reserve() without a spool", f"p50 {none_p50:.1f} us",
             f"p99 {pct(results['none'], .99):.1f} us")
        line(f"{name}: added by durability", f"p50 {(spool_p50 - none_p50) / 1000:.3f} ms",
             "(target <= 0.2 ms)")


def bench_summary(tmp: Path, rows: int) -> None:
    print(f"summary queries at {rows:,} rows")
    ledger = Ledger(f"sqlite:///{tmp / 'summary.db'}")
    ledger.start()
    now = time.time()
    for i in range(rows):
        ledger.append(RequestRow(provider=("kimi", "groq", "gemini")[i % 3], model=f"m{i % 7}",
                                 session_id=f"s{i % 20}", prompt_tokens=100 + i % 50,
                                 completion_tokens=20, cost_usd=0.0002, latency_ms=100 + i % 900,
                                 created_at=now - rows + i))
    ledger.flush()

    def timed(fn, runs: int = 30) -> list[float]:  # type: ignore[no-untyped-def]
        out = []
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t) * 1000)
        return out

    def ours() -> None:
        with ledger.read() as db:
            queries.summary(db)
            queries.breakdown(db, "provider")
            queries.breakdown(db, "model")

    def session_only() -> None:
        with ledger.read() as db:
            queries.summary(db, session_id="s3")

    def naive() -> None:
        with ledger.read() as db:
            from sqlmodel import select

            all_rows = db.exec(select(Request)).all()
            sum(r.prompt_tokens or 0 for r in all_rows)

    a, b, c = timed(ours), timed(session_only), timed(naive, 3)
    line("totals + by provider + by model", f"p50 {statistics.median(a):.1f} ms", f"p99 {pct(a, .99):.1f} ms (target <= 50)")
    line("one session's totals (indexed)", f"p50 {statistics.median(b):.1f} ms", f"p99 {pct(b, .99):.1f} ms")
    line("baseline: load rows into Python and sum", f"p50 {statistics.median(c):.1f} ms",
         f"ratio {statistics.median(c) / statistics.median(a):.0f}x slower")
    ledger.close()


def bench_tokens() -> None:
    print("token counting (cl100k_base, offline)")
    path = TRACES / "swe-agent.jsonl"
    bodies = []
    if path.exists():
        with path.open() as fh:
            for raw in fh:
                record = json.loads(raw)
                messages = record.get("messages") or record.get("conversation") or []
                if messages:
                    bodies.append({"messages": messages})
    if not bodies:
        bodies = [{"messages": [{"role": "user", "content": "def f(x):\n    return x * 2\n" * 400}]}]
    tokens.count_text("warm up the encoder")
    tokens.clear_cache()
    start = time.perf_counter()
    total = sum(tokens.count_chat(b) for b in bodies)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    again = sum(tokens.count_chat(b) for b in bodies)
    warm = time.perf_counter() - start
    assert total == again
    line("cold (every string encoded)", f"{total / cold:,.0f} tok/s", f"{len(bodies)} conversations, {total:,} tokens")
    line("resent conversation (per-string cache)", f"{total / warm:,.0f} tok/s", f"ratio {cold / warm:.0f}x")


def bench_cold_start(starts: int, tmp: Path) -> None:
    print(f"stdio cold start to the initialize answer ({starts} runs each)")
    bare = tmp / "bare.py"
    bare.write_text("from fastmcp import FastMCP\nm = FastMCP('bare')\n@m.tool\ndef ping() -> str:\n"
                    "    return 'pong'\nm.run(show_banner=False)\n")
    env = {"KIMI_MCP_DATA_DIR": str(tmp / "data")}
    results: dict[str, list[float]] = {"ours": [], "bare": []}
    for _ in range(starts):
        for name, cmd in (("ours", [str(Path(sys.executable).with_name("kimi-mcp")), "stdio", "--workspace",
                                   str(tmp)]),
                          ("bare", [sys.executable, str(bare)])):
            client = StdioClient(cmd, env=env)
            _, elapsed = client.initialize()
            if name == "ours":
                t = time.perf_counter()
                client.request("tools/list")
                results.setdefault("tools_list", []).append((time.perf_counter() - t) * 1000)
            client.close()
            results[name].append(elapsed)
    o, b, tl = results["ours"], results["bare"], results["tools_list"]
    line("kimi-mcp stdio (5 families, 43 tools)", f"p50 {statistics.median(o):.2f} s", f"max {max(o):.2f} s (target <= 1.0)")
    line("baseline: bare one-tool fastmcp server", f"p50 {statistics.median(b):.2f} s", f"ratio {statistics.median(o) / statistics.median(b):.2f}x")
    line("first tools/list after initialize", f"p50 {statistics.median(tl):.1f} ms", "")


def bench_limits(redis_url: str, calls: int = 5_000) -> None:
    """What a proxied call to a provider with rpm/tpm pays for its limit check."""
    import asyncio
    import secrets

    from kimi_mcp.catalog import Catalog
    from kimi_mcp.config import ClusterSettings, load_settings
    from kimi_mcp.proxy import cluster
    from kimi_mcp.proxy.limits import Limiter

    print(f"rate-limit check per proxied call ({calls:,} calls each, rounds interleaved)")
    settings = load_settings(overrides={"providers": {"kimi": {
        "api_key": "x", "rpm": 10**9, "tpm": 10**12}}})
    provider = Catalog(settings).providers["kimi"]
    prefix = f"bench-{secrets.token_hex(4)}:"

    async def run() -> dict[str, list[float]]:
        shared = cluster.connect(ClusterSettings(redis_url=redis_url, key_prefix=prefix))
        assert shared is not None
        limiters = {"local": Limiter(), "redis": cluster.SharedLimiter(cluster=shared)}
        samples: dict[str, list[float]] = {"local": [], "redis": []}
        try:
            await limiters["redis"].acquire(provider, 100)  # connect and load the script
            for _ in range(10):
                for name, limiter in limiters.items():
                    for _ in range(calls // 10):
                        t = time.perf_counter()
                        await limiter.acquire(provider, 1000)
                        samples[name].append((time.perf_counter() - t) * 1e6)
            assert shared.state()["shared"], "Redis did not answer"
        finally:
            keys = [k async for k in shared.client.scan_iter(match=prefix + "*")]
            if keys:
                await shared.client.delete(*keys)
            await shared.aclose()
        return samples

    samples = asyncio.run(run())
    for name, label in (("redis", "shared through Redis (one Lua script)"),
                        ("local", "baseline: this worker's own buckets")):
        values = samples[name]
        line(label, f"p50 {statistics.median(values):.1f} us", f"p99 {pct(values, .99):.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--per-writer", type=int, default=5_000)
    parser.add_argument("--starts", type=int, default=7)
    parser.add_argument("--postgres", default=POSTGRES,
                        help="a PostgreSQL URL (a schema is made and dropped), or 'none'")
    parser.add_argument("--redis", default=REDIS,
                        help="a Redis URL for the shared rate-limit figure, or 'none'")
    parser.add_argument("--only", choices=["ledger"], help="only the ledger figures")
    args = parser.parse_args()
    postgres = None if args.postgres == "none" else args.postgres
    with tempfile.TemporaryDirectory() as raw:
        tmp = Path(raw)
        try:
            bench_writes(tmp, args.per_writer, postgres)
            bench_durability(tmp, postgres)
        finally:
            if postgres:
                _drop_schemas(postgres)
        if args.redis != "none":
            bench_limits(args.redis)
        if args.only == "ledger":
            return
        bench_summary(tmp, args.rows)
        bench_tokens()
        bench_cold_start(args.starts, tmp)


if __name__ == "__main__":
    main()
