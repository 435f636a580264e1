"""tasks_next and tasks_list on a 2,000-task board: p50/p99, against naive baselines.

    python bench/bench_tasks.py [--tasks 2000] [--rounds 200]

Three levels are timed in the same run:
  engine   the board + next-task rule as the tools call them: the parsed file and the answer are
           kept until the file changes; "rule only" and "after a write" show the cold costs
  naive    what a straightforward implementation does: read and parse tasks.json on every call
           and look each dependency up by scanning the task list
  server   the real tools through `FastMCP.call_tool` (argument validation, pydantic result)
  client   the same through an in-process fastmcp Client: adds MCP framing and the client's
           JSON-schema validation of the structured result, which dominates for long lists
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from fastmcp import Client
from kimi_mcp.servers.tasks import build_server
from kimi_mcp.servers.tasks.board import TaskBoard
from kimi_mcp.servers.tasks.graph import _next_task, next_task

from kimi_mcp.config import load_settings
from kimi_mcp.deps import Deps

STATUSES = ["done"] * 6 + ["pending"] * 3 + ["in-progress", "deferred", "review"]
PRIORITIES = ["low", "medium", "medium", "high", "critical"]
RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1}


def make_board(n: int, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    tasks = []
    for i in range(1, n + 1):
        status = rng.choice(STATUSES)
        deps = sorted(rng.sample(range(1, i), k=min(i - 1, rng.randint(0, 3))))
        subtasks = [{"id": s, "title": f"Step {s} of {i}", "description": "", "status":
                     "done" if status == "done" else rng.choice(["pending", "done"]),
                     "dependencies": [s - 1] if s > 1 else [], "details": "x" * 80}
                    for s in range(1, rng.randint(0, 5) + 1)]
        tasks.append({"id": i, "title": f"Task {i}: implement part {i}", "description": "d" * 120,
                      "status": status, "dependencies": deps, "priority": rng.choice(PRIORITIES),
                      "details": "- step\n" * 8, "testStrategy": "t" * 60, "subtasks": subtasks})
    # keep the next-task search honest: the best candidates sit near the end
    return {"master": {"tasks": tasks, "metadata": {"created": "2025-01-01T00:00:00.000Z"}}}


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p99 * 1000


def timed(fn: Callable[[], Any], rounds: int) -> tuple[float, float]:
    fn()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return percentiles(samples)


def naive_next(path: Path) -> Any:
    """The same rule, written the obvious way: parse per call, find each dependency by scanning."""
    tasks = json.loads(path.read_text())["master"]["tasks"]

    def status_of(dep: Any, parent: Any = None) -> str:
        text = str(dep)
        if parent is not None and "." not in text:
            text = f"{parent}.{text}"
        for t in tasks:  # linear lookup per dependency
            if "." not in text and str(t["id"]) == text:
                return str(t["status"])
            for s in t.get("subtasks") or []:
                if f"{t['id']}.{s['id']}" == text:
                    return str(s["status"])
        return "missing"

    subs = [(t, s) for t in tasks if t["status"] == "in-progress" for s in t.get("subtasks") or []
            if s["status"] in ("pending", "in-progress")
            and all(status_of(d, t["id"]) == "done" for d in s["dependencies"])]
    if subs:
        subs.sort(key=lambda p: (-RANK.get(p[0]["priority"], 2), len(p[1]["dependencies"]),
                                 p[0]["id"], p[1]["id"]))
        return f"{subs[0][0]['id']}.{subs[0][1]['id']}"
    ready = [t for t in tasks if t["status"] in ("pending", "in-progress")
             and all(status_of(d) == "done" for d in t["dependencies"])]
    ready.sort(key=lambda t: (-RANK.get(t["priority"], 2), len(t["dependencies"]), t["id"]))
    return str(ready[0]["id"]) if ready else None


def naive_list(path: Path) -> str:
    tasks = json.loads(path.read_text())["master"]["tasks"]
    rows = [{k: t[k] for k in ("id", "title", "status", "priority", "dependencies")} for t in tasks]
    return json.dumps(rows)


def engine_list(board: TaskBoard) -> str:
    view = board.snapshot().tag("master")
    rows = [{k: t[k] for k in ("id", "title", "status", "priority", "dependencies")} for t in view.tasks]
    return json.dumps(rows)


async def tool_figures(ws: Path, data_dir: Path, rounds: int) -> dict[str, tuple[float, float]]:
    settings = load_settings(overrides={"data_dir": str(data_dir), "mcp": {"workspace": str(ws)}},
                             launch_dir=data_dir)
    server = build_server(Deps(settings=settings, ledger=None, memory=None, roots=[ws]))  # type: ignore[arg-type]
    cases = [
        ("tasks_next", "next", {}, rounds),
        ("tasks_list status=pending", "list", {"status": "pending", "limit": 0}, max(20, rounds // 4)),
        ("tasks_list default (200 rows)", "list", {}, max(20, rounds // 4)),
        ("tasks_list all 2k rows", "list", {"limit": 0}, max(10, rounds // 10)),
    ]
    out: dict[str, tuple[float, float]] = {}

    async def measure(call: Callable[[], Any], n: int) -> tuple[float, float]:
        await call()
        samples = []
        for _ in range(n):
            start = time.perf_counter()
            await call()
            samples.append(time.perf_counter() - start)
        return percentiles(samples)

    for label, name, args, n in cases:
        out[f"server {label}"] = await measure(lambda: server.call_tool(name, args), n)  # noqa: B023
    async with Client(server) as client:
        for label, name, args, n in cases:
            out[f"client {label}"] = await measure(lambda: client.call_tool(name, args), n)  # noqa: B023
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        path = ws / ".taskmaster" / "tasks" / "tasks.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(make_board(args.tasks), indent=2))
        board = TaskBoard(ws)
        found = next_task(board.snapshot().tag("master"))
        baseline = naive_next(path)
        assert found is not None and baseline is not None and found[0] == baseline
        size_kb = path.stat().st_size / 1024
        view = board.snapshot().tag("master")
        rows = {
            "engine next, board unchanged": timed(lambda: next_task(board.snapshot().tag("master")), args.rounds),
            "engine next, rule only (cold)": timed(lambda: _next_task(view), args.rounds),
            "engine next, after a write (parse+rule)": timed(
                lambda: next_task(TaskBoard(ws).snapshot().tag("master")), max(20, args.rounds // 4)),
            "naive  next (parse + scan)": timed(lambda: naive_next(path), max(20, args.rounds // 4)),
            "engine list": timed(lambda: engine_list(board), args.rounds),
            "naive  list (parse per call)": timed(lambda: naive_list(path), args.rounds // 2),
        }
        rows.update(anyio.run(tool_figures, ws, Path(tmp), args.rounds))
    print(f"board: {args.tasks} tasks, tasks.json {size_kb:.0f} KiB; next task = {found[0]}")
    print(f"{'case':<42}{'p50 ms':>10}{'p99 ms':>10}")
    for label, (p50, p99) in rows.items():
        print(f"{label:<42}{p50:>10.2f}{p99:>10.2f}")


if __name__ == "__main__":
    main()
