"""The ledger row of each proxied call: durable on the request path, completed off it.

When a call finishes, before its answer completes, `Accountant.submit` reserves the call's row in
the ledger (`Ledger.reserve`: what is known without parsing — status, timings, route, savings,
headers without secrets — written to the spool, a few microseconds), so a crash right after the
answer loses nothing. The `Accountant`'s thread then parses the answer, estimates tokens with
tiktoken beside what the provider reported, prices the call, and queues the complete row in place
of the reserved one; it also updates the router's moving averages and compares the session's
context usage with `[context] alert_thresholds`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kimi_mcp.catalog import Resolved
from kimi_mcp.deps import Deps
from kimi_mcp.ledger import reads
from kimi_mcp.ledger.rows import AlertRow, RequestRow
from kimi_mcp.ledger.store import Pending
from kimi_mcp.proxy.formats import anthropic_answer, anthropic_stream
from kimi_mcp.proxy.profiles import PROFILES, Profile
from kimi_mcp.tokens import count_chat, count_text

log = logging.getLogger(__name__)


@dataclass
class CallRecord:
    created_at: float
    started: float  # perf_counter when the request arrived
    stream: bool
    session_id: str | None = None
    resolved: Resolved | None = None
    provider: str = ""
    model: str = ""
    status: str = "ok"
    http_status: int | None = None
    error: str | None = None
    route: str | None = None
    body: dict[str, Any] | None = None  # what went upstream (OpenAI shape)
    first_at: float | None = None
    ended_at: float | None = None
    usage: dict[str, Any] | None = None
    raw_answer: bytes | None = None  # a non-streamed OpenAI-format answer, unparsed
    events: list[bytes] | None = None  # raw SSE events of a streamed OpenAI-format answer
    text: list[str] | None = None  # streamed text already decoded (translated formats)
    answer_format: str = "openai"  # the wire of raw_answer / events: openai | anthropic
    saved_mask_tokens: int = 0
    saved_compress_tokens: int = 0
    memory_tokens: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    pending: Pending[RequestRow] | None = None  # the row reserved when the call finished
    profile: Profile = PROFILES["openai"]  # the provider's wire quirks: where usage lives
    billable: bool = False  # the provider took the call (2xx, the kind of answer asked for)


@dataclass
class Accountant:
    """Accounts calls in batches on its own thread.

    `submit` only appends to a deque: the request path never wakes the thread, so it does not
    hand the GIL over once per call; the thread drains the deque every `interval_s`.
    """

    deps: Deps
    observe: Callable[[str, float | None, float | None], None] | None = None
    interval_s: float = 0.2
    wake_at: int = 256  # pending records that wake the thread early
    submitted: int = 0
    accounted: int = 0
    _pending: deque[CallRecord] = field(default_factory=deque)
    _wake: threading.Event = field(default_factory=threading.Event)
    _done: threading.Condition = field(default_factory=threading.Condition)
    _stop: bool = False
    _thread: threading.Thread | None = None
    _levels: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        if self._thread is None:
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="kimi-proxy-accounting",
                                            daemon=True)
            self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._stop = True
            self._wake.set()
            self._thread.join(timeout=30)
            self._thread = None

    def submit(self, record: CallRecord) -> None:
        """Make the call's row durable now (the answer has not completed yet), then hand the
        record to the accounting thread."""
        try:
            record.pending = self.deps.ledger.reserve(self._row(record))
        except Exception:  # the thread still appends the complete row
            log.exception("could not reserve the ledger row of a proxied call")
        self._pending.append(record)
        self.submitted += 1
        if len(self._pending) >= self.wake_at:
            self._wake.set()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Block until `count` calls in all have been accounted (streams finish after the client)."""
        deadline = time.monotonic() + timeout
        with self._done:
            while self.accounted < count:
                self._wake.set()
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._done.wait(min(left, 0.05))
        return True

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            stop = self._stop
            while self._pending:
                record = self._pending.popleft()
                try:
                    self.record(record)
                except Exception:  # one bad record must not stop the accounting of the others
                    log.exception("could not account a proxied call")
                with self._done:
                    self.accounted += 1
                    self._done.notify_all()
            if stop:
                return

    # ---- one record -------------------------------------------------------------------------

    def record(self, rec: CallRecord) -> None:
        usage, completion_text = self._answer(rec)
        est_prompt = count_chat(rec.body, rec.profile.image_tokens) if rec.body else None
        est_completion = count_text(completion_text) if completion_text or rec.body else None
        reported = usage is not None and usage.get("prompt_tokens") is not None
        prompt = _int(usage, "prompt_tokens") if reported else None
        completion = _int(usage, "completion_tokens") if reported else None
        cached = _cached(usage) if reported else None
        reasoning = _reasoning(usage) if reported else None
        eff_prompt = prompt if prompt is not None else (est_prompt or 0)
        eff_completion = completion if completion is not None else (est_completion or 0)
        cost = None
        if rec.resolved is not None and (eff_prompt or eff_completion):
            cost = self.deps.catalog.cost(rec.resolved, eff_prompt, eff_completion,
                                          cached or 0, reasoning or 0)
        reserved = rec.pending.row if rec.pending is not None else self._row(rec)
        meta = reserved.meta
        if not rec.billable and not reported:
            # refused before a provider took it (no key, a local limit, an unknown model, a
            # provider's error status, an answer that was not the one asked for): it costs
            # nothing, and its estimate stays out of the summed token columns
            if est_prompt:
                meta = {**meta, "unbilled_est_prompt_tokens": est_prompt}
            est_prompt = est_completion = None
            cost = 0.0
        row = dataclasses.replace(
            reserved, status=rec.status, error=rec.error, prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached,
            reasoning_tokens=reasoning, est_prompt_tokens=est_prompt,
            est_completion_tokens=est_completion,
            usage_source="provider" if reported else "estimate", cost_usd=cost, meta=meta)
        if rec.pending is not None:
            self.deps.ledger.complete(rec.pending, row)
        else:
            self.deps.ledger.append(row)
        window = rec.resolved.model.context_window if rec.resolved else None
        if rec.status == "ok" and rec.resolved is not None:
            self._observe(rec, eff_completion)
        if rec.session_id and window and rec.body is not None and rec.status == "ok":
            used = eff_prompt + rec.saved_mask_tokens + rec.saved_compress_tokens
            self.check_alert(rec.session_id, used, window, rec.resolved.ref if rec.resolved else "")

    @staticmethod
    def _row(rec: CallRecord) -> RequestRow:
        """The call's row as far as it is known without parsing the answer."""
        usage = rec.usage
        reported = usage is not None and usage.get("prompt_tokens") is not None
        return RequestRow(
            session_id=rec.session_id, created_at=rec.created_at, provider=rec.provider,
            model=rec.model, stream=rec.stream, status=rec.status, http_status=rec.http_status,
            error=rec.error, prompt_tokens=_int(usage, "prompt_tokens") if reported else None,
            completion_tokens=_int(usage, "completion_tokens") if reported else None,
            usage_source="provider" if reported else "estimate",
            ttft_ms=_ms(rec.first_at, rec.started), latency_ms=_ms(rec.ended_at, rec.started),
            saved_mask_tokens=rec.saved_mask_tokens,
            saved_compress_tokens=rec.saved_compress_tokens, memory_tokens=rec.memory_tokens,
            context_window=rec.resolved.model.context_window if rec.resolved else None,
            route=rec.route, meta=rec.meta,
        )

    def _observe(self, rec: CallRecord, completion: int) -> None:
        if self.observe is None or rec.resolved is None or rec.ended_at is None:
            return
        ttft = rec.first_at - rec.started if rec.stream and rec.first_at else None
        gen_s = rec.ended_at - (rec.first_at if rec.stream and rec.first_at else rec.started)
        tps = completion / gen_s if completion and gen_s > 0 else None
        self.observe(rec.resolved.ref, ttft, tps)

    def _answer(self, rec: CallRecord) -> tuple[dict[str, Any] | None, str]:
        if rec.answer_format == "anthropic":
            if rec.raw_answer is not None:
                return anthropic_answer.usage_and_text(rec.raw_answer)
            if rec.events is not None:
                return anthropic_stream.usage_and_text(rec.events)
        if rec.raw_answer is not None:
            return _parse_answer(rec, rec.raw_answer)
        if rec.events is not None:
            return _parse_events(rec.events, rec.usage, rec.profile)
        return rec.usage, "".join(rec.text or ())

    # ---- alerts -------------------------------------------------------------------------------

    def check_alert(self, session_id: str, prompt_tokens: int, window: int, model: str) -> None:
        thresholds = sorted(self.deps.settings.context.alert_thresholds)
        usage = prompt_tokens / window
        level = max((t for t in thresholds if usage >= t), default=0.0)
        previous = self._levels.get(session_id)
        if previous is None:
            previous = self._last_alerted(session_id)
        self._levels[session_id] = level
        if level > previous:
            self.deps.ledger.append(AlertRow(
                session_id=session_id, threshold=level, usage=round(usage, 4),
                prompt_tokens=prompt_tokens, context_window=window, model=model,
                message=f"context at {usage:.0%} of {window} tokens (threshold {level:.0%})",
            ))

    def _last_alerted(self, session_id: str) -> float:
        with self.deps.ledger.read() as db:
            return reads.highest_alert(db, session_id)


def _int(usage: dict[str, Any] | None, key: str) -> int | None:
    value = (usage or {}).get(key)
    return int(value) if isinstance(value, int | float) else None


def _cached(usage: dict[str, Any] | None) -> int | None:
    details = (usage or {}).get("prompt_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
        return int(details["cached_tokens"])
    for key in ("cached_tokens", "prompt_cache_hit_tokens"):
        if isinstance((usage or {}).get(key), int):
            return int(usage[key])  # type: ignore[index]
    return None


def _reasoning(usage: dict[str, Any] | None) -> int | None:
    details = (usage or {}).get("completion_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("reasoning_tokens"), int):
        return int(details["reasoning_tokens"])
    return None


def _ms(end: float | None, start: float) -> float | None:
    return None if end is None else round((end - start) * 1000, 3)


def _message_text(message: dict[str, Any]) -> list[str]:
    parts = []
    for key in ("content", "reasoning_content", "reasoning"):
        if isinstance(message.get(key), str):
            parts.append(message[key])
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        parts.append(str(function.get("name") or ""))
        parts.append(str(function.get("arguments") or ""))
    return parts


def _parse_answer(rec: CallRecord, raw: bytes) -> tuple[dict[str, Any] | None, str]:
    """Usage and text of a whole OpenAI-format answer; an in-band error in a 200 answer
    (OpenRouter's `finish_reason: "error"`) makes the call an error."""
    try:
        data = json.loads(raw)
    except ValueError:
        return rec.usage, ""
    if not isinstance(data, dict):
        return rec.usage, ""
    texts = []
    for choice in data.get("choices") or ():
        texts += _message_text(choice.get("message") or {})
    if rec.status == "ok" and (message := rec.profile.stream_error(data)) is not None:
        rec.status, rec.error = "error", f"{rec.provider}: {message}"
    found = rec.profile.usage(data)
    return found if found is not None else rec.usage, "".join(texts)


def _parse_events(events: list[bytes], usage: dict[str, Any] | None,
                  profile: Profile = PROFILES["openai"]) -> tuple[dict[str, Any] | None, str]:
    """Usage and text of a streamed OpenAI-format answer. The last usage reported wins (some
    providers repeat a running total in every chunk); it is read where the profile says."""
    texts: list[str] = []
    found = None
    for event in events:
        for line in event.splitlines():
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if not payload or payload == b"[DONE]":
                continue
            try:
                data = json.loads(payload)
            except ValueError:
                continue
            if not isinstance(data, dict):
                continue
            if b'"usage"' in payload:
                found = profile.usage(data) or found
            for choice in data.get("choices") or ():
                texts += _message_text(choice.get("delta") or {})
    return found if found is not None else usage, "".join(texts)


def now() -> float:
    return time.time()


def seed_stats(deps: Deps, observe: Callable[[str, float | None, float | None], None]) -> None:
    """Start the router's moving averages from the last day of successful calls."""
    with deps.ledger.read() as db:
        history = reads.routing_history(db, time.time() - 86_400)
    for h in history:
        tps = h.completion_tokens / (h.generation_ms / 1000) if h.completion_tokens and h.generation_ms else None
        observe(f"{h.provider}/{h.model}", h.avg_ttft_ms / 1000 if h.avg_ttft_ms else None, tps)
