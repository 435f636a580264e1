"""Per-provider rate limits: token buckets for requests/minute and tokens/minute.

A request reserves its share at once (the level may go negative); the deficit tells how long it
must wait. If that is longer than the provider's `queue_timeout_s`, the reservation is undone and
the caller gets `RateLimited` with the time after which a retry would pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from kimi_mcp.catalog import Provider
from kimi_mcp.errors import RateLimited


@dataclass
class Bucket:
    capacity: float
    per_s: float
    level: float = 0.0
    at: float = 0.0

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.at) * self.per_s)
        self.at = now

    def wait_for(self, amount: float) -> float:
        return 0.0 if self.level >= amount else (amount - self.level) / self.per_s


@dataclass
class _Limits:
    rpm: Bucket | None
    tpm: Bucket | None


@dataclass
class Limiter:
    clock: Callable[[], float] = time.monotonic
    _by_provider: dict[str, _Limits] = field(default_factory=dict)

    def _limits(self, provider: Provider) -> _Limits:
        found = self._by_provider.get(provider.name)
        if found is None:
            now = self.clock()
            found = _Limits(
                Bucket(provider.rpm, provider.rpm / 60, provider.rpm, now) if provider.rpm else None,
                Bucket(provider.tpm, provider.tpm / 60, provider.tpm, now) if provider.tpm else None,
            )
            self._by_provider[provider.name] = found
        return found

    def _wait(self, provider: Provider, tokens: int) -> tuple[float, str]:
        limits = self._limits(provider)
        now = self.clock()
        wait, what = 0.0, ""
        for bucket, amount, name in ((limits.rpm, 1, "rpm"), (limits.tpm, tokens, "tpm")):
            if bucket is None:
                continue
            bucket.refill(now)
            needed = bucket.wait_for(min(amount, bucket.capacity))
            if needed > wait:
                wait, what = needed, name
        return wait, what

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Per provider with limits: `rpm_left`, `rpm_limit`, `tpm_left`, `tpm_limit`."""
        now = self.clock()
        out: dict[str, dict[str, int]] = {}
        for name, limits in self._by_provider.items():
            headroom: dict[str, int] = {}
            for what, bucket in (("rpm", limits.rpm), ("tpm", limits.tpm)):
                if bucket is not None:
                    level = min(bucket.capacity, bucket.level + (now - bucket.at) * bucket.per_s)
                    headroom[f"{what}_left"] = max(0, int(level))
                    headroom[f"{what}_limit"] = int(bucket.capacity)
            if headroom:
                out[name] = headroom
        return out

    def headroom(self, provider: Provider, tokens: int) -> bool:
        """Whether a request would pass within the provider's queue timeout."""
        if not provider.rpm and not provider.tpm:
            return True
        return self._wait(provider, tokens)[0] <= provider.queue_timeout_s

    async def acquire(self, provider: Provider, tokens: int) -> float:
        """Reserve one request and `tokens`; wait if needed. Returns the seconds waited."""
        if not provider.rpm and not provider.tpm:
            return 0.0
        wait, what = self._wait(provider, tokens)
        if wait > provider.queue_timeout_s:
            raise RateLimited(provider.name, wait, what)
        limits = self._limits(provider)
        if limits.rpm is not None:
            limits.rpm.level -= 1
        if limits.tpm is not None:
            limits.tpm.level -= min(tokens, limits.tpm.capacity)
        if wait > 0:
            await anyio.sleep(wait)
        return wait
