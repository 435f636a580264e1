"""Bad input gets a clear refusal, never an internal error with a traceback in the log: HTTP
bodies and json tool documents nested too deeply for the JSON parser, and odd values in the
export's download name."""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import unquote

import pytest
from security_support import Servers, call_raw, make_world

from kimi_mcp.app import create_app
from kimi_mcp.httputil import MAX_JSON_DEPTH, attachment

pytestmark = pytest.mark.anyio

ROUTES = ["/v1/chat/completions", "/v1/messages", "/v1/responses",
          "/v1/messages/count_tokens", "/api/sessions"]


@pytest.mark.parametrize("depth", [100_000, MAX_JSON_DEPTH + 1])
async def test_a_body_nested_too_deeply_is_a_400_naming_the_limit(
    deps: Any, serve_app: Any, caplog: pytest.LogCaptureFixture, depth: int
) -> None:
    body = b"[" * depth + b"]" * depth
    caplog.set_level(logging.ERROR)
    async with serve_app(create_app(deps.settings, deps)) as client:
        for route in ROUTES:
            answer = await client.post(route, content=body,
                                       headers={"content-type": "application/json"})
            message = answer.json()["error"]["message"]
            assert answer.status_code == 400, (route, answer.text[:300])
            assert "nests too deeply" in message and str(MAX_JSON_DEPTH) in message
    assert not [r for r in caplog.records if r.exc_info], caplog.text[:2000]


async def test_json_tools_refuse_a_document_nested_too_deeply_for_the_parser(tmp_path: Any) -> None:
    world = make_world(tmp_path)
    servers = Servers.build(tmp_path)
    servers.deps.roots = [world.ws]
    deep = "[" * 100_000 + "]" * 100_000
    (world.ws / "deep.json").write_text(deep)
    for tool, args in [
        ("query", {"path": "deep.json", "expression": "$[0]"}),
        ("structure", {"path": "deep.json"}),
        ("validate", {"path": "deep.json"}),
        ("query", {"document": deep, "expression": "$"}),
    ]:
        is_error, text = await call_raw(servers.json, tool, args)
        assert is_error and "nests too deeply" in text and f"json_{tool}" in text, text
        assert "internal error" not in text and "Error calling tool" not in text


HOSTILE_NAMES = ['x.html"; x="', "x\r\nSet-Cookie: a=b", "é/../日本"]


@pytest.mark.parametrize("session", HOSTILE_NAMES)
async def test_the_export_download_name_cannot_be_steered_by_the_session(
    deps: Any, serve_app: Any, session: str
) -> None:
    created = await deps.sessions.create(session, activate=False)  # a filter must name one
    async with serve_app(create_app(deps.settings, deps)) as client:
        answer = await client.get("/api/export", params={"format": "json", "session": session})
    assert answer.status_code == 200
    header = answer.headers["content-disposition"]
    plain = re.fullmatch(r'attachment; filename="([A-Za-z0-9._-]+)"; filename\*=UTF-8\'\'(\S+)',
                         header)
    assert plain is not None, header
    assert unquote(plain.group(2)) == f"kimi-mcp-export-{created['id']}.json"
    assert "set-cookie" not in answer.headers


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_download_name_cannot_end_the_header_or_its_parameter(name: str) -> None:
    header = attachment(f"kimi-mcp-export-{name}.json")
    plain = re.fullmatch(r'attachment; filename="([A-Za-z0-9._-]+)"; filename\*=UTF-8\'\'(\S+)',
                         header)
    assert plain is not None, header
    assert unquote(plain.group(2)) == f"kimi-mcp-export-{name}.json"


async def test_a_query_match_too_deep_to_return_is_skipped_with_a_hint(tmp_path: Any) -> None:
    servers = Servers.build(tmp_path)
    doc = "[" * 300 + "]" * 300  # parses; the answer's serializer stops at about 255 levels
    is_error, text = await call_raw(servers.json, "query", {"document": doc, "expression": "$"})
    assert not is_error and "nests over 200 levels" in text and "next_offset" in text, text
