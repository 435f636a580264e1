"""Put Continue's calls in the ledger once: merge with the proxy's rows and with each other.

A call Continue made through our proxy is already in the ledger with the provider's exact usage:
the proxy row wins and nothing is inserted (the merge is counted). A call Continue recorded twice
(its prompt log and its dev data describe the same call) is inserted once. An API error from
core.log is paired with the failed call it belongs to (a call with no generated tokens nearby).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from kimi_mcp.deps import Deps
from kimi_mcp.errors import KimiError
from kimi_mcp.ledger import reads
from kimi_mcp.ledger.rows import RequestRow, new_uid
from kimi_mcp.logwatch.parse import Call

log = logging.getLogger(__name__)

SOURCE = "continue-log"
WINDOW_S = 120.0  # how far apart a log record and the proxy row of the same call may be
_RECENT = 512


@dataclass
class WatchStats:
    lines: int = 0
    calls: int = 0
    recorded: int = 0
    merged_proxy: int = 0
    merged_duplicate: int = 0
    errors_paired: int = 0
    unparseable: int = 0
    rotations: int = 0
    truncations: int = 0
    last_unparseable: str | None = None
    files: dict[str, int] = field(default_factory=dict)  # path -> offset read so far

    def as_dict(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}


@dataclass
class _Seen:
    call: Call
    uid: str  # the ledger row this call is (ours, or the proxy's it merged into)
    inserted: bool
    origins: set[str] = field(default_factory=set)  # the files that have described this call


def tokens_match(ours: int | None, theirs: int | None, rel: float = 0.15, slack: int = 24) -> bool:
    """Continue counts with its own tokenizer, the proxy with the provider's: allow a margin."""
    if ours is None or theirs is None:
        return ours is None and theirs is None
    return abs(ours - theirs) <= max(slack, rel * max(ours, theirs))


def model_matches(continue_model: str, row: RequestRow) -> bool:
    if not continue_model:
        return False
    names = {row.model, f"{row.provider}/{row.model}", row.route or ""}
    return continue_model in names or continue_model.rsplit("/", 1)[-1] == row.model


class Recorder:
    def __init__(self, deps: Deps, stats: WatchStats, own_ports: set[int] | None = None) -> None:
        self.deps = deps
        self.stats = stats
        self.own_ports = own_ports or set()
        self._recent: deque[_Seen] = deque(maxlen=_RECENT)
        self._claimed: deque[str] = deque(maxlen=_RECENT)  # proxy rows already merged into

    def record(self, call: Call) -> None:
        self.stats.calls += 1
        if call.origin == "core_log" and self._is_own_proxy(call):
            self.stats.merged_proxy += 1  # the proxy recorded this failure itself
            return
        twin = self._twin(call)
        if twin is not None:
            self._merge_twin(twin, call)
            return
        proxy_uid = self._proxy_row(call)
        if proxy_uid is not None:
            self.stats.merged_proxy += 1
            self._claimed.append(proxy_uid)
            self._recent.append(_Seen(call, proxy_uid, inserted=False, origins={call.origin}))
            return
        uid = new_uid()
        self.deps.ledger.append(self._row(call, uid))
        self.stats.recorded += 1
        self._recent.append(_Seen(call, uid, inserted=True, origins={call.origin}))

    # ---- merging ---------------------------------------------------------------------------

    def _is_own_proxy(self, call: Call) -> bool:
        from urllib.parse import urlsplit

        if not call.url:
            return False
        parts = urlsplit(call.url)
        local = parts.hostname in ("127.0.0.1", "localhost", "::1")
        return local and parts.port in self.own_ports

    def _twin(self, call: Call) -> _Seen | None:
        """The same call seen before from Continue's other file, or the error it belongs to."""
        for seen in reversed(self._recent):
            prior = seen.call
            if abs(prior.created_at - call.created_at) > WINDOW_S or prior.origin == call.origin:
                continue
            if call.origin != "core_log" and call.origin in seen.origins:
                continue  # that file already described this call: this is another one
            if call.origin == "core_log" or prior.origin == "core_log":
                counts = call if prior.origin == "core_log" else prior
                error = prior if prior.origin == "core_log" else call
                if not error.error or ((counts.generated_tokens or 0) > 0 and counts.status == "ok"):
                    continue
                if error.provider and counts.provider and not _same_provider(error, counts):
                    continue
                return seen
            if (prior.model == call.model and prior.prompt_tokens == call.prompt_tokens
                    and prior.generated_tokens == call.generated_tokens):
                return seen
        return None

    def _merge_twin(self, seen: _Seen, call: Call) -> None:
        self.stats.merged_duplicate += 1
        seen.origins.add(call.origin)
        prior = seen.call
        update: dict[str, Any] = {}
        if call.origin == "core_log":  # the error of a call already recorded
            self.stats.errors_paired += 1
            update.update(status="error", http_status=call.http_status, error=call.error)
            prior.status, prior.http_status, prior.error = "error", call.http_status, call.error
        elif prior.origin == "core_log":  # the counts of an error already recorded
            self.stats.errors_paired += 1
            update.update(provider=call.provider or prior.provider, model=call.model,
                          est_prompt_tokens=call.prompt_tokens,
                          est_completion_tokens=call.generated_tokens,
                          meta={"origin": call.origin, "error_from": "core_log"})
            if not call.generated_tokens:  # nothing generated: the provider did not take it
                update.update(est_prompt_tokens=None, est_completion_tokens=None,
                              meta={**update["meta"], **_unbilled(call.prompt_tokens)})
            prior.provider, prior.model = update["provider"], call.model
            prior.prompt_tokens, prior.generated_tokens = call.prompt_tokens, call.generated_tokens
            prior.origin = call.origin  # now a complete call: a later twin matches on counts
        elif not prior.provider and call.provider:  # the prompt log does not name the provider
            update["provider"] = prior.provider = call.provider
        if update and seen.inserted:
            uid = seen.uid
            self.deps.ledger.submit(lambda tx: reads.update_request(tx, uid, update))

    def _proxy_row(self, call: Call) -> str | None:
        if not call.model and call.origin != "core_log":
            return None
        lo, hi = call.created_at - WINDOW_S, call.created_at + WINDOW_S
        try:
            with self.deps.ledger.read() as db:
                rows = reads.unlinked_proxy_requests(db, lo, hi)
        except KimiError as exc:
            log.warning("logwatch: cannot read the ledger: %s", exc)
            return None
        best: tuple[float, str] | None = None
        for row in rows:
            if row.uid in self._claimed or not self._same_call(call, row):
                continue
            distance = abs(row.created_at - call.created_at)
            if best is None or distance < best[0]:
                best = (distance, row.uid)
        return best[1] if best else None

    def _same_call(self, call: Call, row: RequestRow) -> bool:
        if call.origin == "core_log":
            return row.status == "error" and row.http_status == call.http_status
        if not model_matches(call.model, row):
            return False
        prompt = [t for t in (row.prompt_tokens, row.est_prompt_tokens) if t is not None]
        done = [t for t in (row.completion_tokens, row.est_completion_tokens) if t is not None]
        if row.status == "error" and not prompt and not done:
            # a call no provider took: the proxy keeps no token counts for it to compare
            return not call.generated_tokens
        return (any(tokens_match(call.prompt_tokens, t) for t in prompt)
                and any(tokens_match(call.generated_tokens, t, slack=16) for t in done))

    def _row(self, call: Call, uid: str) -> RequestRow:
        if call.status == "error" and not call.generated_tokens:
            # a failed call with nothing generated: no provider took it, it costs nothing
            return RequestRow(
                uid=uid, source=SOURCE, created_at=call.created_at, provider=call.provider,
                model=call.model, status=call.status, http_status=call.http_status,
                error=call.error, usage_source="estimate", cost_usd=0.0,
                meta={"origin": call.origin, **_unbilled(call.prompt_tokens)}).check()
        return RequestRow(
            uid=uid, source=SOURCE, created_at=call.created_at, provider=call.provider,
            model=call.model, status=call.status, http_status=call.http_status, error=call.error,
            # Continue counts with its own tokenizer: estimates, never the provider's usage
            est_prompt_tokens=call.prompt_tokens, est_completion_tokens=call.generated_tokens,
            usage_source="estimate", meta={"origin": call.origin}, cost_usd=self._cost(call),
        ).check()

    def _cost(self, call: Call) -> float | None:
        if not call.model or call.prompt_tokens is None:
            return None
        catalog = self.deps.catalog
        for ref in (f"{call.provider}/{call.model}", call.model):
            try:
                resolved = catalog.resolve(ref)
            except KimiError:
                continue
            return catalog.cost(resolved, call.prompt_tokens, call.generated_tokens or 0)
        return None


def _unbilled(prompt_tokens: int | None) -> dict[str, Any]:
    """The meta of a call no provider took: its prompt's size, out of the summed columns (the
    key the proxy uses for its own such rows)."""
    return {"unbilled_est_prompt_tokens": prompt_tokens} if prompt_tokens else {}


def _same_provider(error: Call, counts: Call) -> bool:
    host = error.provider.lower()
    name = counts.provider.lower()
    return name in host or host in name or name in ("openai", "")


def wall_clock() -> float:
    return time.time()
