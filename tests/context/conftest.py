"""Fixtures of the context-stage tests: Deps over a real ledger and the real memory engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kimi_mcp.deps import Deps


def _engine(deps: Deps) -> Any:
    try:
        from kimi_mcp.memory.engine import MemoryEngine
    except ImportError:  # before the memory engine lands: the fake with the same methods
        from context_support import FakeMemory

        return FakeMemory()
    return MemoryEngine(deps.settings, deps.ledger)


@pytest.fixture
def ctx_factory(make_deps: Callable[..., Deps], request: pytest.FixtureRequest) -> Iterator[Callable[..., Deps]]:
    """Deps with a memory engine; a test module's `CONTEXT` dict gives its `[context]` defaults."""
    built: list[Deps] = []
    defaults: dict[str, Any] = dict(getattr(request.module, "CONTEXT", {}))

    def build(**overrides: Any) -> Deps:
        if defaults:
            overrides["context"] = {**defaults, **overrides.get("context", {})}
        deps = make_deps(**overrides)
        if deps.memory is None:
            deps.memory = _engine(deps)
        built.append(deps)
        return deps

    yield build
    for deps in built:
        close = getattr(deps.memory, "close", None)
        if close is not None:
            deps.memory.flush_vectors()
            close()


@pytest.fixture
def ctx_deps(ctx_factory: Callable[..., Deps]) -> Deps:
    return ctx_factory()
