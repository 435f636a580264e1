"""Dashboard figures over a 100,000-row ledger.

1. The API calls the page makes on first load, issued together as the browser does: wall time
   p50/p99 (target: <= 200 ms together), and each call's own p50.
2. Ledger commit -> WebSocket client: a real uvicorn on loopback, a real WebSocket client;
   the time from the writer thread's commit (the bus callback) to the client's receipt
   (target: <= 100 ms).

    python bench/bench_dashboard.py [--rows 100000] [--rounds 30] [--events 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from kimi_mcp.app import create_app
from kimi_mcp.config import load_settings
from kimi_mcp.deps import Deps
from kimi_mcp.ledger import Ledger
from kimi_mcp.ledger.models import Request, ToolCall


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p * len(ordered) + 0.5) - 1))]


def build(root: Path) -> Deps:
    settings = load_settings(overrides={
        "data_dir": str(root / "data"), "mcp": {"workspace": str(root / "ws")},
        "memory": {"embedder": "hash"}, "logwatch": {"enabled": False},
    }, launch_dir=root)
    (root / "ws").mkdir(exist_ok=True)
    ledger = Ledger(settings.database_url())
    ledger.start()
    deps = Deps(settings=settings, ledger=ledger, memory=None)  # type: ignore[arg-type]
    try:
        from kimi_mcp.memory.engine import MemoryEngine

        deps.memory = MemoryEngine(settings, ledger)
    except ImportError:
        pass
    return deps


def fill(deps: Deps, rows: int) -> list[str]:
    sessions = [deps.sessions.create_sync(f"bench-{i}")["id"] for i in range(8)]
    rng = random.Random(7)
    now = time.time()
    providers = {"kimi": ["kimi-k2-0905-preview", "kimi-k2-turbo-preview"],
                 "groq": ["moonshotai/kimi-k2-instruct"], "openrouter": ["moonshotai/kimi-k2"],
                 "gemini": ["gemini-2.5-flash"]}
    names = list(providers)
    for i in range(rows):
        p = names[i % len(names)]
        deps.ledger.insert(
            Request, created_at=now - rng.random() * 86_400 * 2, session_id=rng.choice(sessions),
            provider=p, model=rng.choice(providers[p]), source="proxy" if i % 7 else "continue-log",
            status="ok" if i % 50 else "error", http_status=200 if i % 50 else 502,
            prompt_tokens=rng.randint(500, 120_000), completion_tokens=rng.randint(10, 2000),
            est_prompt_tokens=rng.randint(500, 120_000), cost_usd=rng.random() / 100,
            ttft_ms=rng.uniform(100, 900), latency_ms=rng.uniform(200, 9000),
            saved_mask_tokens=rng.choice([0, 0, 1200, 4000]), context_window=262_144)
        if i % 10 == 0:
            deps.ledger.insert(ToolCall, created_at=now - rng.random() * 86_400,
                               session_id=rng.choice(sessions), tool="fs_read_file", family="fs",
                               args_tokens=20, result_tokens=rng.randint(10, 5000),
                               latency_ms=rng.uniform(1, 30))
    deps.ledger.flush(timeout=600)
    return sessions


def first_page(session: str) -> list[str]:
    """What web/js/main.js loadAll() asks for (the gauge's call follows the others)."""
    return ["/api/settings", "/api/providers", "/api/sessions", "/api/requests?limit=100",
            "/api/tool-calls?limit=100", "/api/stats/timeseries?range=24h", "/api/mcp",
            f"/api/sessions/{session}/requests?limit=1"]


async def bench_api(app: Any, session: str, rounds: int) -> None:
    paths = first_page(session)
    together: list[float] = []
    each: dict[str, list[float]] = {p: [] for p in paths}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:

        async def one(path: str) -> None:
            t0 = time.perf_counter()
            resp = await client.get(path)
            resp.raise_for_status()
            each[path].append((time.perf_counter() - t0) * 1000)

        for i in range(rounds + 2):
            t0 = time.perf_counter()
            await asyncio.gather(*(one(p) for p in paths))
            if i == 0:
                print(f"first page, cold (the rollup is built by this round): "
                      f"{(time.perf_counter() - t0) * 1000:.0f} ms")
            if i >= 2:  # two warm-up rounds
                together.append((time.perf_counter() - t0) * 1000)
    print(f"first page, {len(paths)} API calls together: p50 {pct(together, .5):.1f} ms  "
          f"p99 {pct(together, .99):.1f} ms  (target <= 200 ms)")
    for path, values in each.items():
        print(f"  {path.split('?')[0]:<36} p50 {statistics.median(values[2:]):7.1f} ms")


def serve(app: Any) -> tuple[Any, int]:
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server, port


async def bench_ws(deps: Deps, port: int, events: int) -> None:
    import websockets

    committed: dict[str, float] = {}
    deps.ledger.bus.on_event(
        lambda e: committed.setdefault(e.data.get("uid", ""), time.perf_counter())
        if e.type == "request" else None)
    delays: list[float] = []
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as ws:
        json.loads(await ws.recv())  # hello
        for i in range(events):
            uid = f"bench{i:06d}"
            deps.ledger.insert(Request, uid=uid, provider="kimi", model="kimi-k2-0905-preview",
                               prompt_tokens=1000 + i, completion_tokens=10)
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if msg["type"] == "request" and msg["data"].get("uid") == uid:
                    delays.append((time.perf_counter() - committed[uid]) * 1000)
                    break
            await asyncio.sleep(0.005)
    print(f"ledger commit -> WebSocket client, {events} events: p50 {pct(delays, .5):.2f} ms  "
          f"p99 {pct(delays, .99):.2f} ms  max {max(delays):.2f} ms  (target <= 100 ms)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--events", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        deps = build(Path(tmp))
        t0 = time.perf_counter()
        sessions = fill(deps, args.rows)
        print(f"ledger: {args.rows} requests + {args.rows // 10} tool calls written in "
              f"{time.perf_counter() - t0:.1f} s")
        app = create_app(deps.settings, deps)
        server, port = serve(app)
        try:
            asyncio.run(bench_api(app, sessions[0], args.rounds))
            asyncio.run(bench_ws(deps, port, args.events))
        finally:
            server.should_exit = True
            time.sleep(0.5)
            deps.ledger.close()


if __name__ == "__main__":
    main()
