"""`kimi-mcp stdio` answers the handshake from a recorded snapshot before its server has loaded:
the snapshot is exactly what the server answers, and the session carries on as if the server
had answered itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_stdio_ledger import Stdio, tool_calls

from kimi_mcp.config import load_settings
from kimi_mcp.stdio import default_snapshot
from kimi_mcp.stdio_front import SNAPSHOT_PATH, Snapshot, snapshot_key

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_the_shipped_snapshot_is_what_the_server_answers_on_every_handshake_version() -> None:
    recorded = default_snapshot()
    assert set(recorded.initialize) >= {"2025-06-18", "2025-11-25"}
    shipped = json.loads(SNAPSHOT_PATH.read_text(encoding="utf-8"))
    assert shipped["key"]["sources"] == recorded.key["sources"], (
        "a tool family or server.py changed: re-record with scripts/mcp-snapshot")
    if shipped["key"]["libraries"] != recorded.key["libraries"]:
        # another FastMCP/MCP SDK within the supported ranges: the front does not serve this
        # snapshot (tested below) and the SDK answers the handshake itself
        pytest.skip(f"the snapshot was recorded with {shipped['key']['libraries']}, these are "
                    f"{recorded.key['libraries']}: it is not served here; scripts/mcp-snapshot "
                    "re-records it")
    assert recorded.to_json() == SNAPSHOT_PATH.read_text(encoding="utf-8"), (
        "the handshake or a tool changed: re-record with scripts/mcp-snapshot")


def _listing_and_version(client: Stdio, version: str) -> tuple[list[str], dict[str, Any]]:
    init = client.call("initialize", {"protocolVersion": version, "capabilities": {},
                                      "clientInfo": {"name": "raw", "version": "1"}})
    client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    listing = client.call("tools/list", {})
    return [t["name"] for t in listing["result"]["tools"]], init["result"]


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25"])
def test_a_session_goes_on_after_the_front_answered_the_handshake(tmp_path: Path,
                                                                  version: str) -> None:
    client = Stdio(tmp_path)
    names, init = _listing_and_version(client, version)
    assert init["protocolVersion"] == version
    assert len(names) == 43
    assert client.call("ping", {})["result"] == {}
    result = client.tool("json_validate", {"document": "[1]"})
    assert not result.get("isError")
    templates = client.call("resources/templates/list", {})
    assert "stats://sessions/{session_id}" in json.dumps(templates)
    assert client.proc.stdin is not None
    client.proc.stdin.close()
    code, err = client.finish()
    assert code == 0, err
    assert [c["tool"] for c in tool_calls(tmp_path)] == ["json_validate"]


def test_a_read_only_server_lists_its_own_tools_not_the_snapshot(tmp_path: Path) -> None:
    client = Stdio(tmp_path, KIMI_MCP_MCP__READ_ONLY="true")
    names, _ = _listing_and_version(client, "2025-06-18")
    assert "fs_read_file" in names and "fs_write_file" not in names
    assert client.proc.stdin is not None
    client.proc.stdin.close()
    assert client.finish()[0] == 0


def test_an_initialize_the_front_cannot_vouch_for_is_answered_by_the_server(tmp_path: Path) -> None:
    client = Stdio(tmp_path)
    refused = client.call("initialize", {"protocolVersion": "2025-06-18"})  # no clientInfo
    assert "error" in refused
    unknown = client.call("initialize", {"protocolVersion": "1999-01-01", "capabilities": {},
                                         "clientInfo": {"name": "raw", "version": "1"}})
    assert unknown["result"]["protocolVersion"] == "2025-11-25"  # the SDK's counter-offer
    assert client.proc.stdin is not None
    client.proc.stdin.close()
    assert client.finish()[0] == 0


def test_a_snapshot_recorded_from_other_code_is_not_served(tmp_path: Path) -> None:
    settings = load_settings(overrides={"data_dir": str(tmp_path)}, launch_dir=tmp_path)
    shipped = json.loads(SNAPSHOT_PATH.read_text(encoding="utf-8"))
    shipped["key"] = snapshot_key(settings)  # as if recorded here, with these libraries
    copy = tmp_path / "snapshot.json"
    copy.write_text(json.dumps(shipped), encoding="utf-8")
    assert Snapshot.load(settings, copy) is not None
    for changed in ({"sources": "0" * 16},  # a tool edited since it was recorded
                    {"libraries": {"fastmcp": "4.0.0", "mcp": "2.3.0", "mcp-types": "0"}}):
        copy.write_text(json.dumps({**shipped, "key": {**shipped["key"], **changed}}),
                        encoding="utf-8")
        assert Snapshot.load(settings, copy) is None
