"""Replay real coding-agent runs through the context stages, before and after, side by side.

Each conversation is replayed as the requests its agent made (the messages before each
assistant message), in order, as one session. Every implementation runs in its own process
(so its memory growth is its own) over the same traces, in one run:

- `before`: the context stages of a baseline commit (`--baseline-ref`, default the commit
  before Context v2), checked out into a temporary git worktree;
- `after`: the stages of this tree;
- `headroom`: Headroom's proxy (`headroom-ai[proxy]`, in its own virtualenv: `--headroom-venv`)
  with its defaults and rate limit off, in front of a loopback fake provider that records what
  it forwards (`headroom_replay.py`).

Printed per trace set and implementation: input tokens summed over all requests and saved;
input cost saved when cached input costs 0.1x and 0.5x of uncached input (a request's prefix
that is message-for-message identical to the previous request as sent counts as cached);
the cacheable share before/after; tool outputs changed and how many read back byte-exact by
the id they name; requests that broke an invariant (system or first user message changed, a
non-tool message of the last 5 turns changed, tool calls and results unpaired, a message key
dropped); CPU (the request's thread) and wall time per request, p50/p99; RSS growth over the
replay, from after startup (the proxy loads its tokenizer then: its size is printed apart). Then the same on one 100K-token conversation resent 200 times.

    python bench/bench_context.py [--traces DIR ...] [--limit N] [--impl before,after,headroom]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_TRACES = [HERE / "traces"] + [p / "shared" / "data" / "traces" for p in (ROOT.parent, ROOT.parent.parent)
                                      if (p / "shared" / "data" / "traces").is_dir()]
BASELINE_REF = "784ebc0"  # main before Context v2
IMPLS = ("before", "after", "headroom")


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cost(total: int, cached: int, ratio: float) -> float:
    return (total - cached) + ratio * cached


def trace_files(folders: Sequence[Path], sets: str | None) -> list[Path]:
    files = [f for folder in folders for f in sorted(folder.glob("*.jsonl"))]
    if sets:
        wanted = sets.split(",")
        files = [f for f in files if any(w in f.name for w in wanted)]
    return files


# ---- the parent: one worker per implementation and trace set --------------------------------------


def baseline_tree(ref: str) -> Path:
    tree = Path(tempfile.gettempdir()) / f"kimi-mcp-baseline-{ref}"
    if not (tree / "kimi_mcp").is_dir():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), ref],
                       check=True, capture_output=True)
    return tree


def run_worker(impl: str, target: str, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ)
    python = sys.executable
    script = [str(HERE / "bench_context.py")]
    if impl == "before":
        env["PYTHONPATH"] = str(baseline_tree(args.baseline_ref))
    elif impl == "after":
        env["PYTHONPATH"] = str(ROOT)
    else:  # this tree drives Headroom's proxy, which runs from its own virtualenv
        script = [str(HERE / "headroom_replay.py"), "--headroom-venv", args.headroom_venv]
        env["PYTHONPATH"] = str(ROOT)
        if not (Path(args.headroom_venv) / "bin" / "headroom").exists():
            return {"error": f"no headroom in {args.headroom_venv} (python3 -m venv it, then "
                             "pip install 'headroom-ai[proxy]')"}
    cmd = [python, *script, "--worker", target, "--limit", str(args.limit or 0)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    last = done.stdout.strip().splitlines()[-1:] if done.stdout.strip() else []
    if done.returncode != 0 or not last:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {done.returncode}: " + " | ".join(tail)}
    result: dict[str, Any] = json.loads(last[0])
    return result


def row(name: str, r: dict[str, Any]) -> list[str]:
    if "error" in r:
        return [name, f"did not run: {r['error']}"]
    b, a = r["before"], r["after"]
    out = [name, f"{r['requests']:,} requests", f"{b:,} -> {a:,} tokens, saved {(b - a) / max(b, 1):.1%}"]
    for ratio in (0.1, 0.5):
        cb, ca = cost(b, r["cached_before"], ratio), cost(a, r["cached_after"], ratio)
        out.append(f"cost saved at {ratio}x: {(cb - ca) / max(cb, 1):.1%}")
    out.append(f"cacheable {r['cached_before'] / max(b, 1):.1%} -> {r['cached_after'] / max(a, 1):.1%}")
    out.append(f"changed outputs {r['changed']:,}, recovered byte-exact {r['recovered']:,}")
    out.append(f"invariant breaks {r['breaks']:,}")
    out.append(f"CPU p50 {r['cpu_p50']:.2f} / p99 {r['cpu_p99']:.2f} ms; wall p50 {r['wall_p50']:.2f} / "
               f"p99 {r['wall_p99']:.2f} ms")
    out.append(f"RSS {r['rss_start_mb']:.0f} -> {r['rss_end_mb']:.0f} MB (growth {r['rss_end_mb'] - r['rss_start_mb']:+.0f} MB)"
               + (f"; the tokenizer, loaded before at startup: {r['tokenizer_mb']:+.0f} MB" if "tokenizer_mb" in r else ""))
    if r.get("note"):
        out.append(r["note"])
    return out


def parent(args: argparse.Namespace) -> None:
    files = [] if args.sets == "big" else trace_files(args.traces, args.sets)
    if not files and args.sets != "big":
        sys.exit("no *.jsonl traces found")
    impls = args.impl.split(",")
    started = time.perf_counter()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; baseline "
          f"{args.baseline_ref}; CPU is the request thread's time, wall includes waiting for a CPU")
    targets = [str(f) for f in files] + ([] if args.no_big else ["big-100k"])
    for target in targets:
        print(f"\n== {Path(target).name}" + (f" (first {args.limit} conversations)" if args.limit and target != "big-100k" else ""))
        for impl in impls:
            if impl == "headroom" and target == "big-100k":
                continue
            lines = row(impl, run_worker(impl, target, args))
            print(f"  {lines[0]:9s} " + "\n            ".join(lines[1:]), flush=True)
    print(f"\n(total run {time.perf_counter() - started:.0f} s)")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--traces", type=Path, nargs="*", default=DEFAULT_TRACES, help="folders of *.jsonl")
    parser.add_argument("--sets", default=None, help="comma-separated parts of trace file names to run "
                        "('big': only the 100K-token conversation)")
    parser.add_argument("--limit", type=int, default=None, help="conversations per set (default all)")
    parser.add_argument("--impl", default="before,after,headroom", help="which of " + ",".join(IMPLS))
    parser.add_argument("--baseline-ref", default=BASELINE_REF, help="git ref of the `before` stages")
    parser.add_argument("--headroom-venv", default="/work/venvs/headroom", help="virtualenv with headroom-ai")
    parser.add_argument("--no-big", action="store_true", help="skip the 100K-token conversation")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        from replay import worker  # type: ignore[import-not-found]

        worker(args.worker, args.limit or None)
        return
    parent(args)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
