"""The dashboard's JSON API in-process: feed pages, timeseries, panels, masked originals."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from kimi_mcp.app import create_app
from kimi_mcp.ledger import RequestRow, ToolCallRow, open_ledger
from kimi_mcp.ledger.models import Request, ToolCall

pytestmark = pytest.mark.anyio


def _requests(deps: Any, n: int, session: str | None = None, start: float | None = None) -> None:
    start = start or time.time() - n
    for i in range(n):
        deps.ledger.insert(Request, session_id=session, created_at=start + i, provider="fake",
                           model="m1", prompt_tokens=100 + i, completion_tokens=10,
                           latency_ms=float(100 + i), ttft_ms=float(10 + i), cost_usd=0.001,
                           saved_mask_tokens=5, status="ok" if i % 10 else "error",
                           error=None if i % 10 else "upstream said no")


async def test_session_requests_page_newest_first_with_a_cursor(deps, serve_app) -> None:  # type: ignore[no-untyped-def]
    async with serve_app(create_app(deps.settings, deps)) as client:
        sid = (await client.post("/api/sessions", json={"name": "s"})).json()["id"]
        _requests(deps, 25, sid)
        _requests(deps, 3, None)
        await deps.ledger.aflush()
        seen: list[int] = []
        cursor = ""
        while True:
            page = (await client.get(f"/api/sessions/{sid}/requests?limit=10&cursor={cursor}")).json()
            seen += [r["id"] for r in page["items"]]
            if not page["next_cursor"]:
                break
            cursor = page["next_cursor"]
        missing = await client.get("/api/sessions/nope/requests")
        bad = await client.get(f"/api/sessions/{sid}/requests?limit=0")
    assert len(seen) == 25 and seen == sorted(seen, reverse=True)
    assert missing.status_code == 404
    assert bad.status_code == 400 and "limit" in bad.json()["error"]["message"]


async def test_feed_rows_carry_the_clients_api_format(deps, serve_app) -> None:  # type: ignore[no-untyped-def]
    deps.ledger.insert(Request, provider="fake", model="m1", meta={"inbound": "anthropic_messages"})
    deps.ledger.insert(Request, provider="fake", model="m1", meta={})
    await deps.ledger.aflush()
    async with serve_app(create_app(deps.settings, deps)) as client:
        page = (await client.get("/api/requests?limit=10")).json()
    assert [r["inbound"] for r in page["items"]] == [None, "anthropic_messages"]
    assert all("meta" not in r for r in page["items"])


async def test_timeseries_buckets_in_sql_and_gives_percentiles_per_provider(deps, serve_app) -> None:  # type: ignore[no-untyped-def]
    _requests(deps, 100, start=time.time() - 200)
    deps.ledger.insert(ToolCall, tool="fs_read_file", family="fs", args_tokens=3, result_tokens=40)
    async with serve_app(create_app(deps.settings, deps)) as client:
        await deps.ledger.aflush()
        data = (await client.get("/api/stats/timeseries?range=1h")).json()
        bad = await client.get("/api/stats/timeseries?range=1y")
    assert data["bucket_s"] == 60 and len(data["points"]) == 60
    assert sum(p["requests"] for p in data["points"]) == 100
    assert sum(p["prompt_tokens"] for p in data["points"]) == sum(100 + i for i in range(100))
    assert sum(p["tool_tokens"] for p in data["points"]) == 43
    assert {s["key"] for s in data["by_source"]} == {"proxy", "mcp"}
    latency = data["latency"][0]
    assert latency["provider"] == "fake" and latency["samples"] == 100
    assert (latency["latency_p50"], latency["latency_p90"], latency["latency_p99"]) == (149, 189, 198)
    assert latency["ttft_p50"] == 59
    assert bad.status_code == 400


async def test_request_detail_redacts_secret_headers_and_lists_masked_blocks(deps, serve_app) -> None:  # type: ignore[no-untyped-def]
    deps.ledger.insert(Request, provider="fake", model="m1", status="error", error="boom",
                       meta={"headers": {"Authorization": "Bearer sk-secret", "x-kimi-session": "a"},
                             "masked": [{"id": "abc", "tokens": 1200, "content": "no"}]})
    async with serve_app(create_app(deps.settings, deps)) as client:
        await deps.ledger.aflush()
        listed = (await client.get("/api/requests")).json()["items"]
        detail = (await client.get(f"/api/requests/{listed[0]['id']}")).json()
        missing = await client.get("/api/requests/999")
    assert detail["error"] == "boom"
    assert detail["headers"] == {"Authorization": "[redacted]", "x-kimi-session": "a"}
    assert detail["masked"] == [{"id": "abc", "tokens": 1200}]
    assert "sk-secret" not in json.dumps(detail)
    assert missing.status_code == 404


async def test_tool_calls_page_filters_by_tool(deps, serve_app) -> None:  # type: ignore[no-untyped-def]
    for tool in ("fs_read_file", "fs_read_file", "json_query"):
        deps.ledger.insert(ToolCall, tool=tool, family=tool.split("_")[0], is_error=tool == "json_query")
    async with serve_app(create_app(deps.settings, deps)) as client:
        await deps.ledger.aflush()
        everything = (await client.get("/api/tool-calls")).json()["items"]
        reads = (await client.get("/api/tool-calls?tool=fs_read_file")).json()["items"]
    assert len(everything) == 3 and everything[0]["is_error"] is True
    assert len(reads) == 2


async def test_providers_show_key_presence_but_never_the_key(make_deps, serve_app) -> None:  # type: ignore[no-untyped-def]
    deps = make_deps(providers={"fake": {"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-top-secret",
                                         "models": {"m1": {"context_window": 8000}}}})
    _requests(deps, 4)
    app = create_app(deps.settings, deps)

    class Live:
        def snapshot(self) -> dict[str, Any]:
            return {"fake": {"breaker": "closed", "rate_limit": {"rpm_left": 5}}}

    app.state.runtime.providers = Live()
    async with serve_app(app) as client:
        await deps.ledger.aflush()
        resp = await client.get("/api/providers")
    assert "sk-top-secret" not in resp.text
    fake = next(p for p in resp.json() if p["name"] == "fake")
    assert fake["has_key"] is True and fake["breaker"] == "closed"
    assert fake["rate_limit"] == {"rpm_left": 5}
    assert fake["recent"]["requests"] == 4 and fake["health"] == "degraded"


async def test_a_provider_whose_key_is_none_on_purpose_needs_no_key(make_deps, serve_app) -> None:  # type: ignore[no-untyped-def]
    deps = make_deps(providers={"local": {"base_url": "http://127.0.0.1:9/v1", "api_key": "none",
                                          "models": {"m1": {"context_window": 8000}}}})
    async with serve_app(create_app(deps.settings, deps)) as client:
        listed = (await client.get("/api/providers")).json()
    local = next(p for p in listed if p["name"] == "local")
    groq = next(p for p in listed if p["name"] == "groq")
    assert (local["has_key"], local["key_required"], local["health"]) == (False, False, "idle")
    assert (groq["key_required"], groq["health"]) == (True, "no key")


async def test_mcp_panel_counts_tools_and_reads_the_task_board(deps, serve_app) -> None:  # type: ignore[no-untyped-def]
    board = Path(deps.roots[0]) / ".taskmaster" / "tasks"
    board.mkdir(parents=True)
    (board / "tasks.json").write_text(json.dumps({"master": {"tasks": [
        {"id": 1, "status": "done"}, {"id": 2, "status": "pending", "subtasks": [{"id": 1}]}]}}))
    deps.ledger.insert(ToolCall, tool="fs_read_file", family="fs", latency_ms=2.0)
    deps.ledger.insert(ToolCall, tool="fs_read_file", family="fs", is_error=True, latency_ms=4.0)
    async with serve_app(create_app(deps.settings, deps)) as client:
        await deps.ledger.aflush()
        data = (await client.get("/api/mcp")).json()
    fs = next(f for f in data["families"] if f["name"] == "fs")
    tool = next(t for t in fs["tools"] if t["tool"] == "fs_read_file")
    assert (tool["calls"], tool["errors"], tool["error_rate"], tool["avg_latency_ms"]) == (2, 1, 0.5, 3.0)
    assert data["tasks"]["tags"]["master"]["by_status"] == {"done": 1, "pending": 1}
    assert data["tasks"]["tags"]["master"]["done_ratio"] == 0.5


async def test_compress_button_and_stage_switches_change_the_session(deps, serve_app) -> None:  # type: ignore[no-untyped-def]
    async with serve_app(create_app(deps.settings, deps)) as client:
        sid = (await client.post("/api/sessions", json={"name": "s"})).json()["id"]
        pressed = await client.post(f"/api/sessions/{sid}/compress")
        switched = await client.patch(f"/api/sessions/{sid}", json={"context": {"sanitize": False}})
        wrong = await client.patch(f"/api/sessions/{sid}", json={"compress_requested": "yes"})
    assert pressed.status_code == 202 and pressed.json()["compress_requested"] is True
    assert switched.json()["context"] == {"sanitize": False}
    assert wrong.status_code == 400


async def test_masked_original_comes_back_byte_exact(deps, serve_app) -> None:  # type: ignore[no-untyped-def]
    if deps.memory is None:
        pytest.skip("the memory engine is not in this build")
    original = "line 1\r\n\ttabbed  ünïcode ✓\n" * 50
    import anyio

    mid = (await anyio.to_thread.run_sync(lambda: deps.memory.store_text_sync(original))).id
    async with serve_app(create_app(deps.settings, deps)) as client:
        data = (await client.get(f"/api/masked/{mid}")).json()
        raw = await client.get(f"/api/masked/{mid}?raw=1")
        missing = await client.get("/api/masked/nope")
    assert data["content"] == original
    assert raw.content == original.encode()
    assert missing.status_code == 404


async def test_rollup_follows_new_rows_and_session_deletions(deps, serve_app) -> None:  # type: ignore[no-untyped-def]
    async with serve_app(create_app(deps.settings, deps)) as client:
        sid = (await client.post("/api/sessions", json={"name": "gone"})).json()["id"]
        _requests(deps, 5, sid)
        await deps.ledger.aflush()
        first = (await client.get("/api/stats/timeseries?range=1h")).json()
        _requests(deps, 7, None)
        deps.ledger.insert(ToolCall, tool="json_query", family="json", result_tokens=9)
        await deps.ledger.aflush()
        second = (await client.get("/api/stats/timeseries?range=1h")).json()
        sessions = (await client.get("/api/sessions")).json()
        tools = (await client.get("/api/mcp")).json()
        await client.delete(f"/api/sessions/{sid}")
        third = (await client.get("/api/stats/timeseries?range=1h")).json()
        exact = (await client.get("/api/stats/timeseries?range=15m")).json()  # read from the ledger
    total = lambda data: sum(p["requests"] for p in data["points"])  # noqa: E731
    assert (total(first), total(second), total(third), total(exact)) == (5, 12, 7, 7)
    assert next(s for s in sessions if s["id"] == sid)["totals"]["requests"] == 5
    json_family = next(f for f in tools["families"] if f["name"] == "json")
    assert [t["calls"] for t in json_family["tools"] if t["tool"] == "json_query"] == [1]


async def test_every_panel_counts_what_another_process_wrote_on_every_range(
        deps, serve_app, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = open_ledger(database_url, tmp_path / "other-process")  # a stdio server, say
    other.start()
    try:
        async with serve_app(create_app(deps.settings, deps)) as client:
            session = (await client.post("/api/sessions", json={"name": "elsewhere"})).json()["id"]
            now = time.time()
            for i in range(25):  # one every minute over the last 25 minutes
                other.append(ToolCallRow(tool="fs_read_file", family="fs", result_tokens=4,
                                         created_at=now - 60 * i - 1, session_id=session))
            other.append(RequestRow(provider="fake", model="m1", prompt_tokens=7,
                                    created_at=now - 5, session_id=session))
            other.flush()
            cards = {}
            for name in ("1h", "6h", "24h", "7d", "30d"):
                data = (await client.get(f"/api/stats/timeseries?range={name}")).json()
                mcp = next((s for s in data["by_source"] if s["key"] == "mcp"), {"requests": 0})
                cards[name] = (mcp["requests"], sum(p["requests"] for p in data["points"]))
            quarter = (await client.get("/api/stats/timeseries?range=15m")).json()
            stats = (await client.get(f"/api/stats?since={now - 86_400}")).json()["totals"]
            panel = (await client.get("/api/mcp")).json()
            listed = (await client.get("/api/sessions")).json()
            feed = (await client.get("/api/tool-calls?limit=100")).json()["items"]
    finally:
        other.close()
    assert cards == {name: (25, 1) for name in ("1h", "6h", "24h", "7d", "30d")}
    assert next(s for s in quarter["by_source"] if s["key"] == "mcp")["requests"] == 15
    assert (stats["tool_calls"], stats["requests"]) == (25, 1)
    fs = next(f for f in panel["families"] if f["name"] == "fs")
    assert fs["calls"] == 25
    totals = next(s for s in listed if s["id"] == session)["totals"]
    assert (totals["tool_calls"], totals["requests"]) == (25, 1)
    assert len(feed) == 25


async def test_every_session_filter_takes_a_session_id_or_its_name(deps, serve_app) -> None:  # type: ignore[no-untyped-def]
    async with serve_app(create_app(deps.settings, deps)) as client:
        sid = (await client.post("/api/sessions", json={"name": "fix-login"})).json()["id"]
        _requests(deps, 3, sid)
        _requests(deps, 2, None)
        deps.ledger.insert(ToolCall, tool="fs_read_file", family="fs", session_id=sid)
        deps.ledger.insert(ToolCall, tool="fs_read_file", family="fs")
        await deps.ledger.aflush()
        seen = {}
        for ref in (sid, "fix-login"):
            stats = (await client.get(f"/api/stats?session={ref}")).json()["totals"]
            series = (await client.get(f"/api/stats/timeseries?range=1h&session={ref}")).json()
            exported = (await client.get(f"/api/export?format=json&session={ref}")).json()
            seen[ref] = (
                len((await client.get(f"/api/requests?session={ref}")).json()["items"]),
                len((await client.get(f"/api/sessions/{ref}/requests")).json()["items"]),
                len((await client.get(f"/api/tool-calls?session={ref}")).json()["items"]),
                (stats["requests"], stats["tool_calls"]),
                sum(p["requests"] for p in series["points"]),
                len(exported),
                (await client.get(f"/api/stats/context?range=1h&session={ref}")).status_code,
            )
        unknown = await client.get("/api/stats?session=no-such-session")
        unknown_export = await client.get("/api/export?format=csv&session=no-such-session")
    assert seen[sid] == seen["fix-login"] == (3, 3, 1, (3, 1), 3, 4, 200)
    assert unknown.status_code == unknown_export.status_code == 404
    assert "no session with id or name 'no-such-session'" in unknown.json()["error"]["message"]


async def test_creating_a_session_refuses_an_unknown_provider_or_model(deps, serve_app) -> None:  # type: ignore[no-untyped-def]
    async with serve_app(create_app(deps.settings, deps)) as client:
        bogus = await client.post("/api/sessions", json={"name": "s", "provider": "bogus"})
        typo = await client.post("/api/sessions", json={"name": "s", "model": "no-such-model"})
        free = await client.post("/api/sessions", json={"name": "s", "provider": "kimi",
                                                        "model": "kimi-new"})
        moved = await client.patch(f"/api/sessions/{free.json()['id']}", json={"provider": "bogus"})
        listed = (await client.get("/api/sessions")).json()
    assert bogus.status_code == 400 and bogus.json()["error"]["code"] == "unknown_provider"
    assert "configured: kimi, " in bogus.json()["error"]["message"]
    assert typo.status_code == 400 and "no-such-model" in typo.json()["error"]["message"]
    assert free.status_code == 201 and "not in the catalog of kimi" in free.json()["warnings"][0]
    assert moved.status_code == 400
    assert [(s["name"], s["provider"]) for s in listed] == [("s", "kimi")]
