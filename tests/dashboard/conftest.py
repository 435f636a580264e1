"""Fixtures for the dashboard's tests: the ledger's backends, Chromium via Playwright, a served app."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from dashboard_harness import CHROMIUM, CHROMIUM_ARGS, FakeProvider, Server, write_config

from tests.services import BACKENDS

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The API tests run on SQLite and on PostgreSQL (see tests/services.py)."""
    return str(request.param)


def _need(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI installs it: see .ci/run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module-scoped: Playwright's sync API keeps an event loop marked running in this thread
    while it lives, which would break the anyio tests that run after these modules."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("playwright is not installed (pip install playwright)")
    if not Path(CHROMIUM).exists():
        _need(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server per module (starting one takes seconds); tests use their own sessions."""
    tmp_path = tmp_path_factory.mktemp("dashboard")
    with FakeProvider() as fake:
        srv = Server(tmp_path, write_config(tmp_path / "kimi-mcp.toml", fake.base_url))
        srv.start()
        try:
            yield srv
        finally:
            srv.stop()


@dataclass
class Watched:
    """A page with what it logged and where it connected."""

    page: Any
    errors: list[str] = field(default_factory=list)
    hosts: set[str] = field(default_factory=set)

    def note(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("data", "blob"):
            self.hosts.add(parts.hostname or url)


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    contexts: list[Any] = []

    def open_(srv: Server, width: int = 1280, height: int = 800, **kwargs: Any) -> Watched:
        context = browser.new_context(viewport={"width": width, "height": height},
                                      accept_downloads=True, **kwargs)
        contexts.append(context)
        page = context.new_page()
        watched = Watched(page)
        page.on("console", lambda m: watched.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: watched.errors.append(f"pageerror: {e}"))
        page.on("request", lambda r: watched.note(r.url))
        page.on("websocket", lambda ws: watched.note(ws.url))
        page.goto(f"{srv.url}/")
        page.wait_for_selector("body[data-ready=true]", timeout=15_000)
        page.wait_for_selector("#conn[data-state=online]", timeout=15_000)
        return watched

    yield open_
    for context in contexts:
        context.close()
