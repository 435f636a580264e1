"""Model resolution and smart routing: aliases, strategies, circuit breakers, moving averages.

`Router.plan(model, prompt_tokens, max_tokens)` returns the ordered candidates for a request and
why the first was chosen. A plain model resolves through the catalog to one candidate; an alias
keeps the candidates whose context window fits, whose breaker is not open and that have
rate-limit headroom, ranked by the alias's strategy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kimi_mcp.catalog import Catalog, Resolved
from kimi_mcp.config import RoutingSettings
from kimi_mcp.errors import RequestError, UpstreamError
from kimi_mcp.proxy.limits import Limiter

log = logging.getLogger(__name__)

DEFAULT_TTFT_S = 1.0
DEFAULT_TPS = 50.0
EWMA_ALPHA = 0.2
_SEVERITY = {"closed": 0, "half-open": 1, "open": 2}


@dataclass
class Plan:
    candidates: list[Resolved]
    reason: str
    alias: str | None = None


@dataclass
class Breaker:
    failures: int = 0
    opened_at: float | None = None
    state: str = "closed"  # closed | open | half-open


@dataclass
class Stats:
    ttft_s: float | None = None
    tps: float | None = None

    def observe(self, ttft_s: float | None, tps: float | None) -> None:
        if ttft_s is not None:
            self.ttft_s = ttft_s if self.ttft_s is None else _ewma(self.ttft_s, ttft_s)
        if tps is not None and tps > 0:
            self.tps = tps if self.tps is None else _ewma(self.tps, tps)


def _ewma(old: float, new: float) -> float:
    return old + EWMA_ALPHA * (new - old)


@dataclass
class Router:
    catalog: Catalog
    settings: RoutingSettings
    limiter: Limiter
    clock: Callable[[], float] = time.monotonic
    on_breaker: Callable[[str, str], None] | None = None
    # every outcome, for breakers shared across workers (cluster.SharedBreakers.record)
    on_outcome: Callable[[str, bool], None] | None = None
    breakers: dict[str, Breaker] = field(default_factory=dict)
    stats: dict[str, Stats] = field(default_factory=dict)

    # ---- resolution ---------------------------------------------------------------------------

    def resolve(self, model: str) -> Resolved:
        """`AmbiguousModel` (400) or `ModelNotFound` (404) when the catalog cannot."""
        return self.catalog.resolve(model)

    def plan(self, model: str, prompt_tokens: int, max_tokens: int) -> Plan:
        alias = self.settings.aliases.get(model)
        if alias is None:
            return Plan([self.resolve(model)], "requested")
        resolved = [self.resolve(ref) for ref in alias.models]
        need = prompt_tokens + max_tokens
        fitting = [r for r in resolved if r.model.context_window >= need]
        if not fitting:
            windows = ", ".join(f"{r.ref} ({r.model.context_window})" for r in resolved)
            raise RequestError(
                f"the prompt (~{prompt_tokens} tokens) plus max_tokens ({max_tokens}) fits no "
                f"model of '{model}': {windows}", code="context_length_exceeded")
        usable = [r for r in fitting if self.available(r.ref)]
        if not usable:
            raise UpstreamError(f"every model of '{model}' is failing (circuit open); retry later",
                                status=503, code="no_healthy_candidate")
        ready = [r for r in usable if self.limiter.headroom(r.provider, need)]
        waiting = [r for r in usable if r not in ready]
        ranked = self.rank(ready, alias.strategy, prompt_tokens, max_tokens)
        ranked += self.rank(waiting, alias.strategy, prompt_tokens, max_tokens)
        skipped = len(resolved) - len(ranked)
        why = f"{alias.strategy} of {len(ready)} ready"
        if skipped:
            why += f", {skipped} skipped (context/breaker)"
        return Plan(ranked, why, model)

    # ---- ranking ------------------------------------------------------------------------------

    def rank(self, candidates: list[Resolved], strategy: str, prompt: int, out: int) -> list[Resolved]:
        if len(candidates) < 2:
            return list(candidates)
        costs = [self._cost(r, prompt, out) for r in candidates]
        times = [self.expected_s(r.ref, out) for r in candidates]
        if strategy == "cheapest":
            keys = [(c, t) for c, t in zip(costs, times, strict=True)]
        elif strategy == "fastest":
            keys = [(t, c) for c, t in zip(costs, times, strict=True)]
        else:
            low_c = min(costs) or 1e-12
            low_t = min(times) or 1e-12
            keys = [((c / low_c if low_c else 1.0) + t / low_t, 0.0)
                    for c, t in zip(costs, times, strict=True)]
        order = sorted(range(len(candidates)), key=lambda i: keys[i])
        return [candidates[i] for i in order]

    def _cost(self, resolved: Resolved, prompt: int, out: int) -> float:
        cost = self.catalog.cost(resolved, prompt, out)
        return float("inf") if cost is None else cost

    def expected_s(self, ref: str, out: int) -> float:
        stats = self.stats.get(ref) or Stats()
        return (stats.ttft_s or DEFAULT_TTFT_S) + out / (stats.tps or DEFAULT_TPS)

    def observe(self, ref: str, ttft_s: float | None, tps: float | None) -> None:
        self.stats.setdefault(ref, Stats()).observe(ttft_s, tps)

    # ---- circuit breakers -----------------------------------------------------------------------

    def available(self, ref: str) -> bool:
        breaker = self.breakers.get(ref)
        if breaker is None or breaker.state == "closed":
            return True
        if breaker.state == "open" and breaker.opened_at is not None:
            if self.clock() - breaker.opened_at >= self.settings.breaker_cooldown_s:
                self._set(ref, breaker, "half-open")
                return True
            return False
        return True  # half-open: one trial is let through

    def success(self, ref: str) -> None:
        if self.on_outcome is not None:
            self.on_outcome(ref, True)
        breaker = self.breakers.get(ref)
        if breaker is None:
            return
        breaker.failures = 0
        if breaker.state != "closed":
            self._set(ref, breaker, "closed")

    def failure(self, ref: str) -> None:
        if self.on_outcome is not None:
            self.on_outcome(ref, False)
        breaker = self.breakers.setdefault(ref, Breaker())
        breaker.failures += 1
        if breaker.state == "half-open" or (
            breaker.state == "closed" and breaker.failures >= self.settings.breaker_failures
        ):
            breaker.opened_at = self.clock()
            self._set(ref, breaker, "open")

    def apply(self, ref: str, state: str, failures: int, age_s: float) -> None:
        """Take a breaker's state as the workers share it (`cluster.SharedBreakers`): `failures`
        in a row, opened `age_s` seconds ago when `state` is open. An open breaker whose cooldown
        has passed stays half-open here: this worker's trial decides."""
        breaker = self.breakers.setdefault(ref, Breaker())
        breaker.failures = failures
        if state == "open":
            breaker.opened_at = self.clock() - age_s
            if breaker.state == "half-open" and age_s >= self.settings.breaker_cooldown_s:
                return
        if state in _SEVERITY and breaker.state != state:
            self._set(ref, breaker, state)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per provider: the worst breaker state, the models not closed, moving averages."""
        out: dict[str, dict[str, Any]] = {}
        for ref, breaker in self.breakers.items():
            entry = out.setdefault(ref.split("/", 1)[0], {"breaker": "closed", "open_models": []})
            if _SEVERITY[breaker.state] > _SEVERITY[entry["breaker"]]:
                entry["breaker"] = breaker.state
            if breaker.state != "closed":
                entry["open_models"].append(ref)
        for ref, stats in self.stats.items():
            entry = out.setdefault(ref.split("/", 1)[0], {"breaker": "closed", "open_models": []})
            if stats.ttft_s is not None:
                entry.setdefault("ewma_ttft_ms", {})[ref] = round(stats.ttft_s * 1000, 1)
            if stats.tps is not None:
                entry.setdefault("ewma_tps", {})[ref] = round(stats.tps, 1)
        return out

    def _set(self, ref: str, breaker: Breaker, state: str) -> None:
        breaker.state = state
        log.info("circuit breaker of %s is now %s", ref, state)
        if self.on_breaker is not None:
            self.on_breaker(ref, state)
