"""The official MCP conformance suite (npm @modelcontextprotocol/conformance 0.1.x) against `/mcp`
of a real `kimi-mcp serve` on loopback, plus the handshake versions real clients use.

Installed outside the repo by scripts/test (0.1.14 and later need Node >= 22; 0.1.13 is the
last 0.1.x that runs on Node 20, and it has the same server scenarios):
    npm install --prefix ~/.cache/kimi-mcp-tests/conformance @modelcontextprotocol/conformance@0.1
or pointed to with KIMI_MCP_CONFORMANCE (the install dir, or dist/index.js); KIMI_MCP_NODE
names another node binary.

Every server scenario applies unless NOT_APPLICABLE says why not; a scenario a newer suite adds
is run and must pass until it is classified.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from integrations_support import HttpServer, make_workspace, run_http_server

CLI = Path("node_modules/@modelcontextprotocol/conformance/dist/index.js")
DEFAULT_DIR = Path.home() / ".cache" / "kimi-mcp-tests" / "conformance"
NODE = os.environ.get("KIMI_MCP_NODE") or shutil.which("node")

FIXTURE = "calls the suite's fixture {what} of its reference test server; kimi-mcp serves its own"
NOT_APPLICABLE = {
    "tools-call-simple-text": FIXTURE.format(what="tool test_simple_text") + " (the check "
                              "passes only because an unknown tool answers with text)",
    "tools-call-image": FIXTURE.format(what="tool test_image_content"),
    "tools-call-audio": FIXTURE.format(what="tool test_audio_content"),
    "tools-call-embedded-resource": FIXTURE.format(what="tool test_embedded_resource"),
    "tools-call-mixed-content": FIXTURE.format(what="tool test_multiple_content_types"),
    "tools-call-with-logging": FIXTURE.format(what="tool test_tool_with_logging") + "; no "
                               "kimi-mcp tool sends log notifications",
    "tools-call-with-progress": FIXTURE.format(what="tool test_tool_with_progress") + "; no "
                                "kimi-mcp tool reports progress (long answers are capped and paged)",
    "tools-call-sampling": FIXTURE.format(what="tool test_sampling") + "; kimi-mcp never asks "
                           "the client's model (planning models are configured server-side)",
    "tools-call-elicitation": FIXTURE.format(what="tool test_elicitation") + "; kimi-mcp never "
                              "asks the user for input",
    "elicitation-sep1034-defaults": FIXTURE.format(what="elicitation tool"),
    "elicitation-sep1330-enums": FIXTURE.format(what="elicitation tool"),
    "json-schema-2020-12": FIXTURE.format(what="tool json_schema_2020_12_tool") + "; every "
                           "kimi-mcp schema is checked as JSON Schema by the Inspector and SDK tests",
    "server-sse-polling": FIXTURE.format(what="tool test_reconnection") + ", and it sends "
                          "MCP-Protocol-Version 2025-03-26, to which no priming event is owed "
                          "(older clients cannot parse its empty data); priming and retry for "
                          "2025-11-25 are tested here directly",
    "resources-read-text": FIXTURE.format(what="resource test://static-text"),
    "resources-read-binary": FIXTURE.format(what="resource test://static-binary"),
    "resources-templates-read": FIXTURE.format(what="template test://template/{id}/data"),
    "prompts-get-simple": FIXTURE.format(what="prompt test_simple_prompt") + "; kimi-mcp has no prompts",
    "prompts-get-with-args": FIXTURE.format(what="prompt test_prompt_with_arguments"),
    "prompts-get-embedded-resource": FIXTURE.format(what="prompt test_prompt_with_embedded_resource"),
    "prompts-get-with-image": FIXTURE.format(what="prompt test_prompt_with_image"),
}
APPLICABLE = [
    "server-initialize", "logging-set-level", "ping", "completion-complete", "tools-list",
    "tools-call-error", "server-sse-multiple-streams", "resources-list", "resources-subscribe",
    "resources-unsubscribe", "prompts-list", "dns-rebinding-protection",
]
VERSIONS = ["2025-06-18", "2025-11-25"]


def conformance_cli() -> Path | None:
    configured = os.environ.get("KIMI_MCP_CONFORMANCE")
    for candidate in ([Path(configured)] if configured else []) + [DEFAULT_DIR]:
        path = candidate if candidate.suffix == ".js" else candidate / CLI
        if path.is_file():
            return path
    return None


CLI_PATH = conformance_cli()
pytestmark = [
    pytest.mark.skipif(
        CLI_PATH is None or NODE is None,
        reason="MCP conformance suite not installed: npm install --prefix ~/.cache/kimi-mcp-tests/"
               "conformance @modelcontextprotocol/conformance@0.1 (0.1.13 on Node 20), or set "
               "KIMI_MCP_CONFORMANCE",
    ),
    # real processes: a cold `kimi-mcp serve` start takes seconds, more on a loaded machine
    pytest.mark.timeout(300),
]


def suite(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert CLI_PATH is not None and NODE is not None
    done = subprocess.run([NODE, str(CLI_PATH), *args], capture_output=True, text=True,
                          timeout=240, cwd=cwd, check=False)
    if "SyntaxError" in done.stderr and "does not provide an export" in done.stderr:
        pytest.skip(f"this conformance suite needs a newer Node than {NODE}: use 0.1.13 on Node 20")
    return done


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conformance")


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[HttpServer]:
    with run_http_server(root / "serve", make_workspace(root / "serve")) as running:
        yield running


@pytest.fixture(scope="module")
def scenarios(root: Path) -> list[str]:
    listed = suite("list", cwd=root).stdout
    server_part = listed.split("Client scenarios")[0]
    return [line.strip()[2:].split()[0] for line in server_part.splitlines()
            if line.strip().startswith("- ")]


def run_scenario(server: HttpServer, scenario: str, root: Path) -> list[dict[str, Any]]:
    out = root / "results" / scenario
    done = suite("server", "--url", server.url, "--scenario", scenario, "-o", str(out), cwd=root)
    files = sorted(out.glob("*/checks.json"))
    assert files, f"{scenario} wrote no results:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return [check for f in files for check in json.loads(f.read_text())]


def failures(checks: list[dict[str, Any]]) -> list[str]:
    return [f"{c['id']}: {c.get('errorMessage') or c.get('status')}" for c in checks
            if c.get("status") == "FAILURE"]


def test_every_scenario_the_suite_lists_is_classified_or_run(scenarios: list[str]) -> None:
    assert set(APPLICABLE) <= set(scenarios), sorted(set(APPLICABLE) - set(scenarios))
    assert not set(APPLICABLE) & set(NOT_APPLICABLE)


@pytest.mark.parametrize("scenario", APPLICABLE)
def test_applicable_server_scenario_passes(server: HttpServer, root: Path, scenario: str) -> None:
    checks = run_scenario(server, scenario, root)
    assert any(c.get("status") == "SUCCESS" for c in checks), checks
    assert not failures(checks)


def test_scenarios_a_newer_suite_adds_pass_until_classified(
    server: HttpServer, root: Path, scenarios: list[str]
) -> None:
    new = [s for s in scenarios if s not in APPLICABLE and s not in NOT_APPLICABLE]
    failed = {s: failures(run_scenario(server, s, root)) for s in new}
    assert not {s: f for s, f in failed.items() if f}


# ---- the handshake versions real clients send ---------------------------------------------------

def rpc(client: httpx.Client, url: str, method: str, params: dict[str, Any] | None, *,
        id: int | None, session: str | None, version: str | None) -> httpx.Response:
    headers = {"Accept": "application/json, text/event-stream"}
    if session:
        headers["mcp-session-id"] = session
    if version:
        headers["mcp-protocol-version"] = version
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        body["params"] = params
    if id is not None:
        body["id"] = id
    return client.post(url, json=body, headers=headers)


def sse_events(text: str) -> list[dict[str, str]]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            name, _, value = line.partition(":")
            fields[name] = fields.get(name, "") + value.removeprefix(" ")
        if fields:
            events.append(fields)
    return events


def result_of(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    events = sse_events(response.text)
    return next(json.loads(e["data"]) for e in events if e.get("data"))["result"]


@pytest.mark.parametrize("version", VERSIONS)
def test_a_client_of_each_handshake_version_gets_completions_and_subscriptions(
    server: HttpServer, version: str
) -> None:
    with httpx.Client(timeout=60) as client:
        hello = rpc(client, server.url, "initialize", {
            "protocolVersion": version, "capabilities": {},
            "clientInfo": {"name": "conformance-handshake", "version": "1"}}, id=1, session=None,
            version=None)
        init = result_of(hello)
        session = hello.headers["mcp-session-id"]
        rpc(client, server.url, "notifications/initialized", None, id=None, session=session,
            version=version)
        completion = result_of(rpc(client, server.url, "completion/complete", {
            "ref": {"type": "ref/resource", "uri": "stats://sessions/{session_id}"},
            "argument": {"name": "session_id", "value": ""}}, id=2, session=session, version=version))
        subscribed = result_of(rpc(client, server.url, "resources/subscribe",
                                   {"uri": "stats://summary"}, id=3, session=session, version=version))
        called = rpc(client, server.url, "tools/call", {"name": "fs_list_allowed_directories",
                                                         "arguments": {}},
                     id=4, session=session, version=version)
    assert init["protocolVersion"] == version
    assert init["capabilities"]["completions"] == {}
    assert init["capabilities"]["resources"]["subscribe"] is True
    assert isinstance(completion["completion"]["values"], list)
    assert subscribed == {}
    first = sse_events(called.text)[0]
    if version >= "2025-11-25":  # SEP-1699: a priming event (id, empty data, retry) comes first
        assert first.get("id") and first.get("data") == "" and first.get("retry") == "1000"
    else:
        assert json.loads(first["data"])["id"] == 4
    assert result_of(called)["isError"] is False

