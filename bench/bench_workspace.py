"""Benchmark: what the use-time containment costs per file operation, in process.

Prints figures (not a test). The core primitive (`kimi_mcp.workspace`, descriptors walked down
from the root: openat2 where the kernel has it, else component by component) against the
check-then-use workspace of an older tree, interleaved call by call in one run:

    python bench/bench_workspace.py --baseline-src DIR [--n 3000]

DIR is a source tree whose `servers/fs/workspace.py` is the old primitive (e.g. an export of
commit 99027c9, the last one before the move to the core). Without it only the new figures
are printed. Measured on a file three directories down: resolve + open + read (read_file),
resolve + lstat (get_file_info), resolve + atomic replace (write_file).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kimi_mcp.workspace import KERNEL, Workspace

REL = "pkg00/mod0/file00001.txt"


def _old_workspace(tree: str, root: Path) -> Any:
    spec = importlib.util.spec_from_file_location(
        "old_workspace", Path(tree) / "servers" / "fs" / "workspace.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Workspace(lambda: [root])


def _operations(ws: Any, new: bool) -> dict[str, Callable[[], object]]:
    def read() -> object:
        with ws.open_read(ws.resolve(REL)) as handle:
            return handle.read()

    def info() -> object:
        entry = ws.resolve_entry(REL)
        if new:
            return ws.stat(entry, follow=False)
        ws.resolve(REL)
        import os

        return os.lstat(entry)

    def write() -> object:
        return ws.write_atomic(ws.resolve(REL), b"y" * 100)

    return {"read_file": read, "get_file_info": info, "write_file": write}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-src", default="")
    parser.add_argument("--n", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as raw:
        root = Path(raw).resolve()
        (root / "pkg00" / "mod0").mkdir(parents=True)
        (root / REL).write_text("x" * 100)
        new = Workspace(lambda: [root])
        old = _old_workspace(args.baseline_src, root) if args.baseline_src else None
        print(f"openat2 available: {KERNEL.openat2 is not None}; {args.n} calls each, interleaved")
        for mode in ("openat2", "component walk"):
            if mode == "component walk":
                KERNEL.openat2 = None
            elif KERNEL.openat2 is None:
                continue
            ours = _operations(new, True)
            theirs = _operations(old, False) if old is not None else {}
            for name, call in ours.items():
                after: list[float] = []
                before: list[float] = []
                for _ in range(args.n):
                    if name in theirs:
                        start = time.perf_counter()
                        theirs[name]()
                        before.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    call()
                    after.append(time.perf_counter() - start)
                line = (
                    f"{mode:<15} {name:<14} after p50/p99 {statistics.median(after) * 1e6:7.1f}/"
                    f"{_pct(after, 0.99) * 1e6:7.1f} us"
                )
                if before:
                    added = (statistics.median(after) - statistics.median(before)) * 1e6
                    line += (
                        f"   before {statistics.median(before) * 1e6:7.1f}/"
                        f"{_pct(before, 0.99) * 1e6:7.1f} us   added p50 {added:+6.1f} us "
                        f"({statistics.median(after) / statistics.median(before):.2f}x)"
                    )
                print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
