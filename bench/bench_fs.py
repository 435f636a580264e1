"""Benchmark: our fs tools over stdio vs the reference @modelcontextprotocol/server-filesystem.

Prints figures (not a test). Both servers run as subprocesses on the same workspace and are
driven by the same raw newline-delimited JSON-RPC client, so the comparison is fair:

    python bench/bench_fs.py [--files 5000] [--reads 200] [--repeats 20] [--rounds 3]
                             [--baseline-src DIR]

Rows: the reference, `kimi-mcp stdio` as agents launch it (all five families, 43 tools, the
ledger recording every call) and the fs family alone on a bare FastMCP. Measured in rounds of
fresh processes, interleaved call by call so the load of a shared machine hits every row
alike: time from spawn to the `initialize` answer, from spawn to the first tool call answered
(`ready`: everything loaded), `tools/list`, p50/p99 of a trivial call (list_allowed_directories),
read_file on a 100 KB file, get_file_info on a file three directories down, search_files over
the tree, directory_tree of the whole tree. The load average is printed with the figures. The
reference is installed with npm into ~/.cache/kimi-mcp-bench/ if missing and run with node.

`--baseline-src DIR` adds rows for another source tree (e.g. an export of an older commit, with
`kimi_mcp/servers` linked to its `servers/`), run in the same session: the fs family alone and
the whole `kimi-mcp stdio`, the before/after of a change.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stdio import StdioClient

CACHE = Path.home() / ".cache" / "kimi-mcp-bench"
REFERENCE = "@modelcontextprotocol/server-filesystem"
ENTRY = CACHE / "node_modules" / "@modelcontextprotocol" / "server-filesystem" / "dist" / "index.js"
# the command agents launch: the console script beside this interpreter (as installed)
_SCRIPT = Path(sys.executable).with_name("kimi-mcp")
KIMI_MCP = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "kimi_mcp"]

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


@dataclass
class Server:
    name: str
    cmd: list[str]
    calls: dict[str, tuple[str, dict[str, Any]]]
    env: dict[str, str]
    times: dict[str, list[float]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    tools: int = 0


def start(server: Server, cwd: str) -> StdioClient:
    """Spawn, `initialize`, list the tools and make one trivial call, timing each from spawn:
    `initialize` (the handshake) and `ready` (the first call answered: all loading done)."""
    client = StdioClient(server.cmd, env=server.env, cwd=cwd)
    _, t_init = client.initialize()
    listing = client.request("tools/list")
    tool, params = server.calls["trivial"]
    client.request("tools/call", {"name": tool, "arguments": params})
    server.times.setdefault("initialize", []).append(t_init)
    server.times.setdefault("ready", []).append(time.perf_counter() - client.started)
    server.tools = len(listing["result"]["tools"])
    return client


def measure_round(servers: list[Server], args: argparse.Namespace, cwd: str, first: int) -> None:
    """One round: each server spawned in turn (the order rotates by round), then every
    measurement made call by call across the live servers, so load hits all of them alike."""
    order = servers[first:] + servers[:first]
    random.seed(first)  # the same shuffles every run
    clients = {id(server): start(server, cwd) for server in order}
    try:
        labels = ["tools/list", *CALLS]
        for label in labels:
            n = args.reads if label in ("read_file", "trivial", "file_info") else args.repeats
            for server in order:
                for _ in range(2):  # warm-up
                    _request(clients[id(server)], server, label)
            for _ in range(n):
                # shuffled each time: the server called right after one whose background work
                # (the ledger's) is still running pays for it, so no row may always follow another
                random.shuffle(order)
                for server in order:
                    client = clients[id(server)]
                    began = time.perf_counter()
                    reply = _request(client, server, label)
                    server.times.setdefault(label, []).append(time.perf_counter() - began)
                    if "error" in reply or reply.get("result", {}).get("isError"):
                        raise RuntimeError(f"{server.name} {label}: {json.dumps(reply)[:400]}")
                    server.sizes[label] = len(json.dumps(reply))
    finally:
        for client in clients.values():
            client.close()


def _request(client: StdioClient, server: Server, label: str) -> dict[str, Any]:
    if label == "tools/list":
        return client.request("tools/list")
    tool, params = server.calls[label]
    return client.request("tools/call", {"name": tool, "arguments": params})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (fresh processes)")
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
        servers = [
            Server("reference (node)", [node, str(entry), str(ws)], reference, env),
            Server("kimi-mcp stdio", [*KIMI_MCP, "stdio", "--workspace", str(ws)], ours, env),
            Server("fs family alone", [sys.executable, "-c", FAMILY_ONLY, str(ws), str(data)],
                   ours, env),
        ]
        if args.baseline_src:
            baseline_env = {**env, "PYTHONPATH": str(Path(args.baseline_src).resolve())}
            servers.append(Server("fs family, before",
                                  [sys.executable, "-c", FAMILY_ONLY, str(ws), str(data)],
                                  ours, baseline_env))
            servers.append(Server("kimi-mcp, before",
                                  [sys.executable, "-m", "kimi_mcp", "stdio", "--workspace", str(ws)],
                                  ours, baseline_env))
        load_before = os.getloadavg()
        for n in range(args.rounds):
            measure_round(servers, args, raw, n % len(servers))
        load_after = os.getloadavg()
    print(f"load average (1/5/15 min) before: {_load(load_before)}, after: {_load(load_after)} "
          f"on {os.cpu_count()} CPUs")
    report(servers, args)
    return 0


CALLS = ("trivial", "read_file", "file_info", "search_files", "directory_tree")


def _load(values: tuple[float, float, float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def _p50(server: Server, label: str) -> float:
    return statistics.median(server.times[label])


def report(servers: list[Server], args: argparse.Namespace) -> None:
    ref = servers[0]
    print(f"workspace: {args.files} files + big.txt (100 KB); {args.rounds} interleaved rounds of "
          f"{args.reads} reads and {args.repeats} repeats per server")
    print("initialize = spawn to its answer; ready = spawn to the first tool call answered "
          "(median of rounds); trivial = list_allowed_directories (per-call overhead)")
    head = "".join(f"{k + ' p50/p99 ms':>27}" for k in CALLS)
    print(f"{'server':<18} {'tools':>5} {'init s':>7} {'ready s':>7} {'list ms':>8}{head}")
    for row in servers:
        cells = "".join(
            f"{f'{_p50(row, k) * 1e3:.2f}/{pct(row.times[k], 0.99) * 1e3:.2f}':>27}" for k in CALLS)
        print(f"{row.name:<18} {row.tools:>5} {_p50(row, 'initialize'):7.3f} "
              f"{_p50(row, 'ready'):7.3f} {_p50(row, 'tools/list') * 1e3:8.2f}{cells}")
    for row in servers[1:]:
        ratios = ", ".join(f"{k} {_p50(row, k) / _p50(ref, k):.2f}x" for k in
                           ("initialize", "ready", "tools/list", *CALLS))
        print(f"{row.name} time / reference time (p50; <1 is faster): {ratios}")
    ours = servers[1]
    sizes = ", ".join(f"{k} {ours.sizes[k]} vs {ref.sizes[k]}" for k in CALLS[1:])
    print(f"answer sizes (bytes, ours vs reference): {sizes}")
    if len(servers) > 3:
        after, before = servers[2], servers[3]
        added = ", ".join(f"{k} {(_p50(after, k) - _p50(before, k)) * 1e6:+.0f} us" for k in CALLS)
        print(f"per call, fs family now minus before (p50): {added}")


if __name__ == "__main__":
    raise SystemExit(main())
