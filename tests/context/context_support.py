"""Helpers for the context-stage tests: conversations, a fake memory engine, the deps."""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass, field
from typing import Any

from kimi_mcp.context import ContextStages, StageResult
from kimi_mcp.context.conversation import problems
from kimi_mcp.deps import Deps

_STAGES: weakref.WeakKeyDictionary[Deps, ContextStages] = weakref.WeakKeyDictionary()


def serve_completions(deps: Deps, transport: Any) -> None:
    """The product's model calls of `deps` through a proxy whose upstream is `transport`."""
    from kimi_mcp.proxy.completions import ProxyCompletions
    from kimi_mcp.proxy.pipeline import Proxy
    from kimi_mcp.upstream import Upstream

    proxy = Proxy(deps, Upstream(deps.settings.upstream, transport=transport))
    deps.completions = ProxyCompletions(lambda: proxy)


async def apply_stages(deps: Deps, body: dict[str, Any], **kw: Any) -> StageResult:
    """The stages of `deps` (one `ContextStages` per deps, as the composition root builds)."""
    stages = _STAGES.get(deps)
    if stages is None:
        stages = _STAGES[deps] = ContextStages.from_deps(deps)
    return await stages.apply(body, **kw)


@dataclass
class FakeItem:
    id: str
    content: str
    type: str = "episodic"
    source: str = "tool"
    tags: list[str] = field(default_factory=list)


@dataclass
class FakeHit:
    item: FakeItem
    score: float | None


@dataclass
class FakeStored:
    id: str
    created: bool


class FakeMemory:
    """The memory engine's async face, in a dict; recall matches words."""

    def __init__(self) -> None:
        self.items: dict[str, FakeItem] = {}
        self.stores = 0
        self.recalls = 0
        self.fail = False

    def close(self) -> None:
        """Nothing runs in the background here."""

    async def store(self, content: str, *, id: str | None = None, source: str = "tool",
                    tags: Any = (), **_: Any) -> FakeStored:
        if self.fail:
            raise RuntimeError("memory down")
        self.stores += 1
        mid = id or f"mem-{len(self.items)}"
        created = mid not in self.items
        self.items.setdefault(mid, FakeItem(mid, content, source=source, tags=list(tags)))
        return FakeStored(mid, created)

    def store_text_sync(self, content: str, *, id: str | None = None, source: str = "sanitizer",
                        tags: Any = (), **_: Any) -> FakeStored:
        if self.fail:
            raise RuntimeError("memory down")
        self.stores += 1
        mid = id or f"mem-{len(self.items)}"
        created = mid not in self.items
        self.items.setdefault(mid, FakeItem(mid, content, source=source, tags=list(tags)))
        return FakeStored(mid, created)

    async def recall(self, query: str, *, limit: int = 5, **_: Any) -> list[FakeHit]:
        if self.fail:
            raise RuntimeError("memory down")
        self.recalls += 1
        words = set(query.lower().split())
        hits = [FakeHit(i, 1.0) for i in self.items.values()
                if words & set(i.content.lower().split())]
        return hits[:limit]

    async def get(self, ids: list[str]) -> list[FakeItem]:
        return [self.items[i] for i in ids if i in self.items]


def output(lines: int, tag: str = "x") -> str:
    """A verbose tool output of about 8 tokens a line."""
    return "\n".join(f"{tag} line {n}: value={n * 7} status=ok path=src/mod_{n}.py" for n in range(lines))


def agent_conversation(turns: int, lines: int = 200, *, system: str = "You are a coding agent.") -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [{"role": "system", "content": system},
                                  {"role": "user", "content": "Fix the failing test in src/app.py."}]
    for t in range(turns):
        cid = f"call_{t}"
        msgs.append({"role": "assistant", "content": f"I will run step {t}.",
                     "tool_calls": [{"id": cid, "type": "function",
                                     "function": {"name": "run", "arguments": json.dumps({"path": f"src/f{t}.py"})}}]})
        msgs.append({"role": "tool", "tool_call_id": cid, "name": "run", "content": output(lines, f"t{t}")})
    return msgs


# the masking rule of the first context stages: every verbose tool output older than the last
# 5 turns, no first-sight forms, caching ignored (the tests of those rules set this)
LEGACY = {"first_sight": False, "keep_output_turns": 5, "keep_read_turns": 5, "mask_threshold_tokens": 1000,
          "cached_price_ratio": 1.0}


def assert_valid(messages: list[dict[str, Any]]) -> None:
    assert problems(messages) == []
