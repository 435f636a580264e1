"""json_query and json_structure on a generated ~50 MB file, against a naive baseline.

Ours: the `json` family through an in-memory fastmcp Client (so MCP overhead is included);
the first call parses and caches, later calls reuse the parse while the file is unchanged.
Baseline, measured in the same run: what a simple JSON tool does per call — `json.load` the
file, then run jsonpath-rfc9535 (query) or walk every node to build the outline (structure).
The last rows time the JSONPath evaluation alone on one parsed document: the family's
`find` (jsonpath-rfc9535 with the collector paused, locations collected) against the
library's plain `find`.

Run: python bench/bench_json.py [--mb 50] [--runs 20]
Percentiles are nearest-rank; with fewer than 100 runs p99 is the slowest run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import jsonpath_rfc9535
from fastmcp import Client, FastMCP
from kimi_mcp.servers.jsonq import build_server
from kimi_mcp.servers.jsonq.paths import find

from kimi_mcp.config import load_settings
from kimi_mcp.deps import Deps


def queries(count: int) -> dict[str, str]:
    middle = count // 2
    return {
        "point": f"$.users[{middle}].email",
        "filter": f"$.users[?@.id == {middle}].email",
        "descend": "$..zip",
    }


def user(i: int, rng: random.Random) -> dict[str, Any]:
    return {
        "id": i,
        "name": f"user{i}",
        "email": f"user{i}@example.com",
        "active": i % 3 == 0,
        "score": round(rng.random() * 100, 3),
        "tags": rng.sample(["a", "b", "c", "d", "e", "f"], 3),
        "address": {
            "city": rng.choice(["Paris", "Berlin", "Oslo"]),
            "zip": f"{rng.randint(10000, 99999)}",
        },
        "history": [{"ts": 1_700_000_000 + j, "event": "login"} for j in range(3)],
    }


def generate(path: Path, megabytes: float) -> int:
    rng = random.Random(7)
    probe = len(json.dumps({"users": [user(0, rng)]}, indent=2))
    count = int(megabytes * 1_000_000 / probe)
    doc = {"meta": {"version": 3, "count": count}, "users": [user(i, rng) for i in range(count)]}
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return count


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def row(name: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return f"{name:34} n={len(ms):3}  p50 {pct(ms, 0.5):10.1f} ms  p99 {pct(ms, 0.99):10.1f} ms"


async def timed(fn: Callable[[], Awaitable[Any]], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - start)
    return out


def naive_outline(value: Any, path: str, seen: dict[str, set[str]]) -> None:
    seen.setdefault(path, set()).add(type(value).__name__)
    if isinstance(value, dict):
        for key, item in value.items():
            naive_outline(item, f"{path}.{key}", seen)
    elif isinstance(value, list):
        for item in value:
            naive_outline(item, f"{path}[*]", seen)


def naive_query(path: Path, expression: str) -> int:
    with path.open(encoding="utf-8") as handle:
        doc = json.load(handle)
    return len(jsonpath_rfc9535.find(expression, doc))


def naive_structure(path: Path) -> int:
    with path.open(encoding="utf-8") as handle:
        doc = json.load(handle)
    seen: dict[str, set[str]] = {}
    naive_outline(doc, "$", seen)
    return len(seen)


def sync_timed(fn: Callable[[], Any], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


async def bare_calls(runs: int) -> list[float]:
    """A one-line tool through the same in-memory client: the floor every call pays."""
    bare = FastMCP("bare")

    @bare.tool
    def ping() -> int:
        return 1

    async with Client(bare) as client:
        return await timed(lambda: client.call_tool("ping", {}), runs)


async def ours(ws: Path, runs: int, count: int) -> None:
    named = queries(count)
    deps = Deps(
        settings=load_settings(
            overrides={"data_dir": str(ws.parent / "data"), "mcp": {"workspace": str(ws)}}
        ),
        ledger=None,  # type: ignore[arg-type]
        memory=None,  # type: ignore[arg-type]
    )
    async with Client(build_server(deps)) as client:

        async def query(expression: str) -> None:
            args = {"expression": expression, "path": "big.json", "limit": 5}
            result = await client.call_tool("query", args)
            assert result.structured_content and result.structured_content["total"] >= 1

        async def structure() -> None:
            result = await client.call_tool("structure", {"path": "big.json", "max_depth": 4})
            assert result.structured_content and result.structured_content["nodes"]

        print(row("bare fastmcp tool call (context)", await bare_calls(runs)))
        print(row("ours json_structure (cold: parse)", await timed(structure, 1)))
        print(row("ours json_structure (cached)", await timed(structure, runs)))
        print(
            row("ours json_query point (cached)", await timed(lambda: query(named["point"]), runs))
        )
        print(
            row(
                "ours json_query filter (cached)",
                await timed(lambda: query(named["filter"]), runs),
            )
        )
        print(
            row(
                "ours json_query $..zip (cached)",
                await timed(lambda: query(named["descend"]), max(3, runs // 4)),
            )
        )


def evaluators(path: Path, named: dict[str, str], runs: int) -> None:
    """The JSONPath evaluation alone on one parsed document: ours vs the bare library."""
    with path.open(encoding="utf-8") as handle:
        doc = json.load(handle)
    for name, expression in named.items():
        compiled = jsonpath_rfc9535.compile(expression)
        n = runs if name != "descend" else max(1, runs // 4)
        print(row(f"evaluator ours  {name}", sync_timed(lambda e=expression: find(doc, e), n)))
        print(row(f"evaluator bare  {name}", sync_timed(lambda c=compiled: c.find(doc), n)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--baseline-runs", type=int, default=3)
    parser.add_argument("--skip-evaluators", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        ws.mkdir()
        big = ws / "big.json"
        count = generate(big, args.mb)
        print(
            f"file: {big.stat().st_size / 1e6:.1f} MB, {count:,} users; python "
            f"{sys.version.split()[0]}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus"
        )
        anyio.run(ours, ws, args.runs, count)
        named = queries(count)
        n = args.baseline_runs
        print(row("naive structure (load + walk)", sync_timed(lambda: naive_structure(big), n)))
        print(
            row(
                "naive query point (load + lib)",
                sync_timed(lambda: naive_query(big, named["point"]), n),
            )
        )
        print(
            row(
                "naive query filter (load + lib)",
                sync_timed(lambda: naive_query(big, named["filter"]), n),
            )
        )
        print(
            row(
                "naive query $..zip (load + lib)",
                sync_timed(lambda: naive_query(big, named["descend"]), 1),
            )
        )
        if not args.skip_evaluators:
            evaluators(big, named, max(3, args.runs // 4))


if __name__ == "__main__":
    main()
