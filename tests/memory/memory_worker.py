"""A memory engine in its own process, driven by JSON lines on stdin (the two-process test).

    python memory_worker.py DATA_DIR WORKSPACE

Each command is one JSON object per line; each answer is one JSON line on stdout. Every
command waits until its writes are committed, so the other process can read them.
"""

from __future__ import annotations

import json
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kimi_mcp.config import load_settings
from kimi_mcp.ledger import Ledger
from kimi_mcp.memory.engine import MemoryEngine


def answer(engine: MemoryEngine, cmd: dict[str, Any]) -> Any:
    op = cmd["op"]
    if op == "ready":
        engine.ready()
        return {"searchable": engine.vector_search.count()}
    if op == "store_many":
        return store_many(engine, cmd["prefix"], cmd["n"], cmd["threads"])
    if op == "store":
        return engine.store_sync(cmd["content"]).id
    if op == "store_text":
        return engine.store_text_sync(cmd["content"]).id
    if op == "get":
        return [item.content for item in engine.get_sync(cmd["ids"])]
    if op == "recall":
        return [[h.item.id, h.score] for h in engine.recall_sync(cmd["query"], limit=cmd["limit"])]
    if op == "delete":
        return engine.delete_sync(cmd["ids"])
    raise ValueError(f"unknown op {op!r}")


def store_many(engine: MemoryEngine, prefix: str, n: int, threads: int) -> dict[str, Any]:
    """Store n distinct memories from `threads` threads at once (as the MCP server's worker
    threads do); every failure is reported with its message."""

    def one(i: int) -> str:
        try:
            return engine.store_sync(f"{prefix} memory {i}: the build of service {i} uses port {i}").id
        except Exception as exc:  # reported to the test, which fails on it
            return f"ERROR {type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(one, range(n)))
    return {"ids": [r for r in results if not r.startswith("ERROR")],
            "errors": [r for r in results if r.startswith("ERROR")]}


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
    data_dir, workspace = Path(sys.argv[1]), Path(sys.argv[2])
    settings = load_settings(
        overrides={"data_dir": str(data_dir), "mcp": {"workspace": str(workspace)},
                   "memory": {"embedder": "hash"}},
        launch_dir=workspace,
    )
    ledger = Ledger(f"sqlite:///{data_dir / 'kimi-mcp.db'}")
    ledger.start()
    engine = MemoryEngine(settings, ledger)
    try:
        for line in sys.stdin:
            cmd = json.loads(line)
            try:
                result: Any = {"ok": answer(engine, cmd)}
                engine.flush_vectors()
                ledger.flush()
            except Exception as exc:  # reported to the test, which fails on it
                result = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(result), flush=True)
    finally:
        engine.close()
        ledger.close()


if __name__ == "__main__":
    main()
