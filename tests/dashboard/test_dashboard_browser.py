"""The real dashboard page in headless Chromium against a real `kimi-mcp serve`."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashboard_harness import Server, tool_output

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]  # a server start takes seconds


def test_dashboard_page_loads_without_console_errors_or_outside_requests(server: Server, open_page: Any) -> None:
    watched = open_page(server)
    page = watched.page
    assert page.title() == "kimi-mcp · dashboard"
    page.wait_for_function("document.querySelector('#charts').dataset.points > 0")
    assert page.locator("#providers-body tr[data-provider=fake]").count() == 1
    assert watched.errors == []
    assert watched.hosts == {"127.0.0.1"}


def test_dashboard_proxied_call_appears_in_feed_and_moves_gauge_without_reload(server: Server, open_page: Any) -> None:
    watched = open_page(server)
    page = watched.page
    page.evaluate("window.__notReloaded = true")
    rows_before = page.locator("#feed-body tr.feed-row").count()
    assert server.chat(2000, session="gauge").status_code == 200
    page.wait_for_function("document.querySelector('#gauge').dataset.prompt === '2000'", timeout=1000)
    assert server.chat(6800, session="gauge").status_code == 200
    page.wait_for_function("document.querySelector('#gauge').dataset.prompt === '6800'", timeout=1000)
    page.wait_for_function(f"document.querySelectorAll('#feed-body tr.feed-row').length === {rows_before + 2}",
                           timeout=1000)
    assert page.evaluate("window.__notReloaded") is True
    assert page.locator("#gauge-pct").text_content() == "85%"  # 6800 of fake-small's 8000
    assert page.locator("#gauge").get_attribute("aria-valuenow") == "85"
    assert page.locator("#gauge-arc").get_attribute("stroke") == "#dc2626"  # past 0.8: red
    first = page.locator("#feed-body tr.feed-row").first
    assert "fake-small" in first.inner_text() and "6,800" in first.inner_text()
    assert "chat" in first.inner_text()  # the client's API format (meta.inbound)
    assert watched.errors == []


def test_dashboard_sessions_are_created_selected_and_deleted(server: Server, open_page: Any) -> None:
    page = open_page(server).page
    page.select_option("#new-provider", "fake")
    page.select_option("#new-model", "fake-large")
    page.fill("#new-name", "bugfix-42")
    page.click("#new-submit")
    item = page.locator(".session-item", has_text="bugfix-42")
    item.wait_for()
    assert "fake/fake-large" in item.inner_text()
    assert item.locator(".session-select").get_attribute("aria-pressed") == "true"
    sid = item.get_attribute("data-id")
    assert server.chat(1234, session="bugfix-42").status_code == 200
    page.wait_for_function("document.querySelector('#gauge').dataset.prompt === '1234'", timeout=2000)
    assert page.locator("#controls-session").text_content() == "bugfix-42"

    page.fill("#new-name", "other")
    page.keyboard.press("Enter")  # the form submits from the keyboard
    page.locator(".session-item", has_text="other").wait_for()
    item.locator(".session-select").click()
    assert item.locator(".session-select").get_attribute("aria-pressed") == "true"

    item.locator(".session-delete").click()
    assert page.locator("#confirm").is_visible()
    page.click("#confirm-ok")
    page.locator(f".session-item[data-id='{sid}']").wait_for(state="detached")
    assert httpx.get(f"{server.url}/api/sessions/{sid}").status_code == 404
    names = [s["name"] for s in httpx.get(f"{server.url}/api/sessions").json()]
    assert "bugfix-42" not in names and "other" in names


def test_dashboard_export_downloads_a_csv_whose_rows_match_the_ledger(server: Server, open_page: Any) -> None:
    for tokens in (1000, 2000, 3000):
        assert server.chat(tokens, session="export").status_code == 200
    assert server.chat(10, fail=True).status_code >= 500
    page = open_page(server).page
    with page.expect_download() as info:
        page.click("#export-csv")
    path = info.value.path()
    rows = list(csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8"))))
    ledger = httpx.get(f"{server.url}/api/requests?limit=500").json()["items"]
    assert sorted(int(r["id"]) for r in rows if r["kind"] == "request") == sorted(r["id"] for r in ledger)
    by_id = {r["id"]: r for r in ledger}
    for row in rows:
        want = by_id[int(row["id"])]
        assert row["status"] == want["status"] and row["model"] == want["model"]
        assert row["prompt_tokens"] == str(want["prompt_tokens"] or "")
    assert {"1000", "2000", "3000"} <= {r["prompt_tokens"] for r in rows}


def test_dashboard_drawer_shows_the_masked_original_and_the_error(server: Server, open_page: Any) -> None:
    page = open_page(server).page
    original = tool_output()
    rows_before = page.locator("#feed-body tr.feed-row").count()
    assert server.chat_with_tool_output(original, session="drawer").status_code == 200
    assert server.chat(10, fail=True).status_code >= 500
    page.wait_for_function(f"document.querySelectorAll('#feed-body tr.feed-row').length === {rows_before + 2}")
    page.select_option("#feed-kind", "error")
    assert "error 502" in page.locator("#feed-body tr.feed-row").first.inner_text()
    page.locator("#feed-body tr.feed-row").first.focus()
    page.keyboard.press("Enter")
    page.locator("#drawer .drawer-error").wait_for()
    assert "told to fail" in page.locator("#drawer .drawer-error").inner_text()
    page.keyboard.press("Escape")
    assert page.locator("#drawer").is_hidden()

    page.select_option("#feed-kind", "all")
    page.fill("#feed-filter", "fake-large")
    page.locator("#feed-body tr.feed-row").first.click()
    page.get_by_role("button", name="Show original").first.click()
    shown = page.locator("#drawer .masked-original").first
    shown.wait_for()
    assert shown.text_content() == original


def test_dashboard_is_usable_on_a_narrow_window(server: Server, open_page: Any) -> None:
    server.chat(500)
    page = open_page(server, width=400, height=800).page
    page.wait_for_function("document.querySelectorAll('#feed-body tr.feed-row').length > 0")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    assert page.locator("#compress-btn").is_visible()


def test_dashboard_websocket_reconnects_after_a_server_restart(server: Server, open_page: Any) -> None:
    page = open_page(server).page
    page.evaluate("""() => {
        window.__states = [];
        new MutationObserver(() => window.__states.push(document.querySelector('#conn').dataset.state))
          .observe(document.querySelector('#conn'), {attributes: true});
        window.__notReloaded = true;
    }""")
    server.restart()
    page.wait_for_function("window.__states.includes('offline')", timeout=10_000)
    page.wait_for_selector("#conn[data-state=online]", timeout=15_000)
    assert server.chat(4321).status_code == 200
    page.wait_for_function("document.querySelector('#gauge').dataset.prompt === '4321'", timeout=2000)
    assert page.evaluate("window.__notReloaded") is True
