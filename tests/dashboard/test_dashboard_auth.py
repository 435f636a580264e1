"""With server.auth_tokens set, the page asks for the token once and uses it everywhere."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dashboard_harness import FakeProvider, Server, write_config

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]  # a server start takes seconds
TOKEN = "dash-secret-123"


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("dashboard-auth")
    with FakeProvider() as fake:
        config = write_config(root / "kimi-mcp.toml", fake.base_url,
                              extra=f'[server]\nauth_tokens = ["{TOKEN}"]\n')
        srv = Server(root, config).start()
        try:
            yield srv
        finally:
            srv.stop()


def test_dashboard_asks_for_the_token_once_and_sends_it_on_api_and_websocket(
        guarded_server: Server, browser: Any) -> None:
    srv = guarded_server
    assert httpx.get(f"{srv.url}/api/sessions").status_code == 401
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.goto(f"{srv.url}/")
        page.locator("#token-dialog").wait_for(state="visible", timeout=15_000)
        page.fill("#token-input", TOKEN)
        page.keyboard.press("Enter")
        page.wait_for_selector("body[data-ready=true]", timeout=15_000)
        page.wait_for_selector("#conn[data-state=online]", timeout=15_000)
        assert page.evaluate("localStorage.getItem('kimi-mcp-token')") == TOKEN
        headers = {"authorization": f"Bearer {TOKEN}"}
        body = {"model": "fake/fake-small", "messages": [{"role": "user", "content": "PROMPT=777"}]}
        assert httpx.post(f"{srv.url}/v1/chat/completions", json=body, headers=headers,
                          timeout=30).status_code == 200
        page.wait_for_function("document.querySelector('#gauge').dataset.prompt === '777'",
                               timeout=2000)
        page.reload()  # the token is remembered: no second question
        page.wait_for_selector("body[data-ready=true]", timeout=15_000)
        assert page.locator("#token-dialog").is_hidden()
    finally:
        context.close()
