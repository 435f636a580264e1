"""Rate limits and circuit breakers shared by every `serve` worker through Redis (`[cluster]`).

Without `cluster.redis_url` each worker keeps its own token buckets and breakers (`limits.py`,
`resolve.py`). With it:

1. **Rate limits.** One token bucket per provider and kind (`rpm`, `tpm`) lives in a Redis hash
   (`<prefix>bucket:<provider>:<kind>`: level and time). One Lua script refills both of a
   provider's buckets by Redis's own clock, checks the wait against `queue_timeout_s` and
   reserves both or neither — atomic across workers, one round trip per call. The local buckets
   mirror the shared levels, so routing's headroom checks and the dashboard see the team's use.
2. **Circuit breakers.** Every outcome of a call to a model is counted in
   `<prefix>breaker:<provider/model>` by a second script (consecutive failures from any worker
   open it; a failed half-open trial reopens it; a success closes it). State changes are
   published on `<prefix>breakers`; each worker applies them to its router, which still decides
   half-open trials by the shared opening time. Outcomes are sent by a background task: the
   request path never waits for Redis to count a breaker.
3. **Outages degrade, never fail a call.** A Redis error (refused, timed out, evicted script)
   logs one warning and the worker falls back to its own buckets and breakers (the levels last
   mirrored); it tries Redis again after `RETRY_S` and logs when it is shared again. `/health`
   says which: `cluster.redis` is `off`, `ok` or `unreachable`.

The approach follows LiteLLM's Redis-backed limiter (a Lua script per check, Redis as the one
clock) with a token bucket instead of its fixed windows, so a shared limit behaves exactly as
the local one does (`limits.py`).
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import anyio
import redis.asyncio as aioredis
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from redis.exceptions import RedisError

from kimi_mcp.catalog import Provider
from kimi_mcp.config import ClusterSettings
from kimi_mcp.errors import RateLimited
from kimi_mcp.proxy.limits import Limiter

log = logging.getLogger(__name__)

RETRY_S = 5.0  # after a Redis failure, the next attempt to share again
TIMEOUT_S = 1.0  # connect and read timeout of one Redis command
FOLLOW_POLL_S = 0.5  # how long one read of the breaker channel waits (under TIMEOUT_S)
OUTCOMES_BUFFER = 4096  # breaker outcomes waiting to be counted; more are counted locally only
# what a Redis outage raises: redis-py's errors, and the OS's for a socket that went away
UNREACHABLE = (RedisError, OSError, TimeoutError)

_BUCKETS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local timeout, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local wait, which, levels = 0, 0, {}
for i = 1, #KEYS do
  local cap, rate, amount = tonumber(ARGV[i*3]), tonumber(ARGV[i*3+1]), tonumber(ARGV[i*3+2])
  local saved = redis.call('HMGET', KEYS[i], 'level', 'at')
  local level = tonumber(saved[1]) or cap
  local at = tonumber(saved[2]) or now
  level = math.min(cap, level + math.max(0, now - at) * rate)
  levels[i] = level
  if level < amount and (amount - level) / rate > wait then
    wait, which = (amount - level) / rate, i
  end
end
local ok = 0
if wait <= timeout then
  ok = 1
  for i = 1, #KEYS do
    levels[i] = levels[i] - tonumber(ARGV[i*3+2])
    redis.call('HSET', KEYS[i], 'level', tostring(levels[i]), 'at', tostring(now))
    redis.call('EXPIRE', KEYS[i], ttl)
  end
end
local out = {ok, tostring(wait), which}
for i = 1, #KEYS do out[#out + 1] = tostring(levels[i]) end
return out
"""

_BREAKER = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local saved = redis.call('HMGET', KEYS[1], 'state', 'failures', 'opened_at')
local state = saved[1] or 'closed'
local failures = tonumber(saved[2]) or 0
local opened = tonumber(saved[3]) or 0
local changed = 0
if ARGV[1] == '1' then
  failures = 0
  if state ~= 'closed' then state, changed = 'closed', 1 end
else
  failures = failures + 1
  if state == 'open' then
    if now - opened >= tonumber(ARGV[3]) then opened, changed = now, 1 end
  elseif failures >= tonumber(ARGV[2]) then
    state, opened, changed = 'open', now, 1
  end
end
redis.call('HSET', KEYS[1], 'state', state, 'failures', failures, 'opened_at', tostring(opened))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return {state, failures, tostring(now - opened), changed}
"""


def connect(settings: ClusterSettings) -> Cluster | None:
    """The Redis client of `[cluster] redis_url`, or None when it is empty. Nothing connects
    until the first command; the composition root calls this once."""
    if not settings.redis_url:
        return None
    client = aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=TIMEOUT_S,
                                     socket_timeout=TIMEOUT_S, health_check_interval=30)
    parts = urlsplit(settings.redis_url)
    where = f"{parts.hostname or 'localhost'}:{parts.port or 6379}"  # never the password
    return Cluster(client, settings.key_prefix, where)


@dataclass
class Cluster:
    """The shared Redis, and whether this worker is using it right now."""

    client: aioredis.Redis
    prefix: str
    where: str
    clock: Callable[[], float] = time.monotonic
    worker: str = field(default_factory=lambda: uuid.uuid4().hex)
    _down_since: float | None = None
    _retry_at: float = 0.0

    def usable(self) -> bool:
        """True while Redis answers; during an outage, True once per `RETRY_S` (one probe)."""
        if self._down_since is None:
            return True
        now = self.clock()
        if now < self._retry_at:
            return False
        self._retry_at = now + RETRY_S
        return True

    def failed(self, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = self.clock()
            log.warning("Redis at %s is unreachable (%s): rate limits and circuit breakers are "
                        "per worker until it answers again", self.where, type(exc).__name__)
        self._retry_at = self.clock() + RETRY_S

    def answered(self) -> None:
        if self._down_since is not None:
            log.warning("Redis at %s answers again after %.0f s: rate limits and circuit breakers "
                        "are shared again", self.where, self.clock() - self._down_since)
            self._down_since = None

    def state(self) -> dict[str, Any]:
        """For `/health`: `{"redis": "ok" | "unreachable", "shared": bool}`."""
        up = self._down_since is None
        return {"redis": "ok" if up else "unreachable", "shared": up}

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def aclose(self) -> None:
        await self.client.aclose()


@dataclass
class SharedLimiter(Limiter):
    """`Limiter` whose buckets live in Redis; its own buckets mirror them and stand in for
    them while Redis is unreachable."""

    cluster: Cluster = field(kw_only=True)

    def __post_init__(self) -> None:
        self._script = self.cluster.client.register_script(_BUCKETS)

    async def acquire(self, provider: Provider, tokens: int) -> float:
        """As `Limiter.acquire`, counted across every worker (see the module docstring)."""
        cluster = self.cluster
        if (not provider.rpm and not provider.tpm) or not cluster.usable():
            return await super().acquire(provider, tokens)
        try:
            ok, wait, what = await self._shared(cluster, provider, tokens)
        except UNREACHABLE as exc:
            cluster.failed(exc)
            return await super().acquire(provider, tokens)
        cluster.answered()
        if not ok:
            raise RateLimited(provider.name, wait, what)
        if wait > 0:
            await anyio.sleep(wait)
        return wait

    async def _shared(self, cluster: Cluster, provider: Provider,
                      tokens: int) -> tuple[bool, float, str]:
        limits = self._limits(provider)
        kinds = [(name, bucket, amount) for name, bucket, amount in
                 (("rpm", limits.rpm, 1), ("tpm", limits.tpm, tokens)) if bucket is not None]
        keys = [cluster.key("bucket", provider.name, name) for name, _, _ in kinds]
        refill_s = max(bucket.capacity / bucket.per_s for _, bucket, _ in kinds)
        args: list[float | int] = [provider.queue_timeout_s,
                                   math.ceil(refill_s + provider.queue_timeout_s + 60)]
        for _, bucket, amount in kinds:
            args += [bucket.capacity, bucket.per_s, min(amount, bucket.capacity)]
        reply = await self._script(keys=keys, args=args)
        now = self.clock()
        for (_, bucket, _), level in zip(kinds, reply[3:], strict=True):
            bucket.level, bucket.at = float(level), now
        which = int(reply[2])
        return bool(int(reply[0])), float(reply[1]), kinds[which - 1][0] if which else ""


@dataclass
class Outcome:
    ref: str
    ok: bool


class BreakerTarget(Protocol):
    """What the shared breakers update: the router's own (`resolve.Router.apply`)."""

    def apply(self, ref: str, state: str, failures: int, age_s: float) -> None:
        """Take the shared state of `ref`: opened `age_s` seconds ago when `state` is open."""
        ...


@dataclass
class SharedBreakers:
    """Counts every call's outcome in Redis and applies the shared states to `target`."""

    cluster: Cluster
    failures_to_open: int
    cooldown_s: float
    target: BreakerTarget | None = None
    _send: MemoryObjectSendStream[Outcome] | None = None
    _receive: MemoryObjectReceiveStream[Outcome] | None = None

    def __post_init__(self) -> None:
        self._script = self.cluster.client.register_script(_BREAKER)
        self._send, self._receive = anyio.create_memory_object_stream[Outcome](OUTCOMES_BUFFER)

    @property
    def channel(self) -> str:
        return self.cluster.key("breakers")

    def record(self, ref: str, ok: bool) -> None:
        """Queue one outcome (never blocks; when the queue is full it counts locally only)."""
        assert self._send is not None
        try:
            self._send.send_nowait(Outcome(ref, ok))
        except anyio.WouldBlock:
            log.debug("breaker outcomes are queued faster than Redis counts them")
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass  # the app is shutting down: the router has counted it locally

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Count outcomes and follow other workers' changes while the app serves."""
        assert self._send is not None and self._receive is not None
        async with self._send, self._receive, anyio.create_task_group() as tasks:
            tasks.start_soon(self._count)
            tasks.start_soon(self._follow)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()

    async def _count(self) -> None:
        assert self._receive is not None
        async for outcome in self._receive:
            if not self.cluster.usable():
                continue
            try:
                state, failures, age, changed = await self._script(
                    keys=[self.cluster.key("breaker", outcome.ref)],
                    args=[1 if outcome.ok else 0, self.failures_to_open, self.cooldown_s,
                          math.ceil(max(3600.0, self.cooldown_s * 4))])
                state = _text(state)
                if int(changed):
                    await self.cluster.client.publish(self.channel, json.dumps({
                        "ref": outcome.ref, "state": state, "failures": int(failures),
                        "age_s": float(age), "worker": self.cluster.worker}))
            except UNREACHABLE as exc:
                self.cluster.failed(exc)
                continue
            self.cluster.answered()
            if self.target is not None:
                self.target.apply(outcome.ref, state, int(failures), float(age))

    async def _follow(self) -> None:
        while True:
            try:
                async with self.cluster.client.pubsub(ignore_subscribe_messages=True) as sub:
                    await sub.subscribe(self.channel)
                    self.cluster.answered()
                    while True:  # not listen(): its blocking read would hit the socket timeout
                        message = await sub.get_message(ignore_subscribe_messages=True,
                                                        timeout=FOLLOW_POLL_S)
                        if message is not None:
                            self._changed(message)
            except UNREACHABLE as exc:
                self.cluster.failed(exc)
            await anyio.sleep(max(RETRY_S, FOLLOW_POLL_S))

    def _changed(self, message: dict[str, Any]) -> None:
        try:
            data = json.loads(message["data"])
            if data["worker"] == self.cluster.worker or self.target is None:
                return
            self.target.apply(str(data["ref"]), str(data["state"]), int(data["failures"]),
                              float(data["age_s"]))
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed breaker change on %s", self.channel)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@asynccontextmanager
async def running(cluster: Cluster | None, breakers: SharedBreakers | None) -> AsyncIterator[None]:
    """The cluster's background work for the app's lifespan; closes the client at the end."""
    if cluster is None:
        yield
        return
    try:
        if breakers is None:
            yield
        else:
            async with breakers.running():
                yield
    finally:
        with anyio.CancelScope(shield=True):
            await cluster.aclose()
