"""Making the summary of a compressed stretch: deterministic, or by `[context] summary_model`.

The compressed messages are first stored byte-exact as one transcript (a memory with a
content-addressed id `c-…`, tagged `compressed`), so compression loses nothing either: the
summary names the id to read it back with `memory_get`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio

from kimi_mcp import tokens
from kimi_mcp.context.compress import Summarize, Summary
from kimi_mcp.context.conversation import SUMMARY_TAG, Message
from kimi_mcp.context.sanitizer import Masked
from kimi_mcp.context.summary import Digest, digest, render, transcript
from kimi_mcp.errors import KimiError

if TYPE_CHECKING:
    from kimi_mcp.config import ContextSettings
    from kimi_mcp.context.stages import ContextStages

log = logging.getLogger(__name__)
# Stored like masked blocks: consolidation never merges `sanitizer` memories, so a
# transcript stays byte-exact under its id (tagged `compressed` to tell them apart).
TRANSCRIPT_SOURCE = "sanitizer"
MODEL_TIMEOUT_S = 60
MODEL_INPUT_CHARS = 48_000
_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"summary": {"type": "string"}},
    "required": ["summary"],
}
_INSTRUCTION = (
    "You compress the middle of a coding agent's conversation so the agent can carry on. "
    "Write a dense summary: the task, the tool calls made and their outcome, the files touched, "
    "the errors seen, the decisions stated and what remains to do. Keep exact names, paths, ids "
    'and numbers. Answer with a JSON object {"summary": "..."}.'
)


def transcript_id(text: str) -> str:
    return "c-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def summarizer(stages: ContextStages, cfg: ContextSettings, session_id: str | None) -> Summarize:
    async def summarize(middle: Sequence[Message], budget: int) -> Summary:
        text = transcript(middle)
        tid = transcript_id(text)
        size = sum(tokens.count_message(m) for m in middle)
        ok, _ = await stages.store_blocks(
            [Masked(tid, text, "", size)], source=TRANSCRIPT_SOURCE, session_id=session_id,
            tags=["compressed"],
        )
        stored = tid if tid in ok else None
        d = digest(middle)
        if cfg.summary_model:
            found = await _by_model(stages, cfg.summary_model, middle, d, len(middle), size, stored, budget)
            if found is not None:
                return found
        return Summary(render(d, count=len(middle), size=size, transcript_id=stored, budget=budget),
                       stored, "deterministic")

    return summarize


def _envelope(body: str, count: int, size: int, tid: str | None) -> str:
    lines = [f'{SUMMARY_TAG} messages="{count}" tokens="{size}" source="model">',
             f"kimi-mcp compressed {count} earlier messages ({size:,} tokens) of this conversation "
             "into this summary."]
    if tid:
        lines.append(f'The full transcript is stored: call the memory_get tool with ids ["{tid}"] to read it.')
    lines += [body.strip(), "</conversation-summary>"]
    return "\n".join(lines)


def _model_input(middle: Sequence[Message], d: Digest) -> str:
    facts = render(d, count=len(middle), size=0, transcript_id=None, budget=2000)
    parts = []
    for m in middle:
        text = tokens.content_text(m.get("content"))
        calls = " ".join(str((c.get("function") or {}).get("name", "")) + str(
            (c.get("function") or {}).get("arguments", ""))[:300] for c in m.get("tool_calls") or ())
        parts.append(f"[{m.get('role')}] {text[:2000]} {calls}".strip())
    joined = "\n".join(parts)
    if len(joined) > MODEL_INPUT_CHARS:
        half = MODEL_INPUT_CHARS // 2
        joined = joined[:half] + "\n[…]\n" + joined[-half:]
    return f"Extracted facts:\n{facts}\n\nConversation:\n{joined}"


async def _by_model(
    stages: ContextStages, model_ref: str, middle: Sequence[Message], d: Digest, count: int, size: int,
    tid: str | None, budget: int,
) -> Summary | None:
    if stages.completions is None:
        log.warning("summary_model is set but this build has no model service: deterministic summary")
        return None
    messages = [{"role": "system", "content": _INSTRUCTION},
                {"role": "user", "content": _model_input(middle, d)}]
    try:
        with anyio.fail_after(MODEL_TIMEOUT_S):
            answer = await stages.completions.complete_json(model_ref, messages, _SCHEMA,
                                                            purpose="context_summary")
    except (KimiError, TimeoutError) as exc:  # the deterministic summary is used instead
        log.warning("summary_model %s failed (%s): deterministic summary", model_ref, exc)
        return None
    text = _envelope(str(answer.get("summary", "")), count, size, tid)
    if not answer.get("summary") or tokens.count_text(text) > budget:
        log.warning("summary_model %s gave an empty or too long summary: deterministic summary", model_ref)
        return None
    return Summary(text, tid, "model")
