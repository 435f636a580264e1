"""Engines over a fresh ledger in tmp_path; the real MiniLM embedder is loaded once.

`backend` runs a test once per `VectorSearch`: "ledger" (the in-process index, the default)
and "qdrant" (`QdrantSearch` over qdrant-client's in-memory mode: see test_memory_qdrant.py
for why no Qdrant server).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kimi_mcp.config import load_settings
from kimi_mcp.ledger import Ledger
from kimi_mcp.memory.embedder import Embedder, HashEmbedder, MiniLMEmbedder
from kimi_mcp.memory.engine import MemoryEngine
from kimi_mcp.memory.qdrant import QdrantSearch

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


@pytest.fixture(params=["ledger", "qdrant"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def qdrant_in_memory(ledger: Ledger, embedder: Embedder) -> QdrantSearch:
    return QdrantSearch(ledger, embedder.name, embedder.dim, collection="test_memories",
                        location=":memory:")


@pytest.fixture
def make_engine(tmp_path: Path, ledger: Ledger) -> Iterator[MakeEngine]:
    """`make_engine(embedder=None, memory={...}, search="ledger", **engine_kwargs)`: the hash
    embedder unless an embedder is given; `search="qdrant"` searches in qdrant-client's
    in-memory mode; engines are closed before the ledger."""
    engines: list[MemoryEngine] = []

    def build(embedder: Embedder | None = None, memory: dict[str, Any] | None = None,
              search: str = "ledger", **kwargs: Any) -> MemoryEngine:
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
        if search == "qdrant":
            kwargs["vector_search"] = qdrant_in_memory(ledger, embedder or HashEmbedder())
        engine = MemoryEngine(settings, ledger, embedder, **kwargs)
        engines.append(engine)
        return engine

    yield build
    for engine in engines:
        engine.close()
