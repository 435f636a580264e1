"""`[cluster] redis_url`: two workers (two apps in one process here, over one ledger) share rpm/tpm
limits and circuit breakers through the real Redis on the loopback; without it, or while Redis is
unreachable, each worker keeps its own. tests/core/test_serve_workers.py runs real processes."""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest

from kimi_mcp.app import create_app
from kimi_mcp.deps import Deps
from kimi_mcp.ledger import Event
from tests.services import redis_url

pytestmark = pytest.mark.anyio

KEY = "sk-mock-secret-abcdef"
ANSWER = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                       "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}
MESSAGES = [{"role": "user", "content": "hi"}]


def providers(**limits: Any) -> dict[str, Any]:
    return {"b": {"base_url": "http://b.test/v1", "api_key": KEY, "max_retries": 0,
                  "queue_timeout_s": 0, **limits,
                  "models": {"cheap": {"context_window": 100_000, "input_per_mtok": 0.1,
                                       "output_per_mtok": 0.1}}}}


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of the test's own on the shared Redis, removed afterwards."""
    import redis

    url = redis_url()
    prefix = f"kimi-test-{secrets.token_hex(6)}:"
    yield prefix
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


Answer = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def workers(make_deps: Callable[..., Deps]) -> Callable[..., Any]:
    """`async with workers(n, answer, **settings) as (clients, deps)`: n apps over one ledger."""

    @contextlib.asynccontextmanager
    async def run(count: int, answer: Answer | None = None,
                  **overrides: Any) -> AsyncIterator[tuple[list[httpx.AsyncClient], list[Deps]]]:
        overrides.setdefault("providers", providers())
        reply = answer or (lambda request: httpx.Response(200, json=ANSWER))
        all_deps = [make_deps(**overrides) for _ in range(count)]
        apps = [create_app(d.settings, d, upstream_transport=httpx.MockTransport(reply))
                for d in all_deps]
        async with contextlib.AsyncExitStack() as stack:
            clients = []
            for app in apps:
                await stack.enter_async_context(app.router.lifespan_context(app))
                clients.append(await stack.enter_async_context(httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765")))
            yield clients, all_deps

    return run


async def chat(client: httpx.AsyncClient, **extra: Any) -> httpx.Response:
    return await client.post("/v1/chat/completions",
                             json={"model": "b/cheap", "messages": MESSAGES, **extra})


async def test_two_workers_on_one_redis_share_a_providers_rpm(workers, redis_prefix: str) -> None:  # type: ignore[no-untyped-def]
    cluster = {"redis_url": redis_url(), "key_prefix": redis_prefix}
    async with workers(2, cluster=cluster, providers=providers(rpm=3)) as ((a, b), _):
        codes = [(await chat(client)).status_code for client in (a, b, a)]
        refused = await chat(b)
        again = await chat(a)
        shown = (await b.get("/api/providers")).json()
        health = (await a.get("/health")).json()
        scraped = (await b.get("/metrics")).text
    assert codes == [200, 200, 200]
    assert refused.status_code == 429 and again.status_code == 429
    assert "rpm" in refused.json()["error"]["message"]
    assert int(refused.headers["retry-after"]) >= 19  # a third of a minute refills one request
    provider = next(p for p in shown if p["name"] == "b")
    assert provider["rate_limit"]["rpm_left"] == 0  # the other worker's use is mirrored here
    assert health["cluster"] == {"redis": "ok", "shared": True}
    assert "kimi_cluster_shared 1.0" in scraped


async def test_two_workers_on_one_redis_share_a_providers_tpm(workers, redis_prefix: str) -> None:  # type: ignore[no-untyped-def]
    cluster = {"redis_url": redis_url(), "key_prefix": redis_prefix}
    async with workers(2, cluster=cluster, providers=providers(tpm=1000)) as ((a, b), _):
        first = await chat(a, max_tokens=600)
        second = await chat(b, max_tokens=600)
    assert first.status_code == 200
    assert second.status_code == 429 and "tpm" in second.json()["error"]["message"]


async def test_without_redis_each_worker_keeps_its_own_limits(workers) -> None:  # type: ignore[no-untyped-def]
    async with workers(2, providers=providers(rpm=1)) as ((a, b), _):
        codes = [(await chat(client)).status_code for client in (a, b, a, b)]
        health = (await a.get("/health")).json()
    assert codes == [200, 200, 429, 429]
    assert health["cluster"] == {"redis": "off", "shared": False}


async def test_an_unreachable_redis_degrades_to_per_worker_limits_with_one_warning(
        workers, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.WARNING, logger="kimi_mcp.proxy.cluster")
    cluster = {"redis_url": "redis://:hunter2@127.0.0.1:1/0"}  # nothing listens on port 1
    async with workers(1, cluster=cluster, providers=providers(rpm=2)) as ((a,), _):
        codes = [(await chat(a)).status_code for _ in range(3)]
        health = (await a.get("/health")).json()
        scraped = (await a.get("/metrics")).text
    assert codes == [200, 200, 429]  # served, and still limited: by this worker alone
    assert health["cluster"] == {"redis": "unreachable", "shared": False}
    assert "kimi_cluster_shared 0.0" in scraped
    warnings = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1 and "per worker" in warnings[0]
    assert "hunter2" not in caplog.text and "127.0.0.1:1" in warnings[0]


async def test_a_breaker_opened_through_one_worker_is_open_on_the_other(
        workers, redis_prefix: str) -> None:  # type: ignore[no-untyped-def]
    def failing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": {"message": "overloaded"}})

    cluster = {"redis_url": redis_url(), "key_prefix": redis_prefix}
    routing = {"breaker_failures": 2, "aliases": {"x": {"models": ["b/cheap"]}}}
    async with workers(2, failing, cluster=cluster, routing=routing) as ((a, b), (_, deps_b)):
        opened = anyio.Event()

        def on_event(event: Event) -> None:
            if event.type == "provider" and event.data.get("breaker") == "open":
                opened.set()

        deps_b.ledger.bus.on_event(on_event)
        codes = [(await a.post("/v1/chat/completions",
                               json={"model": "x", "messages": MESSAGES})).status_code
                 for _ in range(2)]
        with anyio.fail_after(10):
            await opened.wait()
        on_b = await b.post("/v1/chat/completions", json={"model": "x", "messages": MESSAGES})
    assert codes == [503, 503]  # the provider's own 503, passed on
    assert on_b.status_code == 503 and "circuit open" in on_b.json()["error"]["message"]


class Gate:
    """A TCP relay to the real Redis that can be cut (every connection closed, new ones refused
    at once) and restored, as a Redis restart or a network cut looks to the workers."""

    def __init__(self, target: str) -> None:
        hostport = target.split("://", 1)[1].split("/", 1)[0]
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)
        self.open = True
        self.streams: list[Any] = []

    async def serve(self, listener: Any) -> None:
        await listener.serve(self._relay)

    async def _relay(self, client: Any) -> None:
        if not self.open:
            await client.aclose()
            return
        async with client, await anyio.connect_tcp(self.host, self.port) as server:
            self.streams += [client, server]
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._pipe, client, server)
                tasks.start_soon(self._pipe, server, client)

    @staticmethod
    async def _pipe(source: Any, sink: Any) -> None:
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError,
                                 anyio.ClosedResourceError, OSError):
            async for chunk in source:
                await sink.send(chunk)
        with contextlib.suppress(Exception):
            await sink.aclose()

    async def cut(self) -> None:
        self.open = False
        for stream in self.streams:
            with contextlib.suppress(Exception):
                await stream.aclose()
        self.streams.clear()


async def test_limits_are_shared_again_once_redis_answers_after_an_outage(
        workers, redis_prefix: str, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from kimi_mcp.proxy import cluster as cluster_module

    monkeypatch.setattr(cluster_module, "RETRY_S", 0.0)  # probe Redis on every call
    caplog.set_level(logging.WARNING, logger="kimi_mcp.proxy.cluster")
    gate = Gate(redis_url())
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener, \
            anyio.create_task_group() as relay:
        relay.start_soon(gate.serve, listener)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        cluster = {"redis_url": f"redis://127.0.0.1:{port}/0", "key_prefix": redis_prefix}
        async with workers(2, cluster=cluster, providers=providers(rpm=4)) as ((a, b), _):
            shared = await chat(a)  # the team's bucket: 3 left
            await gate.cut()
            alone = [(await chat(a)).status_code for _ in range(2)]  # A counts alone: 1 left
            during = (await a.get("/health")).json()["cluster"]
            gate.open = True
            after = [(await chat(b)).status_code for _ in range(3)]  # the team's last three
            refused = await chat(a)  # shared again: the team's bucket is empty, A's was not
            health = (await a.get("/health")).json()["cluster"]
        relay.cancel_scope.cancel()
    assert (shared.status_code, alone, after) == (200, [200, 200], [200, 200, 200])
    assert refused.status_code == 429
    assert during == {"redis": "unreachable", "shared": False}
    assert health == {"redis": "ok", "shared": True}
    messages = [r.getMessage() for r in caplog.records]
    assert 1 <= sum("unreachable" in m for m in messages) <= 2  # once per worker, not per call
    assert 1 <= sum("shared again" in m for m in messages) <= 2


async def test_concurrent_calls_on_two_workers_pass_exactly_the_shared_rpm(
        workers, redis_prefix: str) -> None:  # type: ignore[no-untyped-def]
    cluster = {"redis_url": redis_url(), "key_prefix": redis_prefix}
    codes: list[int] = []
    async with workers(2, cluster=cluster, providers=providers(rpm=10)) as ((a, b), _):

        async def call(client: httpx.AsyncClient) -> None:
            codes.append((await chat(client)).status_code)

        started = time.monotonic()
        async with anyio.create_task_group() as tasks:
            for i in range(40):
                tasks.start_soon(call, (a, b)[i % 2])
        elapsed = time.monotonic() - started
    # the shared bucket holds 10 and refills one every 6 s: on a loaded machine a burst that
    # takes longer than that may rightly pass one more (per-worker buckets would pass 20)
    passed = codes.count(200)
    assert codes.count(429) == 40 - passed, codes
    assert 10 <= passed <= 10 + int(elapsed / 6), (passed, elapsed)
