"""The upstream call: key injection, dropped fields, retries before the first byte, error mapping.

`open_upstream` returns an `httpx.Response` whose headers have arrived (the body is still
unread), or raises `ProxyError`. `to_proxy_error` is the one place where upstream failures
become OpenAI-shaped errors; nothing it produces carries a key.
"""

from __future__ import annotations

import email.utils
import functools
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from kimi_mcp.catalog import Provider, Resolved
from kimi_mcp.errors import UpstreamError
from kimi_mcp.proxy import gemini

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class ProxyError(UpstreamError):
    """A failure the client receives as an OpenAI-shaped error."""

    def __init__(self, message: str, *, status: int = 502, code: str = "upstream_error",
                 retry_after: float | None = None, retryable: bool = False) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after
        self.retryable = retryable  # the next candidate of the route may succeed


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


@dataclass
class Outgoing:
    url: str
    headers: dict[str, str]
    content: bytes
    strip_usage: bool  # we asked for include_usage; the client did not


def build(resolved: Resolved, body: dict[str, Any], stream: bool) -> Outgoing:
    """The request for the provider: its model id, its key, without the fields it rejects."""
    provider = resolved.provider
    headers = {"content-type": "application/json", **provider.headers}
    if provider.format == "gemini":
        payload = gemini.to_gemini(body)
        verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
        url = f"{provider.base_url}/models/{resolved.model.id}:{verb}"
        if provider.api_key:
            headers["x-goog-api-key"] = provider.api_key
        return Outgoing(url, headers, json.dumps(payload).encode(), False)
    payload = dict(body)
    payload["model"] = resolved.model.id
    strip = False
    if stream and provider.usage_in_stream:
        options = payload.get("stream_options")
        if not (isinstance(options, dict) and options.get("include_usage")):
            payload["stream_options"] = {**(options if isinstance(options, dict) else {}),
                                         "include_usage": True}
            strip = True
    for name in provider.drop_params:
        payload.pop(name, None)
    if "stream_options" not in payload:
        strip = False
    if provider.api_key:
        headers["authorization"] = f"Bearer {provider.api_key}"
    return Outgoing(f"{provider.base_url}/chat/completions", headers,
                    json.dumps(payload, ensure_ascii=False).encode(), strip)


def check_key(provider: Provider) -> None:
    if provider.api_key or not provider.key_env:
        return
    raise ProxyError(
        f"no API key for provider '{provider.name}': set the environment variable "
        f"{provider.key_env} (or providers.{provider.name}.api_key in the config file)",
        status=401, code="missing_api_key", retryable=True,
    )


def timeout_for(provider: Provider) -> httpx.Timeout:
    return _timeout(provider.timeout_s)


@functools.lru_cache(maxsize=64)
def _timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=min(10.0, seconds))


@functools.lru_cache(maxsize=1024)
def _url(url: str) -> httpx.URL:
    return httpx.URL(url)  # parsed once per endpoint, not once per call


async def open_upstream(
    client: httpx.AsyncClient, resolved: Resolved, out: Outgoing, backoff: Backoff,
    on_retry: Callable[[str], None] | None = None,
) -> httpx.Response:
    """Send until the headers arrive with a non-retryable status, retrying what may pass."""
    provider = resolved.provider
    attempts = provider.max_retries + 1
    for attempt in range(attempts):
        request = client.build_request("POST", _url(out.url), headers=out.headers, content=out.content,
                                       timeout=timeout_for(provider))
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            error = to_proxy_error(provider, exc=exc)
            retry_after = None
        else:
            if response.status_code < 400:
                return response
            if response.status_code not in RETRY_STATUSES or attempt == attempts - 1:
                try:
                    await response.aread()
                except httpx.HTTPError as exc:
                    await response.aclose()
                    raise to_proxy_error(provider, exc=exc) from None
                raise to_proxy_error(provider, response=response)
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            await response.aclose()
            error = ProxyError(f"{provider.name} answered HTTP {response.status_code}",
                               status=response.status_code, retryable=True)
        if attempt == attempts - 1:
            raise error
        wait = backoff.delay(attempt, retry_after)
        if on_retry is not None:
            on_retry(f"{error} (retry {attempt + 1} in {wait:.2f}s)")
        await anyio.sleep(wait)
    raise AssertionError("unreachable")


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def to_proxy_error(provider: Provider, *, exc: BaseException | None = None,
                   response: httpx.Response | None = None) -> ProxyError:
    """The one mapping from an upstream failure to what the client sees."""
    name = provider.name
    if response is not None:
        status = response.status_code
        message = _scrub(provider, _provider_message(response))
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if status == 429:
            return ProxyError(f"{name}: {message}", status=429, code="rate_limit_exceeded",
                              retry_after=retry_after, retryable=True)
        if status in (401, 403):
            return ProxyError(f"{name} refused the key ({provider.key_env or 'api_key'}): {message}",
                              status=status, code="upstream_auth_error", retryable=True)
        if status < 500:
            return ProxyError(f"{name}: {message}", status=status, code="upstream_bad_request")
        mapped = 504 if status == 504 else (503 if status == 503 else 502)
        return ProxyError(f"{name} answered HTTP {status}: {message}", status=mapped,
                          retry_after=retry_after, retryable=True)
    if isinstance(exc, httpx.TimeoutException):
        kind = "connecting" if isinstance(exc, httpx.ConnectTimeout) else "waiting for an answer"
        return ProxyError(f"{name} timed out {kind} (timeout_s={provider.timeout_s:g})",
                          status=504, code="upstream_timeout", retryable=True)
    if isinstance(exc, httpx.ConnectError):
        return ProxyError(f"{name} could not be reached at {provider.base_url}",
                          status=502, code="upstream_unreachable", retryable=True)
    detail = type(exc).__name__ if exc is not None else "unknown failure"
    return ProxyError(f"{name} failed: {detail}", status=502, retryable=True)


def _provider_message(response: httpx.Response) -> str:
    try:
        data = json.loads(response.content)
    except ValueError:
        text = response.content[:500].decode("utf-8", "replace").strip()
        return text or f"HTTP {response.status_code}"
    if isinstance(data, list) and data:  # Gemini sometimes wraps the error in a list
        data = data[0]
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail") or error.get("msg")
            if message:
                return str(message)
        elif isinstance(error, str):
            return error
        if isinstance(data.get("detail"), str | list):
            return str(data["detail"])
    return json.dumps(data)[:500]


def _scrub(provider: Provider, text: str) -> str:
    key = provider.api_key
    return text.replace(key, "***") if key else text
