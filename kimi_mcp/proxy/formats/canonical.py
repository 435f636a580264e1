"""The canonical request and answer every adapter translates to and from, and what they share.

The canonical request is an OpenAI chat-completions body (`messages`, `tools`, `tool_choice`,
`max_tokens`, `stop`, `stream`...). Fields chat has no name for travel as extension keys:

    cache_control      on content parts and tools (Anthropic's breakpoints, kept where they were)
    reasoning_content  the assistant's reasoning text (Moonshot's and DeepSeek's chat field)
    thinking_blocks    Anthropic `thinking` / `redacted_thinking` blocks with their signatures
    kimi_origin        top level: {"format", "body"} — the client's original request, so a
                       provider speaking the client's own format gets it back unchanged;
                       on messages: which original message (and block) each one came from

The canonical answer is an OpenAI `chat.completion` (non-streamed) or a sequence of
`chat.completion.chunk` dicts (streamed). `kimi_origin` never reaches an OpenAI-format or Gemini
provider (`without_origin`); the other extension keys are what those providers accept.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

ORIGIN = "kimi_origin"
Body = dict[str, Any]

# OpenAI finish reasons <-> Anthropic stop reasons
TO_STOP_REASON = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                  "function_call": "tool_use", "content_filter": "refusal"}
FROM_STOP_REASON = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                    "tool_use": "tool_calls", "refusal": "content_filter", "pause_turn": "stop",
                    "model_context_window_exceeded": "length"}


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def origin(body: Body, fmt: str) -> dict[str, Any] | None:
    """`{"body": the client's original request, "messages": the canonical messages first made
    of it}` when `body` was translated from `fmt`, else None."""
    found = body.get(ORIGIN)
    if isinstance(found, dict) and found.get("format") == fmt and isinstance(found.get("body"), dict):
        return found
    return None


def without_origin(body: Body) -> Body:
    """The body without `kimi_origin` keys (top level and messages); untouched when it has none."""
    if ORIGIN not in body:
        return body
    out = {k: v for k, v in body.items() if k != ORIGIN}
    messages = out.get("messages")
    if isinstance(messages, list):
        out["messages"] = [{k: v for k, v in m.items() if k != ORIGIN}
                           if isinstance(m, dict) and ORIGIN in m else m for m in messages]
    return out


def dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def sse(event: str, data: Any) -> bytes:
    """One named server-sent event (Anthropic's and the Responses API's framing)."""
    return b"event: " + event.encode() + b"\ndata: " + dumps(data) + b"\n\n"


def loads_object(raw: Any) -> dict[str, Any]:
    """Tool-call arguments as an object (a model's broken JSON is kept under `value`)."""
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except (TypeError, ValueError):
        return {"value": raw}
    return value if isinstance(value, dict) else {"value": value}


def text_of(content: Any) -> str:
    """The text of a chat content (a string, or the text parts of a list)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content
                       if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


# ---- usage ----------------------------------------------------------------------------------------


def _n(data: Any, key: str) -> int:
    value = data.get(key) if isinstance(data, dict) else None
    return int(value) if isinstance(value, int | float) else 0


def cached_of(usage: dict[str, Any]) -> int:
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int | float):
        return int(details["cached_tokens"])
    return _n(usage, "cached_tokens")


def usage_from_anthropic(usage: dict[str, Any]) -> dict[str, Any]:
    """Anthropic `usage` (input excludes cache reads and writes) as OpenAI `usage`."""
    read = _n(usage, "cache_read_input_tokens")
    write = _n(usage, "cache_creation_input_tokens")
    prompt = _n(usage, "input_tokens") + read + write
    completion = _n(usage, "output_tokens")
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion}
    if read or write:
        out["prompt_tokens_details"] = {"cached_tokens": read, "cache_creation_tokens": write}
    return out


def usage_to_anthropic(usage: dict[str, Any] | None) -> dict[str, Any]:
    usage = usage or {}
    cached = cached_of(usage)
    details = usage.get("prompt_tokens_details")
    write = _n(details, "cache_creation_tokens")
    return {"input_tokens": max(0, _n(usage, "prompt_tokens") - cached - write),
            "cache_creation_input_tokens": write, "cache_read_input_tokens": cached,
            "output_tokens": _n(usage, "completion_tokens")}


def usage_to_responses(usage: dict[str, Any] | None) -> dict[str, Any]:
    usage = usage or {}
    prompt, completion = _n(usage, "prompt_tokens"), _n(usage, "completion_tokens")
    reasoning = _n(usage.get("completion_tokens_details"), "reasoning_tokens")
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached_of(usage)},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": _n(usage, "total_tokens") or prompt + completion}


def first_choice(data: dict[str, Any]) -> dict[str, Any]:
    """The first choice of a chat completion or chunk; {} when it has none."""
    choices = data.get("choices") or ()
    return choices[0] if choices and isinstance(choices[0], dict) else {}


def reasoning_text(message: dict[str, Any]) -> str:
    """A message's or delta's reasoning under either name providers use (`reasoning_content`,
    `reasoning`); "" when it has none."""
    value = message.get("reasoning_content") or message.get("reasoning")
    return value if isinstance(value, str) else ""


def chunk_usage(chunk: dict[str, Any]) -> dict[str, Any] | None:
    """The usage a chunk carries: top level, or inside its first choice (Moonshot)."""
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        return usage
    for choice in chunk.get("choices") or ():
        if isinstance(choice, dict) and isinstance(choice.get("usage"), dict):
            return dict(choice["usage"])
    return None
