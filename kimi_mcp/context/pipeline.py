"""The stages every proxied chat request passes through: memory tags → tool outputs (first-sight
compression, masking by the cost model) → compression of the middle.

`run` never mutates the body it is given: it returns a new dict whose messages list is new, and
only the messages it changed are new dicts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kimi_mcp import tokens
from kimi_mcp.context.compress import Cut, Outcome, Summary, estimate, fingerprint, splice
from kimi_mcp.context.conversation import Message, head_end, is_summary
from kimi_mcp.context.figures import Savings, StageResult
from kimi_mcp.context.outputs import Change, Plan, Policy
from kimi_mcp.context.summarize import summarizer

if TYPE_CHECKING:
    from kimi_mcp.config import ContextSettings
    from kimi_mcp.context.stages import ContextStages

log = logging.getLogger(__name__)
# a new cut aims this far under compress_at, so the next requests can reuse it (cache-friendly)
HEADROOM = 0.8


@dataclass(frozen=True)
class Switches:
    memory_tags: bool
    first_sight: bool
    sanitize: bool
    compression: bool

    @classmethod
    def resolve(cls, cfg: ContextSettings, session: Mapping[str, Any]) -> Switches:
        """TOML defaults, overridden per session by the Session row's `context` dict."""
        over = session.get("context") or {}
        return cls(
            memory_tags=bool(over.get("memory_tags", cfg.memory_tags)),
            first_sight=bool(over.get("first_sight", cfg.first_sight)),
            sanitize=bool(over.get("sanitize", cfg.sanitize)),
            compression=bool(over.get("compression", cfg.compression)),
        )


async def run(
    stages: ContextStages, body: dict[str, Any], *, session_id: str | None, context_window: int,
    enabled: bool, model_ref: str | None,
) -> StageResult:
    result = StageResult(body=dict(body))
    messages = body.get("messages")
    if not enabled or not isinstance(messages, list) or not messages:
        return result
    if not all(isinstance(m, dict) for m in messages):
        return result  # the proxy's validation answers for a malformed body
    cfg = stages.settings.context
    ratio, usd = stages.prices(model_ref or (body.get("model") if isinstance(body.get("model"), str) else None))
    if cfg.cached_price_ratio is not None:
        ratio = cfg.cached_price_ratio
    result.savings = Savings(ratio, usd)
    session = await stages.session(session_id)
    switches = Switches.resolve(cfg, session)
    msgs: list[Message] = list(messages)
    if switches.memory_tags:
        result.memory_tokens = await stages.tags.apply(msgs, stages.memory, session_id=session_id,
                                                      project=stages.project)
    original = list(msgs)
    known: dict[int, int] = {}
    if switches.first_sight or switches.sanitize:
        policy = Policy(first_sight=switches.first_sight, masking=switches.sanitize,
                        threshold=cfg.mask_threshold_tokens, keep_working=cfg.keep_read_turns,
                        keep_other=cfg.keep_output_turns, keep_calls=cfg.keep_last_turns, ratio=ratio)
        known = await _outputs(stages, msgs, (session_id, fingerprint(msgs[: head_end(msgs)])), policy,
                               session_id, result)
    if switches.compression and context_window > 0:
        await _compress(stages, cfg, body, msgs, original, session, session_id, context_window, result, known)
    result.body["messages"] = msgs
    return result


async def _outputs(
    stages: ContextStages, msgs: list[Message], key: Any, policy: Policy, session_id: str | None,
    result: StageResult,
) -> dict[int, int]:
    """First-sight forms and masks applied to `msgs`; the tokens of each tool message sent."""
    plan = stages.outputs.plan(msgs, key, policy)
    previous = {id(o): o.sent for o in plan.conversation.outputs}
    stored: set[str] = set()
    fresh: list[Any] = []
    if plan.store:
        stored, fresh = await stages.store_blocks(plan.store, source="sanitizer", session_id=session_id,
                                                  tags=["masked"])
    made = stages.outputs.commit(key, plan, stored)
    known = {slot[0]: tokens.PER_MESSAGE + out.sent_tokens() for slot, out in plan.sent if slot[1] < 0}
    if not made:
        return known
    for change in made:
        i, call = change.slot
        msgs[i] = with_text(msgs[i], change.text) if call < 0 else with_arguments(msgs[i], call, change.text)
        if change.output.id not in result.masked_ids:
            result.masked_ids.append(change.output.id)
    _account(msgs, plan, made, previous, result)
    if fresh:
        names = {c.output.id: (str(msgs[c.position].get("name") or ""), c) for c in made}
        items = [_event_item(m.id, m.original, m.tokens, *names[m.id]) for m in fresh if m.id in names]
        if items:
            stages.emit("masked", {"session_id": session_id, "items": items,
                                   "tokens": sum(i["tokens"] for i in items)})
    return known


def with_text(message: Message, text: str) -> Message:
    """The message with its content's text replaced; a list of text parts becomes one part that
    keeps the last part's other keys (a `cache_control` breakpoint stays where it was)."""
    new = dict(message)
    content = message.get("content")
    if isinstance(content, list) and content:
        new["content"] = [{**content[-1], "type": "text", "text": text}]
    else:
        new["content"] = text
    return new


def with_arguments(message: Message, number: int, arguments: str) -> Message:
    """The assistant message with tool call `number`'s arguments replaced; every other key kept."""
    calls = list(message["tool_calls"])
    call = dict(calls[number])
    call["function"] = {**call["function"], "arguments": arguments}
    calls[number] = call
    return {**message, "tool_calls": calls}


def _account(
    msgs: list[Message], plan: Plan, made: list[Change], previous: dict[int, str], result: StageResult
) -> None:
    """Saved tokens and cost by transformation and kind (see `figures`)."""
    savings = result.savings
    ratio = savings.ratio
    end = plan.cached_end
    changed_now = [c.position for c in made if c.position < end and previous.get(id(c.output)) != c.what]
    first = min(changed_now, default=end)
    sums: dict[tuple[str, str], list[float]] = {}
    for change in made:
        out = change.output
        saved = out.tokens - out.sent_tokens(change.what)
        how = "mask" if change.what == "mask" else (out.form.how if out.form else "first_sight")
        rate = ratio if change.position < first else 1.0
        found = sums.setdefault((how, out.kind), [0, 0.0])
        found[0] += saved
        found[1] += saved * rate
    for (how, kind), (saved_tokens, cost_tokens) in sums.items():
        savings.add(how, kind, int(saved_tokens), cost_tokens)
        result.saved_mask_tokens += int(saved_tokens)
    if first < end:
        outputs = {c.position: c.output for c in made}
        lost = (1 - ratio) * sum(outputs[i].tokens + tokens.PER_MESSAGE if i in outputs and outputs[i].kind != "call"
                                 else tokens.count_message(msgs[i]) + sum(
                                     c.output.tokens - c.output.sent_tokens(c.what) for c in made if c.position == i)
                                 for i in range(first, end))
        masks = [c for c in made if c.what == "mask" and previous.get(id(c.output)) != "mask"] or made
        weight = sum(max(c.output.tokens, 1) for c in masks)
        for c in masks:
            share = lost * max(c.output.tokens, 1) / weight
            savings.add("mask" if c.what == "mask" else "first_sight", c.output.kind, 0, -share)


def _event_item(mid: str, original: str, size: int, tool: str, change: Change) -> dict[str, Any]:
    first = next((line.strip() for line in original.splitlines()[:50] if line.strip()), "")
    return {"id": mid, "tokens": size, "tool": tool, "preview": first[:120], "kind": change.output.kind,
            "transform": change.what}


@dataclass
class _Frame:
    """One compression attempt's inputs."""

    stages: ContextStages
    cfg: ContextSettings
    original: list[Message]
    session_id: str | None
    budget: int
    target: int
    tools_tokens: int


def _bound(msgs: Sequence[Message], known: dict[int, int]) -> int:
    """An upper bound of the prompt's tokens without tokenizing: a token is at least one UTF-8
    byte, so at most one per ASCII character and four per other character; tool messages whose
    size the outputs stage knows count that."""
    total = tokens.REPLY_PRIMING
    for i, m in enumerate(msgs):
        found = known.get(i)
        if found is not None:
            total += found + 8
            continue
        text = tokens.content_text(m.get("content"))
        total += 8 + (len(text) if text.isascii() else 4 * len(text))
        for call in m.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            args = str(function.get("arguments", "")) if isinstance(function, dict) else str(call)
            total += 12 + (len(args) if args.isascii() else 4 * len(args))
    return total


def _count(msgs: Sequence[Message], tools_tokens: int) -> tuple[list[int], int]:
    counts = [tokens.count_message(m) for m in msgs]
    return counts, sum(counts) + tools_tokens + tokens.REPLY_PRIMING


async def _compress(
    stages: ContextStages, cfg: ContextSettings, body: Mapping[str, Any], msgs: list[Message],
    original: list[Message], session: Mapping[str, Any], session_id: str | None,
    context_window: int, result: StageResult, known: dict[int, int] | None = None,
) -> None:
    reserve = body.get("max_completion_tokens") or body.get("max_tokens") or 0
    budget = context_window - (reserve if isinstance(reserve, int) else 0)
    tools_tokens = tokens.count_tools(body.get("tools") or body.get("functions"))
    requested = bool(session.get("compress_requested")) and session_id is not None
    if (not requested and budget > 0 and not stages.compressor.has_cuts()
            and _bound(msgs, known or {}) + tools_tokens <= min(cfg.compress_at * context_window, budget)):
        return  # surely under the threshold: no need to count every message
    counts, total = _count(msgs, tools_tokens)
    if budget <= 0:
        result.error = (f"max_tokens ({reserve}) leaves no room for the prompt in the model's "
                        f"context window of {context_window} tokens: lower max_tokens")
        return
    frame = _Frame(stages, cfg, original, session_id, budget,
                   min(int(cfg.compress_at * context_window), budget), tools_tokens)
    head = head_end(msgs)
    key = (session_id, fingerprint(original[: head]))
    already = head > 0 and is_summary(msgs[head - 1])
    remembered = None if already else stages.compressor.sticky(key, original)
    # a cut taken for size is dropped once the prompt fits without it; an asked-for one stays
    sticky = remembered[0] if remembered and (remembered[1] or total > frame.target) else None
    if not requested and sticky is None and total <= frame.target:
        return
    if already and total <= budget:  # this body went through the stages before: idempotent
        if requested:
            await stages.clear_compress_request(session_id)  # type: ignore[arg-type]
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
        await stages.clear_compress_request(session_id)  # type: ignore[arg-type]
    if outcome is None:
        if total > budget:
            result.error = _too_big(total, context_window, budget)
        return
    if not already:
        asked = requested or bool(remembered and remembered[1] and outcome.cut == remembered[0])
        stages.compressor.remember(key, outcome.cut, original, asked)
    msgs[:] = outcome.messages
    result.saved_compress_tokens = outcome.saved
    result.savings.add("compress", None, outcome.saved,
                       outcome.saved * (1.0 if outcome.new else result.savings.ratio))
    if outcome.new:
        reason = "requested" if requested else ("threshold" if total <= budget else "overflow")
        stages.emit("compression", {
            "session_id": session_id, "reason": reason, "messages": outcome.cut.end - outcome.cut.start,
            "tokens_before": total, "tokens_after": total - outcome.saved, "saved_tokens": outcome.saved,
            "transcript_id": outcome.summary.transcript_id, "summary_source": outcome.summary.source,
        })


async def _try(
    frame: _Frame, msgs: list[Message], counts: list[int], total: int, cut: Cut, goal: int, *, new: bool
) -> Outcome | None:
    if estimate(counts, total, cut) + 8 > goal:
        return None
    summarize = summarizer(frame.stages, frame.cfg, frame.session_id)
    summary = await frame.stages.compressor.summary(frame.original, cut, frame.budget, summarize)
    spliced = splice(msgs, cut, summary)
    after = estimate(counts, total, cut) + tokens.count_message(spliced[cut.start])
    if after > goal:
        return None
    return Outcome(spliced, total - after, cut, summary, new)


async def _search(
    frame: _Frame, msgs: list[Message], counts: list[int], total: int, requested: bool
) -> Outcome | None:
    """The cut that keeps the most recent turns and brings the prompt under the goal."""
    cuts = frame.stages.compressor.candidates(msgs, frame.cfg.keep_last_turns)
    low = int(frame.target * HEADROOM)
    goals = [frame.budget] if requested else [low, frame.target, frame.budget]
    for goal in dict.fromkeys(goals):
        for cut in cuts:
            outcome = await _try(frame, msgs, counts, total, cut, goal, new=True)
            if outcome is not None:
                return outcome
    return None


async def _last_resort(frame: _Frame, msgs: list[Message], result: StageResult) -> Outcome | None:
    """Mask every tool output over the threshold, recent ones too, then compress again."""
    policy = Policy(first_sight=True, masking=True, threshold=frame.cfg.mask_threshold_tokens,
                    keep_working=0, keep_other=0, keep_calls=frame.cfg.keep_last_turns, ratio=1.0, forced=True)
    await _outputs(frame.stages, msgs, ("last-resort", id(msgs)), policy, frame.session_id, result)
    frame.stages.outputs.conversations.pop(("last-resort", id(msgs)))
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


__all__ = ["StageResult", "Summary", "Switches", "run", "with_text"]
