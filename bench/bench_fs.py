"""Benchmark: our fs tools over stdio vs the reference @modelcontextprotocol/server-filesystem.

Prints figures (not a test). Both servers run as subprocesses on the same workspace and are
driven by the same raw newline-delimited JSON-RPC client, so the comparison is fair:

    python bench/bench_fs.py [--files 5000] [--reads 200] [--repeats 20] [--baseline-src DIR]

Measured: time from spawn to the `initialize` answer, `tools/list`, p50/p99 of read_file on a
100 KB file, get_file_info on a file three directories down, search_files over the tree,
directory_tree of the whole tree. The reference is installed with npm into
~/.cache/kimi-mcp-bench/ if missing and run with node.

`--baseline-src DIR` adds a row for the fs family of another source tree (e.g. an export of
an older commit, with `kimi_mcp/servers` linked to its `servers/`), run in the same session:
the before/after of a change, such as the time the use-time containment adds per call.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stdio import StdioClient

CACHE = Path.home() / ".cache" / "kimi-mcp-bench"
REFERENCE = "@modelcontextprotocol/server-filesystem"
ENTRY = CACHE / "node_modules" / "@modelcontextprotocol" / "server-filesystem" / "dist" / "index.js"

# The fs family alone, mounted the way kimi_mcp/server.py mounts it (no ledger, no other family).
FAMILY_ONLY = """
import sys
from pathlib import Path
from fastmcp import FastMCP
from kimi_mcp.config import load_settings
from kimi_mcp.deps import Deps
from kimi_mcp.servers.fs import build_server
ws = Path(sys.argv[1]).resolve()
settings = load_settings(overrides={"data_dir": sys.argv[2], "mcp": {"workspace": str(ws)}})
root = FastMCP("bench")
root.mount(build_server(Deps(settings=settings, ledger=None, memory=None, roots=[ws])), namespace="fs")
root.run(transport="stdio", show_banner=False)
"""


def ensure_reference() -> Path:
    if not ENTRY.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"installing {REFERENCE} into {CACHE} ...", file=sys.stderr)
        subprocess.run(
            ["npm", "install", "--prefix", str(CACHE), REFERENCE],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return ENTRY


def make_tree(root: Path, files: int) -> None:
    """`files` small files in a 3-level tree (1 in 10 is .py), plus big.txt of 100 KB."""
    per_dir = 50
    for n in range(files):
        d = root / f"pkg{n // (per_dir * 10):02d}" / f"mod{(n // per_dir) % 10}"
        if n % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        ext = ".py" if n % 10 == 0 else ".txt"
        (d / f"file{n:05d}{ext}").write_text(f"# file {n}\nvalue = {n}\n")
    line = "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor\n"
    (root / "big.txt").write_text((line * (102_400 // len(line) + 1))[:102_400])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(n: int, fn: Callable[[], dict[str, Any]]) -> tuple[list[float], dict[str, Any]]:
    times: list[float] = []
    reply: dict[str, Any] = {}
    for _ in range(n):
        start = time.perf_counter()
        reply = fn()
        times.append(time.perf_counter() - start)
    if "error" in reply or reply.get("result", {}).get("isError"):
        raise RuntimeError(f"call failed: {json.dumps(reply)[:400]}")
    return times, reply


def run_server(
    name: str,
    cmd: list[str],
    calls: dict[str, tuple[str, dict[str, Any]]],
    args: argparse.Namespace,
    env: dict[str, str],
    cwd: str,
) -> dict[str, Any]:
    client = StdioClient(cmd, env=env, cwd=cwd)
    try:
        _, t_init = client.initialize()
        list_times, listing = timed(args.repeats, lambda: client.request("tools/list"))
        figures: dict[str, Any] = {
            "name": name,
            "initialize": t_init,
            "tools": len(listing["result"]["tools"]),
            "tools/list": statistics.median(list_times),
        }
        for label, (tool, params) in calls.items():
            n = args.reads if label in ("read_file", "trivial", "file_info") else args.repeats
            request = {"name": tool, "arguments": params}
            call = _caller(client, request)
            timed(2, call)  # warm-up
            times, reply = timed(n, call)
            size = len(json.dumps(reply))
            figures[label] = (statistics.median(times), pct(times, 0.99), size)
        return figures
    finally:
        client.close()


def _caller(client: StdioClient, request: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    return lambda: client.request("tools/call", request)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--baseline-src", default="", help="source tree for a 'before' row")
    args = parser.parse_args()
    entry = ensure_reference()
    node = shutil.which("node") or "node"
    with tempfile.TemporaryDirectory(prefix="kimi-fs-bench-") as raw:
        base = Path(raw).resolve()
        ws, data = base / "ws", base / "data"
        ws.mkdir()
        make_tree(ws, args.files)
        env = {
            "KIMI_MCP_DATA_DIR": str(data),
            "XDG_CONFIG_HOME": str(base / "xdg"),
            "FASTMCP_SHOW_SERVER_BANNER": "false",
        }
        big, glob = str(ws / "big.txt"), "**/*.py"
        deep = str(ws / "pkg00" / "mod0" / "file00001.txt")
        ours = {
            "trivial": ("fs_list_allowed_directories", {}),
            "read_file": ("fs_read_file", {"path": big}),
            "file_info": ("fs_get_file_info", {"path": deep}),
            "search_files": (
                "fs_search_files",
                {"path": str(ws), "pattern": glob, "max_results": 1000},
            ),
            "directory_tree": (
                "fs_directory_tree",
                {"path": str(ws), "max_depth": 50, "max_entries": 20000},
            ),
        }
        reference = {
            "trivial": ("list_allowed_directories", {}),
            "read_file": ("read_text_file", {"path": big}),
            "file_info": ("get_file_info", {"path": deep}),
            "search_files": ("search_files", {"path": str(ws), "pattern": glob}),
            "directory_tree": ("directory_tree", {"path": str(ws)}),
        }
        rows = [
            run_server("reference (node)", [node, str(entry), str(ws)], reference, args, env, raw),
            run_server(
                "kimi-mcp stdio",
                [sys.executable, "-m", "kimi_mcp", "stdio", "--workspace", str(ws)],
                ours,
                args,
                env,
                raw,
            ),
            run_server(
                "fs family alone",
                [sys.executable, "-c", FAMILY_ONLY, str(ws), str(data)],
                ours,
                args,
                env,
                raw,
            ),
        ]
        if args.baseline_src:
            baseline_env = {**env, "PYTHONPATH": str(Path(args.baseline_src).resolve())}
            rows.append(
                run_server(
                    "fs family, before",
                    [sys.executable, "-c", FAMILY_ONLY, str(ws), str(data)],
                    ours,
                    args,
                    baseline_env,
                    raw,
                )
            )
    report(rows, args)
    return 0


CALLS = ("trivial", "read_file", "file_info", "search_files", "directory_tree")


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    ref = rows[0]
    print(
        f"workspace: {args.files} files + big.txt (100 KB); {args.reads} reads, {args.repeats} repeats"
    )
    print("trivial = list_allowed_directories (the per-call overhead of each server)")
    head = "".join(f"{k + ' p50/p99 ms':>27}" for k in CALLS)
    print(f"{'server':<18} {'tools':>5} {'init s':>8} {'list ms':>8}{head}")
    for row in rows:
        cells = "".join(f"{f'{row[k][0] * 1e3:.2f}/{row[k][1] * 1e3:.2f}':>27}" for k in CALLS)
        print(
            f"{row['name']:<18} {row['tools']:>5} {row['initialize']:8.3f} "
            f"{row['tools/list'] * 1e3:8.2f}{cells}"
        )
    for row in rows[1:]:
        ratios = ", ".join(f"{k} {ref[k][0] / row[k][0]:.2f}x" for k in CALLS)
        print(
            f"speed-up of {row['name']} vs reference (p50; >1 is faster): {ratios}; "
            f"initialize {ref['initialize'] / row['initialize']:.2f}x, "
            f"tools/list {ref['tools/list'] / row['tools/list']:.2f}x"
        )
    sizes = ", ".join(f"{k} {rows[1][k][2]} vs {ref[k][2]}" for k in CALLS[1:])
    print(f"answer sizes (bytes, ours vs reference): {sizes}")
    if len(rows) > 3:
        after, before = rows[2], rows[3]
        added = ", ".join(
            f"{k} {(after[k][0] - before[k][0]) * 1e6:+.0f} us" for k in CALLS
        )
        print(f"per call, fs family now minus before (p50): {added}")


if __name__ == "__main__":
    raise SystemExit(main())
