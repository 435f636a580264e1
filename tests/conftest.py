"""Shared fixtures: settings in a temp data dir, a started ledger, the Deps every face needs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kimi_mcp.config import load_settings
from kimi_mcp.deps import Deps
from kimi_mcp.ledger import open_ledger
from tests.services import BACKENDS, postgres_schema

__all__ = ["BACKENDS"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's keys, config file or data dir."""
    import os

    for name in list(os.environ):
        if name.startswith("KIMI_MCP_") or name.endswith("_API_KEY"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The ledger's database: SQLite here; the ledger, proxy and dashboard tests override this
    fixture with `params=BACKENDS` to run against PostgreSQL too."""
    return getattr(request, "param", "sqlite")


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """`sqlite:///…` in the test's data dir, or a PostgreSQL schema of the test's own."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'kimi-mcp.db'}"
        return
    with postgres_schema() as url:
        yield url


MakeDeps = Callable[..., Deps]


@pytest.fixture
def make_deps(tmp_path: Path, database_url: str) -> Iterator[MakeDeps]:
    """Build Deps over a fresh ledger in tmp_path; keyword arguments override settings.

    The workspace is `tmp_path / "ws"` unless `mcp={"workspace": ...}` says otherwise; the
    memory engine uses the cheap hash embedder unless `memory={"embedder": "minilm"}`.
    """
    started: list[Deps] = []

    def build(**overrides: Any) -> Deps:
        workspace = tmp_path / "ws"
        workspace.mkdir(exist_ok=True)
        values: dict[str, Any] = {"data_dir": str(tmp_path / "data"),
                                  "database": {"url": database_url}}
        values["mcp"] = {"workspace": str(workspace), **overrides.pop("mcp", {})}
        values["memory"] = {"embedder": "hash", **overrides.pop("memory", {})}
        # never follow the real ~/.continue of whoever runs the suite
        values["logwatch"] = {"enabled": False, **overrides.pop("logwatch", {})}
        values.update(overrides)
        settings = load_settings(overrides=values, launch_dir=tmp_path)
        ledger = open_ledger(settings.database_url(), settings.data_dir)
        ledger.start()
        deps = Deps(settings=settings, ledger=ledger, memory=None)  # type: ignore[arg-type]
        deps.memory = _memory_engine(deps)
        started.append(deps)
        return deps

    yield build
    for deps in started:
        deps.close()


@pytest.fixture
def deps(make_deps: MakeDeps) -> Deps:
    return make_deps()


def _memory_engine(deps: Deps) -> Any:
    try:
        from kimi_mcp.memory.engine import MemoryEngine
    except ImportError:
        return None
    return MemoryEngine(deps.settings, deps.ledger)


@pytest.fixture
def serve_app() -> Callable[..., Any]:
    """`async with serve_app(app) as client:` — the app in-process, inside its lifespan."""
    import contextlib

    import httpx

    @contextlib.asynccontextmanager
    async def run(app: Any, base_url: str = "http://127.0.0.1:8765", **kwargs: Any) -> Any:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=base_url, **kwargs) as client:
                yield client

    return run
