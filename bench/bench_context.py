"""Replay real agent conversations through the context stages and print what they save.

Each conversation in the traces folder is replayed as the requests the agent made (the
messages before each assistant message), in order, as one session, through
`kimi_mcp.context.apply_stages` with the real ledger and memory engine (hash embedder) in a
temporary data dir. Printed per trace set and configuration:

- input tokens summed over all requests, before and after the stages;
- the final context (the last request of each conversation), before and after;
- cache-friendliness: the share of each request's tokens that is a byte-identical prefix of
  the previous request as sent (message by message), before and after;
- the input cost saving when cached input costs 0.1x and 0.5x of uncached input;
- masked blocks and how many read back byte-exact from the memory engine (must be all);
- time the stages add per request, p50/p99; then the same on a 100K-token conversation.

    python bench/bench_context.py [--traces DIR] [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kimi_mcp import tokens
from kimi_mcp.config import load_settings
from kimi_mcp.context import apply_stages, masked_id
from kimi_mcp.deps import Deps
from kimi_mcp.ledger import Ledger
from kimi_mcp.memory.engine import MemoryEngine

DEFAULT_TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "traces"
CONFIGS: dict[str, tuple[dict[str, Any], int]] = {
    # name: ([context] settings, context window)
    "defaults (mask > 1000 tokens, keep 5 turns, 128K window)": ({}, 128_000),
    "mask > 300 tokens, keep 3 turns, 128K window": (
        {"mask_threshold_tokens": 300, "keep_last_turns": 3}, 128_000),
    "mask > 300 tokens, keep 3 turns, mask_step_turns 3": (
        {"mask_threshold_tokens": 300, "keep_last_turns": 3, "mask_step_turns": 3}, 128_000),
    "defaults with an 8K window (compression)": ({}, 8_192),
}
BIG_CONFIGS: dict[str, tuple[dict[str, Any], int]] = {
    "defaults, 128K window": ({}, 128_000),
    "defaults, 128K window, mask_step_turns 3": ({"mask_step_turns": 3}, 128_000),
    "defaults, 40K window (masking + compression)": ({}, 40_000),
}


@dataclass
class Totals:
    requests: int = 0
    before: int = 0
    after: int = 0
    final_before: int = 0
    final_after: int = 0
    cached_before: int = 0
    cached_after: int = 0
    errors: int = 0
    compressed: int = 0
    times_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    masked: dict[str, str] = field(default_factory=dict)  # id -> original
    transcripts: set[str] = field(default_factory=set)


def common_prefix_tokens(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]]) -> int:
    total = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        total += tokens.count_message(x)
    return total


def build_deps(tmp: Path, context: dict[str, Any]) -> Deps:
    settings = load_settings(overrides={
        "data_dir": str(tmp), "mcp": {"workspace": str(tmp)}, "memory": {"embedder": "hash"},
        "context": context,
    })
    ledger = Ledger(settings.database_url())
    ledger.start()
    deps = Deps(settings=settings, ledger=ledger, memory=None)  # type: ignore[arg-type]
    deps.memory = MemoryEngine(settings, ledger, vector_location=":memory:")
    return deps


def close(deps: Deps) -> None:
    deps.memory.flush_vectors()
    deps.memory.close()
    deps.ledger.close()


async def replay(deps: Deps, conv: dict[str, Any], window: int, t: Totals) -> None:
    messages = conv["messages"]
    originals = {masked_id(m["content"]): m["content"] for m in messages
                 if m.get("role") in ("tool", "function") and isinstance(m.get("content"), str)}
    prev_in: list[dict[str, Any]] = []
    prev_out: list[dict[str, Any]] = []
    last = (0, 0)
    for end in [i for i, m in enumerate(messages) if m["role"] == "assistant"]:
        body = {"model": "bench", "messages": messages[:end]}
        start, cpu = time.perf_counter(), time.thread_time()
        result = await apply_stages(deps, body, session_id=conv["id"], context_window=window)
        t.times_ms.append((time.perf_counter() - start) * 1000)
        t.cpu_ms.append((time.thread_time() - cpu) * 1000)
        out = result.body["messages"]
        before, after = tokens.count_chat(body), tokens.count_chat(result.body)
        t.requests += 1
        t.before += before
        t.after += after
        t.cached_before += common_prefix_tokens(body["messages"], prev_in)
        t.cached_after += common_prefix_tokens(out, prev_out)
        t.errors += result.error is not None
        t.compressed += result.saved_compress_tokens > 0
        for mid in result.masked_ids:
            if mid in originals:
                t.masked[mid] = originals[mid]
        for m in out:
            if isinstance(m.get("content"), str) and m["content"].startswith("<conversation-summary"):
                t.transcripts.update(_transcript_ids(m["content"]))
        prev_in, prev_out, last = body["messages"], out, (before, after)
    t.final_before += last[0]
    t.final_after += last[1]


def _transcript_ids(text: str) -> list[str]:
    return re.findall(r'ids \["(c-[0-9a-f]{16})"\]', text)


async def verify(deps: Deps, t: Totals) -> tuple[int, int]:
    items = await deps.memory.get(list(t.masked))
    exact = sum(1 for i in items if t.masked.get(i.id) == i.content)
    found = await deps.memory.get(list(t.transcripts))
    return exact, len(found)


def cost(total: int, cached: int, ratio: float) -> float:
    return (total - cached) + ratio * cached


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, t: Totals, exact: int, transcripts: int) -> None:
    def change(a: float, b: float) -> str:
        return f"{(b - a) / a * 100:+.1f}%" if a else "n/a"

    lines = [
        f"  {name}",
        f"    requests {t.requests:,}; compressed {t.compressed:,}; refused {t.errors:,}",
        f"    input tokens, all requests: {t.before:,} -> {t.after:,} ({change(t.before, t.after)})",
        f"    final context, summed:      {t.final_before:,} -> {t.final_after:,} "
        f"({change(t.final_before, t.final_after)})",
        f"    cache-friendly prefix share: {t.cached_before / max(t.before, 1):.1%} -> "
        f"{t.cached_after / max(t.after, 1):.1%}",
    ]
    for ratio in (0.1, 0.5):
        b, a = cost(t.before, t.cached_before, ratio), cost(t.after, t.cached_after, ratio)
        lines.append(f"    input cost with cached input at {ratio}x: saving {(b - a) / b:.1%}")
    lines.append(f"    masked blocks {len(t.masked):,}, read back byte-exact {exact:,}"
                 + (f"; compression transcripts {len(t.transcripts)}, stored {transcripts}"
                    if t.transcripts else ""))
    lines.append(f"    time added per request: wall p50 {pct(t.times_ms, 0.5):.2f} ms, "
                 f"p99 {pct(t.times_ms, 0.99):.2f} ms; CPU p50 {pct(t.cpu_ms, 0.5):.2f} ms, "
                 f"p99 {pct(t.cpu_ms, 0.99):.2f} ms")
    print("\n".join(lines))


def load(path: Path, limit: int | None) -> list[dict[str, Any]]:
    convs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return convs[:limit] if limit else convs


async def run_set(name: str, convs: list[dict[str, Any]]) -> None:
    print(f"\n== {name}: {len(convs)} conversations")
    for name, (context, window) in CONFIGS.items():
        with tempfile.TemporaryDirectory() as tmp:
            deps = build_deps(Path(tmp), context)
            t = Totals()
            for conv in convs:
                await replay(deps, conv, window, t)
            exact, transcripts = await verify(deps, t)
            report(name, t, exact, transcripts)
            close(deps)


def big_conversation(traces: Path, target: int) -> list[dict[str, Any]]:
    """A ~`target`-token agent run built from real tool output in the swe-agent traces."""
    outputs: list[str] = []
    for line in (traces / "swe-agent.jsonl").read_text().splitlines():
        for m in json.loads(line)["messages"]:
            text = m.get("content") or ""
            if m["role"] in ("tool", "user") and tokens.count_text(text) > 300:
                outputs.append(text)
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": "You are an autonomous programmer."},
        {"role": "user", "content": "Fix the failing test in the repository."},
    ]
    n = 0
    while tokens.count_chat({"messages": msgs}) < target:
        text = outputs[n % len(outputs)] + f"\n(step {n})"
        call = {"id": f"call_{n}", "type": "function",
                "function": {"name": "bash", "arguments": json.dumps({"command": f"cat file_{n}.py"})}}
        msgs.append({"role": "assistant", "content": f"Step {n}: let me look at file_{n}.py.",
                     "tool_calls": [call]})
        msgs.append({"role": "tool", "tool_call_id": call["id"], "content": text})
        n += 1
    return msgs


async def run_big(conv: list[dict[str, Any]]) -> None:
    starts = [i for i, m in enumerate(conv) if m["role"] == "assistant"]
    print(f"\n== a 100K-token conversation ({len(conv)} messages, "
          f"{tokens.count_chat({'messages': conv}):,} tokens)")
    for name, (context, window) in BIG_CONFIGS.items():
        with tempfile.TemporaryDirectory() as tmp:
            deps = build_deps(Path(tmp), context)
            t = Totals()
            await replay(deps, {"id": "big", "messages": [*conv, {"role": "assistant", "content": "done"}]},
                         window, t)
            steady, steady_cpu = [], []
            for _ in range(200):
                body = {"model": "bench", "messages": [dict(m) for m in conv]}  # fresh dicts, as parsed
                start, cpu = time.perf_counter(), time.thread_time()
                await apply_stages(deps, body, session_id="big", context_window=window)
                steady.append((time.perf_counter() - start) * 1000)
                steady_cpu.append((time.thread_time() - cpu) * 1000)
            exact, transcripts = await verify(deps, t)
            report(f"{name}: the agent's {len(starts)} requests replayed", t, exact, transcripts)
            print(f"    the whole conversation resent 200 times: wall p50 {pct(steady, 0.5):.2f} ms, "
                  f"p99 {pct(steady, 0.99):.2f} ms; CPU p50 {pct(steady_cpu, 0.5):.2f} ms, "
                  f"p99 {pct(steady_cpu, 0.99):.2f} ms")
            close(deps)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=Path, default=DEFAULT_TRACES, help="folder of *.jsonl traces")
    parser.add_argument("--limit", type=int, default=None, help="conversations per set (default all)")
    parser.add_argument("--no-big", action="store_true", help="skip the 100K-token conversation")
    args = parser.parse_args(argv)
    files = sorted(args.traces.glob("*.jsonl"))
    if not files:
        sys.exit(f"no *.jsonl traces in {args.traces}")
    started = time.perf_counter()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(wall-clock percentiles include time the process waits for a CPU; CPU time does not)")
    for path in files:
        asyncio.run(run_set(path.name, load(path, args.limit)))
    if not args.no_big:
        asyncio.run(run_big(big_conversation(args.traces, 100_000)))
    print(f"\n(total run {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
