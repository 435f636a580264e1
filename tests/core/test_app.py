from __future__ import annotations

import csv
import io
import json

import pytest

from kimi_mcp.app import create_app
from kimi_mcp.config import load_settings
from kimi_mcp.errors import ConfigError
from kimi_mcp.ledger.models import Request, ToolCall

pytestmark = pytest.mark.anyio


async def test_health_answers_and_metrics_speak_prometheus(deps, serve_app) -> None:  # type: ignore[no-untyped-def]
    deps.ledger.insert(Request, provider="kimi", model="k2", prompt_tokens=10, completion_tokens=2,
                       latency_ms=120.0, cost_usd=0.25)
    deps.ledger.insert(ToolCall, tool="fs_read_file", family="fs", latency_ms=1.5, result_tokens=30)
    async with serve_app(create_app(deps.settings, deps)) as client:
        await deps.ledger.aflush()
        health = await client.get("/health")
        metrics = await client.get("/metrics")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert metrics.status_code == 200
    text = metrics.text
    assert 'kimi_requests_total{model="k2",provider="kimi",source="proxy",status="ok"} 1.0' in text
    assert 'kimi_request_latency_seconds_bucket{le="0.25",provider="kimi"} 1.0' in text
    assert 'kimi_tool_calls_total{family="fs",outcome="ok",tool="fs_read_file"} 1.0' in text


async def test_sessions_crud_through_the_api(deps, serve_app) -> None:  # type: ignore[no-untyped-def]
    async with serve_app(create_app(deps.settings, deps)) as client:
        created = await client.post("/api/sessions", json={"name": "bugfix", "model": "kimi/k2"})
        assert created.status_code == 201
        sid = created.json()["id"]
        renamed = await client.patch(f"/api/sessions/{sid}", json={"name": "bugfix-2"})
        assert renamed.json()["name"] == "bugfix-2"
        listed = (await client.get("/api/sessions")).json()
        assert [s["name"] for s in listed] == ["bugfix-2"]
        assert (await client.delete(f"/api/sessions/{sid}")).status_code == 204
        missing = await client.get(f"/api/sessions/{sid}")
    assert missing.status_code == 404
    assert "no session" in missing.json()["error"]["message"]


async def test_bad_api_input_gets_a_clear_400(deps, serve_app) -> None:  # type: ignore[no-untyped-def]
    async with serve_app(create_app(deps.settings, deps)) as client:
        no_name = await client.post("/api/sessions", json={"model": "x"})
        not_json = await client.post("/api/sessions", content=b"{nope")
        bad_format = await client.get("/api/export?format=xml")
        bad_time = await client.get("/api/stats?since=yesterday")
    assert no_name.status_code == 400 and "'name' is required" in no_name.json()["error"]["message"]
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]["message"]
    assert bad_format.status_code == 400
    assert bad_time.status_code == 400 and "since" in bad_time.json()["error"]["message"]


async def test_export_streams_csv_and_json_rows_matching_the_ledger(deps, serve_app) -> None:  # type: ignore[no-untyped-def]
    session = await deps.sessions.create("s1")
    for i in range(2500):
        deps.ledger.insert(Request, session_id=session["id"], provider="kimi", model="k2",
                           prompt_tokens=i, created_at=1000.0 + i)
    deps.ledger.insert(Request, provider="groq", model="other", prompt_tokens=1)
    deps.ledger.insert(ToolCall, session_id=session["id"], tool="json_query", family="json")
    async with serve_app(create_app(deps.settings, deps)) as client:
        await deps.ledger.aflush()
        got_csv = await client.get(f"/api/export?format=csv&session={session['id']}")
        got_json = await client.get(f"/api/export?format=json&session={session['id']}&since=2000")
    rows = list(csv.DictReader(io.StringIO(got_csv.text)))
    assert got_csv.headers["content-type"].startswith("text/csv")
    assert len(rows) == 2501
    assert [r["kind"] for r in rows[-2:]] == ["request", "tool_call"]
    assert rows[0]["prompt_tokens"] == "0" and rows[2499]["prompt_tokens"] == "2499"
    data = json.loads(got_json.text)
    assert len(data) == 1501  # the 1500 requests at created_at >= 2000, and the tool call (now)
    assert data[0]["prompt_tokens"] == 1000
    assert data[-1]["kind"] == "tool_call" and data[-1]["tool"] == "json_query"


async def test_tokens_guard_every_route_but_health(make_deps, serve_app) -> None:  # type: ignore[no-untyped-def]
    deps = make_deps(server={"auth_tokens": ["s3cret"]})
    async with serve_app(create_app(deps.settings, deps)) as client:
        assert (await client.get("/health")).status_code == 200
        denied = await client.get("/api/stats")
        wrong = await client.get("/api/stats", headers={"authorization": "Bearer nope"})
        ok = await client.get("/api/stats", headers={"authorization": "Bearer s3cret"})
        mcp = await client.post("/mcp", json={})
    assert denied.status_code == 401 and "s3cret" not in denied.text
    assert wrong.status_code == 401
    assert ok.status_code == 200
    assert mcp.status_code == 401


def test_binding_beyond_loopback_without_tokens_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(overrides={"server": {"host": "0.0.0.0"}, "data_dir": str(tmp_path)},
                             launch_dir=tmp_path)
    with pytest.raises(ConfigError, match="auth_tokens"):
        create_app(settings)


async def test_health_and_metrics_export_the_writers_queue_and_a_row_the_database_refused(
        deps, serve_app) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    from kimi_mcp.ledger import ToolCallRow

    path = deps.settings.database_url().split("///", 1)[1]
    with sqlite3.connect(path) as db:  # a database that refuses one row for good
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON tool_call WHEN NEW.tool = 'refused' "
                   "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END")
    async with serve_app(create_app(deps.settings, deps)) as client:
        deps.ledger.append(ToolCallRow(tool="refused", family="fs"))
        deps.ledger.append(ToolCallRow(tool="kept", family="fs"))
        await deps.ledger.aflush()
        health = (await client.get("/health")).json()
        metrics = (await client.get("/metrics")).text
    assert health["ledger"]["dropped_rows"] == 1 and health["ledger"]["queue_depth"] == 0
    assert health["ledger"]["spool_pending"] == 0  # a refused row is never replayed
    assert "kimi_ledger_dropped_rows_total 1.0" in metrics
    assert "kimi_ledger_queue_depth 0.0" in metrics
    assert 'kimi_tool_calls_total{family="fs",outcome="ok",tool="kept"} 1.0' in metrics


async def test_a_call_of_an_unknown_tool_adds_no_family_or_metric_label(deps, serve_app) -> None:  # type: ignore[no-untyped-def]
    from fastmcp import Client

    from kimi_mcp.server import build_mcp

    async with Client(build_mcp(deps)) as mcp:
        refused = await mcp.call_tool("no_such_tool", {}, raise_on_error=False)
    assert refused.is_error and "no_such_tool" in refused.content[0].text
    async with serve_app(create_app(deps.settings, deps)) as client:
        await deps.ledger.aflush()
        metrics = (await client.get("/metrics")).text
        families = [f["name"] for f in (await client.get("/api/mcp")).json()["families"]]
        calls = (await client.get("/api/tool-calls")).json()
    assert 'kimi_tool_calls_total{family="unknown",outcome="error",tool="unknown"} 1.0' in metrics
    assert "no_such_tool" not in metrics and 'family="no"' not in metrics
    assert "no" not in families
    rows = calls["items"] if isinstance(calls, dict) else calls
    assert [(r["tool"], r["family"]) for r in rows] == [("unknown", "unknown")]
