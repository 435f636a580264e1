"""`kimi-mcp stdio` as a real subprocess: a client subscribed to `stats://` resources hears of
rows another kimi-mcp process wrote to the same ledger (a proxy call through `kimi-mcp serve`,
another stdio server), on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import queue
import threading
from pathlib import Path
from typing import Any

import pytest

from kimi_mcp.ledger import Ledger, RequestRow, ToolCallRow
from tests.core.test_stdio_ledger import Stdio
from tests.services import BACKENDS, database

WAIT_S = 15  # a bound for a broken build, not a measured delay


def _updated(client: Stdio, uri: str) -> bool:
    """Whether `uri` is notified before the next reply (a ping sent after the bound)."""
    assert client.proc.stdout is not None
    got: queue.Queue[dict[str, Any]] = queue.Queue()

    def read() -> None:
        assert client.proc.stdout is not None
        while line := client.proc.stdout.readline():
            message = json.loads(line)
            got.put(message)
            if message.get("id") == "bound":
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    found = False
    try:
        while not found:
            message = got.get(timeout=WAIT_S)
            found = (message.get("method") == "notifications/resources/updated"
                     and message["params"]["uri"] == uri)
    except queue.Empty:
        pass
    client.send({"jsonrpc": "2.0", "id": "bound", "method": "ping"})
    reader.join(WAIT_S)  # the reader stops at the ping's reply: stdout is the caller's again
    return found


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_stdio_subscriber_hears_of_rows_another_process_wrote(tmp_path: Path,
                                                                  backend: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with database(backend, data) as url:
        schema = Ledger(url)
        schema.start()  # the schema exists before either process writes, as under serve
        schema.close()
        client = Stdio(tmp_path, KIMI_MCP_DATABASE__URL=url)
        other = Ledger(url, spool_dir=tmp_path / "other-spool")
        try:
            client.start()
            reply = client.call("resources/subscribe", {"uri": "stats://summary"})
            assert "result" in reply, reply
            other.start()
            other.append(RequestRow(provider="kimi", model="m", prompt_tokens=4))
            other.flush()
            assert _updated(client, "stats://summary")

            reply = client.call("resources/subscribe", {"uri": "stats://tools"})
            assert "result" in reply, reply
            other.append(ToolCallRow(tool="fs_read_file", family="fs", result_tokens=3))
            other.flush()
            assert _updated(client, "stats://tools")
        finally:
            other.close()
            assert client.proc.stdin is not None
            client.proc.stdin.close()
            client.finish()
