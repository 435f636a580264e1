"""`kill -9` of a real `kimi-mcp serve` while clients are proxying through it: after a restart,
every call whose whole answer a client received (plain or streamed) has its ledger row. Calls are
told apart by a header of their own (`x-call-id`), which the row keeps among its headers."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import pytest
from dashboard_harness import FakeProvider, Server, write_config
from sqlmodel import select

from kimi_mcp.ledger import Ledger
from kimi_mcp.ledger.models import Request
from tests.services import database

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CLIENTS = 8
KILL_AFTER = 240  # acknowledged calls before the kill; the clients keep calling meanwhile


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    with database(str(request.param), tmp_path / "data") as url:
        yield url


def _client(server: Server, worker: int, acknowledged: list[str], enough: threading.Event,
            stop: threading.Event) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for n in range(10_000):
            if stop.is_set():
                return
            call = f"{worker}-{n}"
            body = {"model": "fake/fake-small", "stream": n % 2 == 1,
                    "messages": [{"role": "user", "content": f"PROMPT={n + 1} call {call}"}]}
            try:
                with http.stream("POST", "/v1/chat/completions", json=body,
                                 headers={"x-call-id": call}) as reply:
                    raw = reply.read()
            except httpx.HTTPError:
                return  # the server is gone: this call was never acknowledged
            if reply.status_code != 200 or not _complete(raw, streamed=bool(body["stream"])):
                continue
            acknowledged.append(call)
            if len(acknowledged) >= KILL_AFTER:
                enough.set()


def _complete(raw: bytes, streamed: bool) -> bool:
    if streamed:
        return raw.rstrip().endswith(b"data: [DONE]")
    try:
        return bool(json.loads(raw)["choices"])
    except (ValueError, KeyError):
        return False


def test_every_answer_a_client_received_has_its_row_after_a_kill_9(
        tmp_path: Path, ledger_url: str) -> None:
    with FakeProvider() as fake:
        config = write_config(tmp_path / "kimi-mcp.toml", fake.base_url,
                              extra=f'[database]\nurl = "{ledger_url}"\n')
        server = Server(tmp_path, config).start()
        acknowledged: list[str] = []
        enough, stop = threading.Event(), threading.Event()
        clients = [threading.Thread(target=_client, args=(server, i, acknowledged, enough, stop))
                   for i in range(CLIENTS)]
        try:
            for thread in clients:
                thread.start()
            assert enough.wait(180), f"only {len(acknowledged)} calls answered"
            assert server.proc is not None
            server.proc.kill()  # SIGKILL, with calls in flight
            server.proc.wait(30)
            stop.set()
            for thread in clients:
                thread.join(60)
            server.proc = None
            server.start()  # replays the killed process's spool
        finally:
            stop.set()
            server.stop()
    ledger = Ledger(ledger_url, spool_dir=tmp_path / "data" / "spool")
    ledger.start()
    ledger.flush()
    try:
        with ledger.read() as db:
            rows = db.exec(select(Request)).all()
    finally:
        ledger.close()
    recorded = [(r.meta or {}).get("headers", {}).get("x-call-id") for r in rows]
    missing = set(acknowledged) - set(recorded)
    assert len(acknowledged) >= KILL_AFTER
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged calls have no row"
    assert len(recorded) == len(set(recorded))  # and none is counted twice
