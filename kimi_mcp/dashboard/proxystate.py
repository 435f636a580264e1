"""Live proxy state for the providers panel, read from the proxy kept in `rt.extras["proxy"]`.

Read-only and duck-typed: the panel degrades to ledger figures when the proxy is absent or its
shape changes. Keys of the router's breakers and stats are model refs `provider/model`.
"""

from __future__ import annotations

import logging
from typing import Any

from kimi_mcp.runtime import Runtime

log = logging.getLogger(__name__)
_SEVERITY = {"closed": 0, "half-open": 1, "open": 2}


def snapshot(rt: Runtime) -> dict[str, dict[str, Any]]:
    """`{provider: {"breaker", "open_models", "rate_limit", "ewma_ttft_ms", "ewma_tps"}}`."""
    hook = rt.extras.get("provider_state")
    if hook is not None:
        try:
            state = hook.snapshot() if hasattr(hook, "snapshot") else hook()
            return {str(k): dict(v) for k, v in (state or {}).items()}
        except Exception:
            log.exception("reading the proxy's provider state failed")
            return {}
    proxy = rt.extras.get("proxy")
    if proxy is None:
        return {}
    try:
        return _from_proxy(proxy)
    except (AttributeError, TypeError, ValueError):
        log.warning("the proxy's state has an unexpected shape; providers show ledger figures only",
                    exc_info=True)
        return {}


def _from_proxy(proxy: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    router = getattr(proxy, "router", None)
    for ref, breaker in dict(getattr(router, "breakers", {}) or {}).items():
        entry = out.setdefault(ref.split("/", 1)[0], {"breaker": "closed", "open_models": []})
        state = str(getattr(breaker, "state", "closed"))
        if _SEVERITY.get(state, 0) > _SEVERITY.get(entry["breaker"], 0):
            entry["breaker"] = state
        if state != "closed":
            entry["open_models"].append(ref)
    for ref, stats in dict(getattr(router, "stats", {}) or {}).items():
        entry = out.setdefault(ref.split("/", 1)[0], {"breaker": "closed", "open_models": []})
        ttft, tps = getattr(stats, "ttft_s", None), getattr(stats, "tps", None)
        if ttft is not None:
            entry.setdefault("ewma_ttft_ms", {})[ref] = round(ttft * 1000, 1)
        if tps is not None:
            entry.setdefault("ewma_tps", {})[ref] = round(tps, 1)
    limiter = getattr(proxy, "limiter", None)
    clock = getattr(limiter, "clock", None)
    now = clock() if callable(clock) else None
    for name, limits in dict(getattr(limiter, "_by_provider", {}) or {}).items():
        headroom: dict[str, Any] = {}
        for what in ("rpm", "tpm"):
            bucket = getattr(limits, what, None)
            if bucket is None or now is None:
                continue
            level = min(bucket.capacity, bucket.level + (now - bucket.at) * bucket.per_s)
            headroom[f"{what}_left"] = max(0, int(level))
            headroom[f"{what}_limit"] = int(bucket.capacity)
        if headroom:
            out.setdefault(name, {"breaker": "closed", "open_models": []})["rate_limit"] = headroom
    return out
