"""The worker of bench_context.py: replays one trace set through the context stages.

It imports whichever `kimi_mcp` is first on PYTHONPATH (the baseline's or this tree's), so it
takes `ContextStages.from_deps` where the tree has it and the older `apply_stages` otherwise.
Prints one JSON line of totals.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kimi_mcp import tokens
from kimi_mcp.config import load_settings
from kimi_mcp.deps import Deps
from kimi_mcp.ledger import Ledger
from kimi_mcp.memory.engine import MemoryEngine

_STAGES: dict[int, Any] = {}


async def apply_stages(deps: Deps, body: dict[str, Any], **kw: Any) -> Any:
    """One `ContextStages` per deps, as a composition root builds (or the old module function)."""
    import kimi_mcp.context as context

    if not hasattr(context, "ContextStages") or not hasattr(context.ContextStages, "from_deps"):
        return await context.apply_stages(deps, body, **kw)  # a baseline from before the class
    stages = _STAGES.get(id(deps))
    if stages is None:
        stages = _STAGES[id(deps)] = context.ContextStages.from_deps(deps)
    return await stages.apply(body, **kw)


ID = re.compile(r"\b[mc]-[0-9a-f]{16}\b")
KEEP_TURNS = 5


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def digest(text: str) -> bytes:
    """What the bench keeps of an original to check it later (not the text: its own memory
    would count as the proxy's)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def common_prefix_tokens(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]]) -> int:
    total = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        total += tokens.count_message(x)
    return total


def text_of(m: dict[str, Any]) -> str:
    return tokens.content_text(m.get("content"))


def breaks(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[str]:
    """The invariants a request must keep (see bench_context's docstring)."""
    from kimi_mcp.context.conversation import problems

    found = []
    head = 0
    while head < len(before) and before[head].get("role") in ("system", "developer"):
        head += 1
    first_user = next((i for i in range(head, len(before)) if before[i].get("role") == "user"), None)
    protected = list(range(head)) + ([first_user] if first_user is not None else [])
    if any(i >= len(after) or after[i] != before[i] for i in protected):
        found.append("system or first user message changed")
    starts = [i for i, m in enumerate(before) if m.get("role") == "assistant"]
    window = starts[-KEEP_TURNS] if len(starts) >= KEEP_TURNS else 0
    if len(after) == len(before):
        for i in range(window, len(before)):
            if before[i].get("role") not in ("tool", "function") and before[i] != after[i]:
                found.append(f"non-tool message {i} of the last {KEEP_TURNS} turns changed")
                break
        for x, y in zip(before, after, strict=True):
            if set(x) - set(y) or x.get("tool_call_id") != y.get("tool_call_id"):
                found.append("a message lost a key or its tool_call_id")
                break
    if not problems(before) and problems(after):
        found.append("tool calls and results unpaired")
    return found


async def replay(deps: Deps, conv: dict[str, Any], t: dict[str, Any], window: int) -> None:
    messages = conv["messages"]
    prev_in: list[dict[str, Any]] = []
    prev_out: list[dict[str, Any]] = []
    for end in [i for i, m in enumerate(messages) if m["role"] == "assistant"]:
        # parsed fresh from its JSON, as the proxy does: a cache holding a request's strings
        # holds copies, as it would in the proxy
        body = json.loads(json.dumps({"model": "bench", "messages": messages[:end]}))
        start, cpu = time.perf_counter(), time.thread_time()
        result = await apply_stages(deps, body, session_id=conv["id"], context_window=window)
        t["wall"].append((time.perf_counter() - start) * 1000)
        t["cpu"].append((time.thread_time() - cpu) * 1000)
        out = result.body["messages"]
        t["requests"] += 1
        t["before"] += tokens.count_chat(body)
        t["after"] += tokens.count_chat(result.body)
        t["cached_before"] += common_prefix_tokens(body["messages"], prev_in)
        t["cached_after"] += common_prefix_tokens(out, prev_out)
        t["breaks"] += bool(breaks(body["messages"], out))
        if len(out) == len(body["messages"]):
            for old, new in zip(body["messages"], out, strict=True):
                if old.get("role") in ("tool", "function") and old != new:
                    ids = ID.findall(text_of(new))
                    if ids:
                        t["changed"].setdefault(ids[0], digest(text_of(old)))
                    else:
                        t["unnamed"] += 1
        prev_in, prev_out = body["messages"], out


async def verify(deps: Deps, changed: dict[str, bytes]) -> int:
    ids = list(changed)
    exact = 0
    for i in range(0, len(ids), 200):
        items = await deps.memory.get(ids[i : i + 200])
        exact += sum(1 for item in items if changed.get(item.id) == digest(item.content))
    return exact


def build_deps(tmp: Path) -> Deps:
    settings = load_settings(overrides={
        "data_dir": str(tmp), "mcp": {"workspace": str(tmp)}, "memory": {"embedder": "hash"},
    })
    ledger = Ledger(settings.database_url())
    ledger.start()
    deps = Deps(settings=settings, ledger=ledger, memory=None)  # type: ignore[arg-type]
    deps.memory = MemoryEngine(settings, ledger)
    return deps


def big_conversation(target: int) -> list[dict[str, Any]]:
    """A ~`target`-token coding-agent run built from real tool output in the traces."""
    outputs: list[str] = []
    source = Path(__file__).resolve().parent / "traces" / "mini-swe-agent-deepseek-test.jsonl"
    for line in source.read_text().splitlines()[:10]:
        for m in json.loads(line)["messages"]:
            text = m.get("content") or ""
            if m["role"] == "tool" and tokens.count_text(text) > 300:
                outputs.append(text)
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": "You are an autonomous programmer."},
        {"role": "user", "content": "Fix the failing test in the repository."},
    ]
    n = 0
    while tokens.count_chat({"messages": msgs}) < target:
        call = {"id": f"call_{n}", "type": "function",
                "function": {"name": "bash", "arguments": json.dumps({"command": f"cat file_{n}.py"})}}
        msgs.append({"role": "assistant", "content": f"Step {n}: let me look.", "tool_calls": [call]})
        msgs.append({"role": "tool", "tool_call_id": call["id"], "content": outputs[n % len(outputs)] + f"\n(step {n})"})
        n += 1
    return msgs


def load(target: str, limit: int | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The conversations of a trace set, and the 100K-token one when `target` is `big-100k`."""
    if target == "big-100k":
        conv = big_conversation(100_000)
        return [{"id": "big", "messages": [*conv, {"role": "assistant", "content": "done"}]}], conv
    lines = [ln for ln in Path(target).read_text().splitlines() if ln.strip()]
    return [json.loads(ln) for ln in (lines[:limit] if limit else lines)], []


async def run(target: str, convs: list[dict[str, Any]], conv: list[dict[str, Any]]) -> dict[str, Any]:
    t: dict[str, Any] = {"requests": 0, "before": 0, "after": 0, "cached_before": 0, "cached_after": 0,
                         "breaks": 0, "changed": {}, "unnamed": 0, "wall": [], "cpu": []}
    with tempfile.TemporaryDirectory() as tmp:
        deps = build_deps(Path(tmp))
        before_tokenizer = rss_mb()
        tokens.encoding()  # the proxy loads its tokenizer at startup
        rss_start = rss_mb()
        for one in convs:
            await replay(deps, one, t, 1_000_000)
        note = ""
        if target == "big-100k":  # the whole conversation resent, as parsed fresh each time
            t["wall"], t["cpu"] = [], []
            raw = json.dumps({"model": "bench", "messages": conv})
            for _ in range(200):
                body = json.loads(raw)  # parsed fresh each time, as the proxy does
                start, cpu = time.perf_counter(), time.thread_time()
                await apply_stages(deps, body, session_id="big", context_window=1_000_000)
                t["wall"].append((time.perf_counter() - start) * 1000)
                t["cpu"].append((time.thread_time() - cpu) * 1000)
            note = f"times: the {tokens.count_chat({'messages': conv}):,}-token conversation resent 200 times"
        rss_end = rss_mb()
        recovered = await verify(deps, t["changed"])
        deps.memory.flush_vectors()
        deps.memory.close()
        deps.ledger.close()
    wall, cpu = t.pop("wall"), t.pop("cpu")
    changed = len(t.pop("changed")) + t["unnamed"]
    return {**t, "changed": changed, "recovered": recovered, "cpu_p50": _p(cpu, 0.5), "cpu_p99": _p(cpu, 0.99),
            "wall_p50": _p(wall, 0.5), "wall_p99": _p(wall, 0.99), "rss_start_mb": rss_start,
            "rss_end_mb": rss_end, "tokenizer_mb": rss_start - before_tokenizer, "note": note}


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def worker(target: str, limit: int | None) -> None:
    convs, big = load(target, limit)
    print(json.dumps(asyncio.run(run(target, convs, big))))
