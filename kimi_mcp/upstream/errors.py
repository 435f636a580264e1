"""The one mapping from every upstream failure to the `UpstreamError` a client sees.

Statuses follow what an OpenAI client expects to retry on: 429 stays 429, a provider's 5xx is a
502 (503 and 504 kept), a timeout is 504, an unreachable provider 502; 4xx answers keep their
status so the client can fix its request. Nothing produced here carries a key: every provider
message is scrubbed of the provider's key (and of anything that looks like a bearer token).
"""

from __future__ import annotations

import email.utils
import functools
import json
import re
import time
from collections.abc import Mapping
from typing import Any

import httpx

from kimi_mcp.catalog import Provider
from kimi_mcp.errors import UpstreamError

# what a key looks like when a provider echoes one we did not configure (another header's)
_TOKEN = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{12,}|\b(sk|nvapi|gsk|csk|AIza)[A-Za-z0-9_-]{12,}")


MESSAGE_CHARS = 500  # of a provider's error text, kept in what the client is told
_BODY_BYTES = 65536  # of an error body, read for its message (scrubbed before any cut)


def scrub(provider: Provider, text: str) -> str:
    """`text` without the provider's key — as itself or JSON-escaped, at any depth of
    escaping (`scrub_bytes`) — or anything shaped like a bearer token. Cut text only after
    scrubbing it: a key cut in two is no longer recognised."""
    key = provider.api_key
    if key:
        text = text.replace(key, "***")
        if "\\" in text:
            data = text.encode("utf-8", "surrogatepass")
            text = scrub_bytes(provider, data).decode("utf-8", "surrogatepass")
    return _TOKEN.sub(lambda m: (m.group(1) or "") + "***", text)


def scrub_error(provider: Provider, error: UpstreamError) -> UpstreamError:
    """`error` with its message scrubbed (`scrub`); status, code and retry hints kept."""
    text = str(error)
    clean = scrub(provider, text)
    if clean == text:
        return error
    return UpstreamError(clean, status=error.status, code=error.code,
                         retry_after=error.retry_after, retryable=error.retryable,
                         answer=error.answer)


@functools.lru_cache(maxsize=64)
def _key_forms(key: str) -> re.Pattern[bytes]:
    """The key as it may appear in raw JSON bytes: every character as itself or escaped
    (`\\uXXXX` in either case, `\\/` for a slash), in any mix (RFC 8259 §7), with any number
    of backslashes (JSON text inside a JSON string, as an error echoing a request does)."""
    parts = []
    for char in key:
        forms = [re.escape(char.encode())]
        code = f"{ord(char):04x}"
        forms.append(b"\\\\+u" + b"".join(b"[%s%s]" % (c.lower().encode(), c.upper().encode())
                                           for c in code))
        if char == "/":
            forms.append(rb"\\+/")
        parts.append(b"(?:" + b"|".join(forms) + b")")
    return re.compile(b"".join(parts))


def scrub_bytes(provider: Provider, data: bytes) -> bytes:
    """Raw bytes of an answer (a streamed event) without the provider's key, however the
    provider escaped it; everything else is left byte for byte."""
    key = provider.api_key
    if not key or (key.encode() not in data and b"\\u" not in data and b"\\/" not in data):
        return data
    return _key_forms(key).sub(b"***", data)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
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


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?"
                       r"(?:(\d+(?:\.\d+)?)ms)?")


def retry_after_of(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, in the forms providers send: `retry-after-ms` (OpenAI-style),
    `Retry-After` (seconds or an HTTP-date: Groq, Mistral, Moonshot...), else the token
    window's reset, `x-ratelimit-reset-tokens` as seconds or a duration like `7.66s`, `1m2s`
    (Groq, OpenAI) or `x-ratelimit-reset-tokens-minute` in seconds (Cerebras)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    found = parse_retry_after(headers.get("retry-after"))
    if found is not None:
        return found
    reset = (headers.get("x-ratelimit-reset-tokens")
             or headers.get("x-ratelimit-reset-tokens-minute") or "").strip()
    if not reset:
        return None
    try:
        return max(0.0, float(reset))
    except ValueError:
        pass
    match = _DURATION.fullmatch(reset)
    if match is None or not any(match.groups()):
        return None
    h, m, sec, ms = (float(g) if g else 0.0 for g in match.groups())
    return h * 3600 + m * 60 + sec + ms / 1000


def to_upstream_error(provider: Provider, *, exc: BaseException | None = None,
                      response: httpx.Response | None = None) -> UpstreamError:
    """What the client is told about a failed call to `provider` (an answer read, or an error)."""
    name = provider.name
    if response is not None:
        error = _answered(provider, response)
        error.answer = _json_object(response)
        return error
    if isinstance(exc, httpx.TimeoutException):
        kind = "connecting" if isinstance(exc, httpx.ConnectTimeout) else "waiting for an answer"
        return UpstreamError(f"{name} timed out {kind} (timeout_s={provider.timeout_s:g})",
                             status=504, code="upstream_timeout", retryable=True)
    if isinstance(exc, httpx.ConnectError):
        return UpstreamError(f"{name} could not be reached at {provider.base_url}",
                             status=502, code="upstream_unreachable", retryable=True)
    if isinstance(exc, httpx.HTTPError):
        return UpstreamError(f"{name} broke the connection: {scrub(provider, str(exc))[:300]}",
                             status=502, retryable=True)
    detail = type(exc).__name__ if exc is not None else "unknown failure"
    return UpstreamError(f"{name} failed: {detail}", status=502, retryable=True)


def _answered(provider: Provider, response: httpx.Response) -> UpstreamError:
    name = provider.name
    status = response.status_code
    message = scrub(provider, provider_message(response))[:MESSAGE_CHARS]
    retry_after = retry_after_of(response.headers)
    if status == 429:
        return UpstreamError(f"{name}: {message}", status=429, code="rate_limit_exceeded",
                             retry_after=retry_after, retryable=True)
    if status in (401, 403):
        return UpstreamError(
            f"{name} refused the key ({provider.key_env or 'api_key'}): {message}",
            status=status, code="upstream_auth_error", retryable=True)
    if status < 500:
        return UpstreamError(f"{name}: {message}", status=status, code="upstream_bad_request")
    mapped = status if status in (503, 504) else 502
    return UpstreamError(f"{name} answered HTTP {status}: {message}", status=mapped,
                         retry_after=retry_after, retryable=True)


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data = json.loads(response.content)
    except (ValueError, RecursionError):
        return None
    if isinstance(data, list) and data:  # Gemini sometimes wraps the error in a list
        data = data[0]
    return data if isinstance(data, dict) else None


def provider_message(response: httpx.Response) -> str:
    """The human part of a provider's error body (OpenAI, Gemini, Anthropic or plain text), not
    yet scrubbed (`scrub`) nor cut to `MESSAGE_CHARS`."""
    try:
        data = json.loads(response.content)
    except (ValueError, RecursionError):
        text = response.content[:_BODY_BYTES].decode("utf-8", "replace").strip()
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
    return json.dumps(data)[:_BODY_BYTES]
