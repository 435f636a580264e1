"""`Upstream`: the one HTTP client to providers, with retries before the first byte.

    upstream = Upstream(settings.upstream)            # built once by the composition root
    response = await upstream.open(provider, url, headers=h, content=body)
    # the status and headers have arrived, the body is unread; close it with `aclose()`
    await upstream.aclose()                           # at shutdown

`open` retries connect errors, timeouts, 429 and 5xx up to `provider.max_retries` times with
exponential backoff and full jitter, honouring `Retry-After` (capped); it never retries once a
body is being read, so a stream is never replayed after its first byte reached the client.
Every failure is an `UpstreamError` from `to_upstream_error`.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import httpx

from kimi_mcp.catalog import Provider
from kimi_mcp.config import UpstreamSettings
from kimi_mcp.errors import UpstreamError
from kimi_mcp.upstream.errors import retry_after_of, to_upstream_error
from kimi_mcp.upstream.transport import PooledTransport

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass
class Backoff:
    """Exponential backoff with full jitter; `Retry-After` is honoured up to `max_retry_after`."""

    base: float = 0.5
    cap: float = 8.0
    max_retry_after: float = 30.0
    rand: Callable[[], float] = random.random

    def delay(self, attempt: int, retry_after: float | None) -> float:
        jitter = float(self.rand() * min(self.cap, self.base * 2.0 ** attempt))
        if retry_after is not None:
            return max(jitter, min(float(retry_after), self.max_retry_after))
        return jitter


@functools.lru_cache(maxsize=64)
def _timeout(seconds: float) -> dict[str, float | None]:
    """The request's `timeout` extension (httpx's transport API), read-only by transports."""
    return httpx.Timeout(seconds, connect=min(10.0, seconds)).as_dict()


@functools.lru_cache(maxsize=1024)
def _url(url: str) -> httpx.URL:
    return httpx.URL(url)  # parsed once per endpoint, not once per call


class _Again(Exception):
    """This attempt failed in a way the same provider may not repeat: wait and send again."""

    def __init__(self, error: UpstreamError) -> None:
        super().__init__(str(error))
        self.error = error


class Upstream:
    """Owns the one connection pool to providers (`PooledTransport`); `transport` is the tests'
    seam (`httpx.MockTransport`).

    Requests go straight to the transport, through httpx's public transport API: an
    `httpx.AsyncClient` on top cost about an eighth of the proxy's CPU per call (URL
    merging, cookies, auth and redirect machinery) for features a relay must not use.
    """

    def __init__(self, settings: UpstreamSettings, *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 backoff: Backoff | None = None) -> None:
        self._settings = settings
        self._given = transport
        self._transport: httpx.AsyncBaseTransport | None = None
        self.backoff = backoff or Backoff()

    @property
    def transport(self) -> httpx.AsyncBaseTransport:
        """The pool, created on first use inside the event loop that serves the calls."""
        if self._transport is None:
            self._transport = self._given or PooledTransport(self._settings)
        return self._transport

    async def aclose(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.aclose()

    async def open(self, provider: Provider, url: str, *, headers: dict[str, str],
                   content: bytes, on_retry: Callable[[str], None] | None = None) -> httpx.Response:
        """POST until the headers arrive with a status below 400 or a failure that must stand."""
        attempts = provider.max_retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                return await self._attempt(provider, url, headers, content, last)
            except _Again as again:
                error = again.error
                wait = self.backoff.delay(attempt, error.retry_after)
                if on_retry is not None:
                    on_retry(f"{error} (retry {attempt + 1} in {wait:.2f}s)")
                await anyio.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _attempt(self, provider: Provider, url: str, headers: dict[str, str],
                       content: bytes, last: bool) -> httpx.Response:
        request = httpx.Request("POST", _url(url), headers=headers, content=content,
                                extensions={"timeout": _timeout(provider.timeout_s)})
        try:
            response = await self.transport.handle_async_request(request)
            response.request = request
        except httpx.HTTPError as exc:
            error = to_upstream_error(provider, exc=exc)
            if last:
                raise error from None
            raise _Again(error) from None
        if response.status_code < 400:
            return response
        if response.status_code in RETRY_STATUSES and not last:
            retry_after = retry_after_of(response.headers)
            await response.aclose()
            raise _Again(UpstreamError(f"{provider.name} answered HTTP {response.status_code}",
                                       status=response.status_code, retry_after=retry_after,
                                       retryable=True))
        try:
            await response.aread()
        except httpx.HTTPError as exc:
            raise to_upstream_error(provider, exc=exc) from None
        finally:
            await response.aclose()
        raise to_upstream_error(provider, response=response)
