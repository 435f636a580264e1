"""The one HTTP client to providers: a bounded pool, retries before the first byte, and one
mapping from every failure to `UpstreamError` with secrets scrubbed.

    client.py      `Upstream` (owns the one pool; sends through its transport), `Backoff`
    transport.py   aiohttp's pool under httpx's API, every wire failure mapped to httpx errors
    errors.py      `to_upstream_error`, `scrub`, `scrub_bytes`, `scrub_error`, `parse_retry_after`,
                   `retry_after_of`

Only this package constructs an HTTP client to a provider (an architecture test holds it).
"""

from kimi_mcp.upstream.client import Backoff, Upstream
from kimi_mcp.upstream.errors import (
    parse_retry_after,
    retry_after_of,
    scrub,
    scrub_bytes,
    scrub_error,
    to_upstream_error,
)

__all__ = ["Backoff", "Upstream", "parse_retry_after", "retry_after_of", "scrub", "scrub_bytes",
           "scrub_error",
           "to_upstream_error"]
