"""A screenshot of the dashboard with real traffic from the fake provider and real MCP calls.

Always saved under artifacts/; copied to docs/dashboard.png (linked from the README) when
DASHBOARD_UPDATE_SCREENSHOT=1. Its own server, so the picture holds only this traffic."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ARTIFACTS
from dashboard_harness import Server, tool_output

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]  # a server start takes seconds
DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_dashboard_screenshot_with_real_data(server: Server, open_page: Any) -> None:
    sid = httpx.post(f"{server.url}/api/sessions", json={"name": "refactor-auth"}).json()["id"]
    for i, tokens in enumerate((900, 1800, 2600, 3400, 4100, 5200, 6100)):
        server.chat(tokens, session="refactor-auth", stream=i % 2 == 0)
    server.chat_with_tool_output(tool_output(), prompt_tokens=5000, session="refactor-auth")
    for tokens in (12_000, 18_000, 26_000):
        server.chat(tokens, model="fake/fake-large")
    server.chat(10, fail=True)
    _call_tools(server)
    server.chat(6600, session="refactor-auth")
    watched = open_page(server)
    page = watched.page
    page.click(f".session-item[data-id='{sid}'] .session-select")
    page.click("[data-range='15m']")
    page.wait_for_function("document.querySelector('#gauge').dataset.prompt === '6600'")
    page.wait_for_function("document.querySelector('#charts').dataset.points === '60'")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    page.screenshot(path=str(shot), full_page=False)
    page.screenshot(path=str(ARTIFACTS / "dashboard-full.png"), full_page=True)
    if os.environ.get("DASHBOARD_UPDATE_SCREENSHOT"):  # KIMI_MCP_* is cleared for tests
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(ARTIFACTS / "dashboard-full.png", DOCS / "dashboard.png")
    assert shot.stat().st_size > 10_000
    assert watched.errors == []
    dark = open_page(server, color_scheme="dark").page
    dark.click(f".session-item[data-id='{sid}'] .session-select")
    dark.click("[data-range='15m']")
    dark.wait_for_function("document.querySelector('#gauge').dataset.prompt === '6600'")
    dark.screenshot(path=str(ARTIFACTS / "dashboard-dark.png"))


def _call_tools(server: Server) -> None:
    """A few real MCP tool calls over /mcp, so the MCP panel and the feed show them."""
    import anyio
    from fastmcp import Client

    (server.root / "ws" / "data.json").write_text('{"users": [{"name": "ada"}, {"name": "lin"}]}')

    async def calls() -> None:
        async with Client(f"{server.url}/mcp") as client:
            await client.call_tool("json_query", {"path": "data.json", "expression": "$.users[*].name"},
                                   raise_on_error=False)
            await client.call_tool("fs_list_directory", {"path": "."}, raise_on_error=False)
            await client.call_tool("fs_read_file", {"path": "data.json"}, raise_on_error=False)
            await client.call_tool("fs_read_file", {"path": "missing.txt"}, raise_on_error=False)

    import threading

    failures: list[BaseException] = []

    def run() -> None:  # Playwright's sync API owns this thread's event loop
        try:
            anyio.run(calls)
        except BaseException as exc:
            failures.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(60)
    assert not failures, failures
