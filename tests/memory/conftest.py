"""Engines over a fresh ledger in tmp_path; the real MiniLM embedder is loaded once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kimi_mcp.config import load_settings
from kimi_mcp.ledger import Ledger
from kimi_mcp.memory import MemoryEngine
from kimi_mcp.memory.embedder import Embedder, MiniLMEmbedder

MakeEngine = Callable[..., MemoryEngine]


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    embedder = MiniLMEmbedder()
    embedder.load()
    return embedder


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = Ledger(f"sqlite:///{tmp_path / 'data' / 'kimi-mcp.db'}")
    led.start()
    yield led
    led.close()


@pytest.fixture
def make_engine(tmp_path: Path, ledger: Ledger) -> Iterator[MakeEngine]:
    """`make_engine(embedder=None, memory={...}, **engine_kwargs)`: the hash embedder unless an
    embedder is given; engines are closed before the ledger."""
    engines: list[MemoryEngine] = []

    def build(embedder: Embedder | None = None, memory: dict[str, Any] | None = None,
              **kwargs: Any) -> MemoryEngine:
        workspace = tmp_path / "proj"
        workspace.mkdir(exist_ok=True)
        settings = load_settings(
            overrides={
                "data_dir": str(tmp_path / "data"),
                "mcp": {"workspace": str(workspace)},
                "memory": {"embedder": "hash", **(memory or {})},
            },
            launch_dir=tmp_path,
        )
        engine = MemoryEngine(settings, ledger, embedder, **kwargs)
        engines.append(engine)
        return engine

    yield build
    for engine in engines:
        engine.close()
