"""Live proxy state for the providers panel: the proxy's own `snapshot()`, never its internals.

Without a proxy (or if its snapshot fails) the panel shows what the ledger knows.
"""

from __future__ import annotations

import logging
from typing import Any

from kimi_mcp.runtime import ProviderState

log = logging.getLogger(__name__)


def snapshot(state: ProviderState | None) -> dict[str, dict[str, Any]]:
    """`{provider: {"breaker", "open_models", "rate_limit", "ewma_ttft_ms", "ewma_tps"}}`."""
    if state is None:
        return {}
    try:
        return {str(k): dict(v) for k, v in state.snapshot().items()}
    except Exception:  # the panel must render from the ledger even if the live state fails
        log.exception("reading the proxy's provider state failed")
        return {}
