"""Two real `kimi-mcp serve` workers on one PostgreSQL ledger and one Redis, as a team runs them:
a dashboard on one worker sees the calls made through the other live, and a provider's rpm
counts the calls of both. Each worker has its own data dir (spool, logs) and port."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dashboard_harness import FakeProvider, Server, write_config
from websockets.sync.client import connect

from tests.services import postgres_schema, redis_url

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def _config(root: Path, provider_url: str, database: str, redis: str, prefix: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return write_config(root / "kimi-mcp.toml", provider_url, extra=f"""
[providers.limited]
base_url = "{provider_url}"
api_key = "x"
max_retries = 0
rpm = 3
queue_timeout_s = 0

[providers.limited.models."fake-small"]
context_window = 8000

[database]
url = "{database}"

[cluster]
redis_url = "{redis}"
key_prefix = "{prefix}"
""")


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    import redis

    url = redis_url()
    prefix = f"kimi-test-{secrets.token_hex(6)}:"
    base = tmp_path_factory.mktemp("workers")
    with FakeProvider() as fake, postgres_schema() as database:
        servers = []
        try:
            for name in ("a", "b"):  # one after the other: the first creates the schema
                root = base / name
                servers.append(Server(root, _config(root, fake.base_url, database, url, prefix)))
                servers[-1].start()
            yield servers[0], servers[1]
        finally:
            for server in servers:
                server.stop()
            client = redis.Redis.from_url(url)
            keys = list(client.scan_iter(match=prefix + "*"))
            if keys:
                client.delete(*keys)
            client.close()


def test_a_dashboard_on_one_worker_sees_a_call_made_through_the_other_live(workers) -> None:  # type: ignore[no-untyped-def]
    a, b = workers
    session = f"team-{secrets.token_hex(3)}"
    with connect(f"ws://127.0.0.1:{a.port}/ws", open_timeout=30) as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "hello"
        answer = b.chat(321, session=session)
        assert answer.status_code == 200, answer.text
        while True:  # other events (sessions, B's own provider state) may come first
            event = json.loads(ws.recv(timeout=30))
            if event["type"] == "request" and event["data"].get("prompt_tokens") == 321:
                break
    assert event["data"]["provider"] == "fake" and event["data"]["model"] == "fake-small"
    on_a = httpx.get(f"{a.url}/api/requests", params={"limit": 50}, timeout=30).json()
    rows = on_a["items"] if isinstance(on_a, dict) else on_a
    assert any(r.get("prompt_tokens") == 321 for r in rows)


def test_a_providers_rpm_counts_the_calls_of_both_workers(workers) -> None:  # type: ignore[no-untyped-def]
    a, b = workers
    codes = [w.chat(10, model="limited/fake-small").status_code for w in (a, b, a)]
    refused = [w.chat(10, model="limited/fake-small") for w in (b, a)]
    health = [httpx.get(f"{w.url}/health", timeout=30).json() for w in (a, b)]
    assert codes == [200, 200, 200]
    assert [r.status_code for r in refused] == [429, 429], [r.text for r in refused]
    assert all("rpm" in r.json()["error"]["message"] for r in refused)
    assert [h["cluster"] for h in health] == [{"redis": "ok", "shared": True}] * 2
