"""The stages every proxied chat request passes through: memory tags → sanitizer → compression.

`apply_stages` never mutates the body it is given: it returns a new dict whose messages list
is new, and only the messages it changed are new dicts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kimi_mcp import tokens
from kimi_mcp.context.compress import Cut, Outcome, Summary, estimate, fingerprint, splice
from kimi_mcp.context.conversation import Message, head_end, is_summary, protected_start
from kimi_mcp.context.sanitizer import Masked, apply_masks
from kimi_mcp.context.state import ContextState
from kimi_mcp.context.summarize import summarizer

if TYPE_CHECKING:
    from kimi_mcp.config import ContextSettings
    from kimi_mcp.deps import Deps

log = logging.getLogger(__name__)
# a new cut aims this far under compress_at, so the next requests can reuse it (cache-friendly)
HEADROOM = 0.8


@dataclass
class StageResult:
    body: dict[str, Any]  # the transformed request body: a new dict, the input is never mutated
    saved_mask_tokens: int = 0
    saved_compress_tokens: int = 0
    memory_tokens: int = 0
    masked_ids: list[str] = field(default_factory=list)
    error: str | None = None  # the request cannot be made to fit: the proxy answers 400 with it


@dataclass(frozen=True)
class Switches:
    memory_tags: bool
    sanitize: bool
    compression: bool

    @classmethod
    def resolve(cls, cfg: ContextSettings, session: Mapping[str, Any]) -> Switches:
        """TOML defaults, overridden per session by the Session row's `context` dict."""
        over = session.get("context") or {}
        return cls(
            memory_tags=bool(over.get("memory_tags", cfg.memory_tags)),
            sanitize=bool(over.get("sanitize", cfg.sanitize)),
            compression=bool(over.get("compression", cfg.compression)),
        )


async def apply_stages(
    deps: Deps, body: dict[str, Any], *, session_id: str | None, context_window: int, enabled: bool = True
) -> StageResult:
    result = StageResult(body=dict(body))
    messages = body.get("messages")
    if not enabled or not isinstance(messages, list) or not messages:
        return result
    if not all(isinstance(m, dict) for m in messages):
        return result  # the proxy's validation answers for a malformed body
    cfg = deps.settings.context
    state = ContextState.of(deps)
    session = await state.session(session_id)
    switches = Switches.resolve(cfg, session)
    msgs: list[Message] = list(messages)
    if switches.memory_tags:
        result.memory_tokens = await state.tags.apply(
            msgs, getattr(deps, "memory", None), session_id=session_id, project=deps.project
        )
    original = list(msgs)
    if switches.sanitize:
        end = protected_start(msgs, cfg.keep_last_turns, cfg.mask_step_turns)
        await _mask(state, msgs, end, cfg.mask_threshold_tokens, session_id, result)
    if switches.compression and context_window > 0:
        await _compress(state, cfg, body, msgs, original, session, session_id, context_window, result)
    result.body["messages"] = msgs
    return result


async def _mask(
    state: ContextState, msgs: list[Message], end: int, threshold: int, session_id: str | None,
    result: StageResult,
) -> None:
    chosen = state.sanitizer.candidates(msgs, end, threshold)
    if not chosen:
        return
    ok, fresh = await state.store_blocks(
        [m for _, m in chosen], source="sanitizer", session_id=session_id, tags=["masked"]
    )
    chosen = [(i, m) for i, m in chosen if m.id in ok]
    names = {m.id: str(msgs[i].get("name") or "") for i, m in chosen}
    result.saved_mask_tokens += apply_masks(msgs, chosen)
    result.masked_ids.extend(m.id for _, m in chosen if m.id not in result.masked_ids)
    if fresh:
        _emit(state, "masked", {
            "session_id": session_id,
            "items": [_masked_item(m, names.get(m.id, "")) for m in fresh],
            "tokens": sum(m.tokens for m in fresh),
        })


def _masked_item(item: Masked, tool: str) -> dict[str, Any]:
    first = next((line.strip() for line in item.original.splitlines() if line.strip()), "")
    return {"id": item.id, "tokens": item.tokens, "tool": tool, "preview": first[:120]}


@dataclass
class _Frame:
    """One compression attempt's inputs."""

    state: ContextState
    cfg: ContextSettings
    original: list[Message]
    session_id: str | None
    budget: int
    target: int
    tools_tokens: int


def _count(msgs: Sequence[Message], tools_tokens: int) -> tuple[list[int], int]:
    counts = [tokens.count_message(m) for m in msgs]
    return counts, sum(counts) + tools_tokens + tokens.REPLY_PRIMING


async def _compress(
    state: ContextState, cfg: ContextSettings, body: Mapping[str, Any], msgs: list[Message],
    original: list[Message], session: Mapping[str, Any], session_id: str | None,
    context_window: int, result: StageResult,
) -> None:
    reserve = body.get("max_completion_tokens") or body.get("max_tokens") or 0
    budget = context_window - (reserve if isinstance(reserve, int) else 0)
    tools_tokens = tokens.count_tools(body.get("tools") or body.get("functions"))
    counts, total = _count(msgs, tools_tokens)
    requested = bool(session.get("compress_requested")) and session_id is not None
    if budget <= 0:
        result.error = (f"max_tokens ({reserve}) leaves no room for the prompt in the model's "
                        f"context window of {context_window} tokens: lower max_tokens")
        return
    frame = _Frame(state, cfg, original, session_id, budget,
                   min(int(cfg.compress_at * context_window), budget), tools_tokens)
    head = head_end(msgs)
    key = (session_id, fingerprint(original[: head]))
    already = head > 0 and is_summary(msgs[head - 1])
    remembered = None if already else state.compressor.sticky(key, original)
    # a cut taken for size is dropped once the prompt fits without it; an asked-for one stays
    sticky = remembered[0] if remembered and (remembered[1] or total > frame.target) else None
    if not requested and sticky is None and total <= frame.target:
        return
    if already and total <= budget:  # this body went through the stages before: idempotent
        if requested:
            await state.clear_compress_request(session_id)  # type: ignore[arg-type]
        return
    outcome = None
    if sticky is not None and not requested:
        outcome = await _try(frame, msgs, counts, total, sticky, frame.target, new=False)
    if outcome is None:
        outcome = await _search(frame, msgs, counts, total, requested)
    if outcome is None and total > budget:
        outcome = await _last_resort(frame, msgs, result)
        counts, total = _count(msgs, tools_tokens)
    if requested:
        await state.clear_compress_request(session_id)  # type: ignore[arg-type]
    if outcome is None:
        if total > budget:
            result.error = _too_big(total, context_window, budget)
        return
    if not already:
        asked = requested or bool(remembered and remembered[1] and outcome.cut == remembered[0])
        state.compressor.remember(key, outcome.cut, original, asked)
    msgs[:] = outcome.messages
    result.saved_compress_tokens = outcome.saved
    if outcome.new:
        reason = "requested" if requested else ("threshold" if total <= budget else "overflow")
        _emit(state, "compression", {
            "session_id": session_id, "reason": reason, "messages": outcome.cut.end - outcome.cut.start,
            "tokens_before": total, "tokens_after": total - outcome.saved, "saved_tokens": outcome.saved,
            "transcript_id": outcome.summary.transcript_id, "summary_source": outcome.summary.source,
        })


async def _try(
    frame: _Frame, msgs: list[Message], counts: list[int], total: int, cut: Cut, goal: int, *, new: bool
) -> Outcome | None:
    if estimate(counts, total, cut) + 8 > goal:
        return None
    summarize = summarizer(frame.state, frame.cfg, frame.session_id)
    summary = await frame.state.compressor.summary(frame.original, cut, frame.budget, summarize)
    spliced = splice(msgs, cut, summary)
    after = estimate(counts, total, cut) + tokens.count_message(spliced[cut.start])
    if after > goal:
        return None
    return Outcome(spliced, total - after, cut, summary, new)


async def _search(
    frame: _Frame, msgs: list[Message], counts: list[int], total: int, requested: bool
) -> Outcome | None:
    """The cut that keeps the most recent turns and brings the prompt under the goal."""
    cuts = frame.state.compressor.candidates(msgs, frame.cfg.keep_last_turns)
    low = int(frame.target * HEADROOM)
    goals = [frame.budget] if requested else [low, frame.target, frame.budget]
    for goal in dict.fromkeys(goals):
        for cut in cuts:
            outcome = await _try(frame, msgs, counts, total, cut, goal, new=True)
            if outcome is not None:
                return outcome
    return None


async def _last_resort(frame: _Frame, msgs: list[Message], result: StageResult) -> Outcome | None:
    """Mask verbose tool output inside the protected window too, then compress again."""
    await _mask(frame.state, msgs, len(msgs), frame.cfg.mask_threshold_tokens, frame.session_id, result)
    counts, total = _count(msgs, frame.tools_tokens)
    if total <= frame.budget:
        return None
    return await _search(frame, msgs, counts, total, requested=True)


def _too_big(total: int, window: int, budget: int) -> str:
    reserved = window - budget
    room = f"{budget:,} tokens ({window:,} context window" + (
        f" minus {reserved:,} reserved by max_tokens)" if reserved else ")"
    )
    return (f"the conversation needs {total:,} tokens even after masking and compression, but the "
            f"model has room for {room}: shorten the latest messages, lower max_tokens, or use a "
            "model with a larger context window")


def _emit(state: ContextState, type_: str, data: dict[str, Any]) -> None:
    ledger = getattr(state.deps, "ledger", None)
    if ledger is None:
        return
    try:
        future: Future[None] = ledger.submit(lambda tx: tx.emit(type_, data))
    except Exception:  # a ledger that is not started (tests, shutdown): the event is dropped
        log.warning("could not publish the %s event", type_, exc_info=True)
        return
    future.add_done_callback(_log_failure)


def _log_failure(future: Future[None]) -> None:
    if future.exception() is not None:
        log.warning("publishing a context event failed: %s", future.exception())


__all__ = ["StageResult", "Summary", "Switches", "apply_stages"]
