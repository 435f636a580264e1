"""The deterministic summary of a compressed stretch of conversation.

It keeps what an agent needs to carry on: what the user said, the tool calls made and their
outcome, the files touched, the errors seen and the decisions stated. It is a pure function
of the messages, so the same stretch always gives the same bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kimi_mcp import tokens
from kimi_mcp.context.conversation import SUMMARY_TAG, TOOL_ROLES, Message
from kimi_mcp.context.sanitizer import placeholder_id

_ERROR = re.compile(
    r"(?i)(?:error|exception)\b|\b(?:traceback|failed|failure|not found|no such file|denied|"
    r"invalid|cannot)\b"
)
_SIZE = re.compile(r"([\d,]+) tokens")
# a relative path starts only where a run of path characters does (linear on `a-a-a…`)
_PATH = re.compile(
    r"(?<![\w@./-])(?:[\w.-]+/)*[\w-][\w.-]*\.[A-Za-z][A-Za-z0-9]{0,7}\b|(?:/[\w.-]+){2,}"
)
_EXTS = frozenset(
    "py pyi js ts tsx jsx md json toml yaml yml txt c h cc cpp hpp rs go java kt rb sh cfg ini "
    "html css scss sql lock xml csv ipynb php swift".split()
)
_DECISION = re.compile(r"(?i)\b(i will|i'll|let's|let me|we need|i need|should|decid|plan|instead|fix)")
_FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.S)


@dataclass
class Digest:
    user: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _add(items: list[str], value: str) -> None:
    if value and value not in items:
        items.append(value)


def _files(text: str, files: list[str]) -> None:
    for match in _PATH.finditer(text):
        path = match.group(0)
        if "/" in path or path.rsplit(".", 1)[-1].lower() in _EXTS:
            _add(files, path)


def outcome(text: str) -> str:
    mid = placeholder_id(text)
    if mid is not None:
        size = _SIZE.search(text)
        return f"masked output {mid} ({size.group(1) if size else '?'} tokens)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if _ERROR.search(line):
            return "error: " + _clip(line, 120)
    return "ok: " + _clip(lines[0], 100) if lines else "ok (no output)"


def _errors(text: str, errors: list[str]) -> None:
    if placeholder_id(text) is not None:
        return
    for line in text.splitlines():
        if _ERROR.search(line):
            _add(errors, _clip(line.strip(), 160))


def _decision(text: str, decisions: list[str]) -> None:
    first = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]
    if _DECISION.search(first):
        _add(decisions, _clip(first, 200))


def _call_text(call: Mapping[str, Any]) -> tuple[str, str]:
    function = call.get("function") or {}
    name = str(function.get("name", "?"))
    args = str(function.get("arguments", ""))
    return name, args


def digest(messages: Sequence[Message]) -> Digest:
    d = Digest()
    pending: dict[str, str] = {}  # tool_call_id -> "name args"
    legacy: str | None = None  # a command an assistant wrote in a fenced block (older agents)
    for m in messages:
        role = m.get("role")
        text = tokens.content_text(m.get("content"))
        if role == "assistant":
            if text:
                _decision(text, d.decisions)
            legacy = None
            for call in m.get("tool_calls") or ():
                name, args = _call_text(call)
                _files(args, d.files)
                pending[str(call.get("id"))] = f"{name} {_clip(args, 120)}".strip()
            if not m.get("tool_calls") and text:
                blocks = _FENCE.findall(text)
                if blocks and blocks[-1].strip():
                    legacy = _clip(blocks[-1].strip().splitlines()[0], 120)
                    _files(blocks[-1], d.files)
        elif role in TOOL_ROLES:
            call_text = pending.pop(str(m.get("tool_call_id")), None) or str(m.get("name") or "tool")
            d.calls.append(f"{call_text} → {outcome(text)}")
            _errors(text, d.errors)
        elif role == "user":
            if legacy is not None:
                d.calls.append(f"{legacy} → {outcome(text)}")
                _errors(text, d.errors)
                legacy = None
            elif not text.startswith(SUMMARY_TAG):
                _add(d.user, _clip(text, 300))
    return d


def _section(title: str, items: list[str], cap: int) -> list[str]:
    if not items:
        return []
    shown = items[-cap:]
    more = f" ({len(items)}, the last {len(shown)} shown)" if len(shown) < len(items) else ""
    return [f"{title}{more}:", *(f"- {item}" for item in shown)]


def render(
    d: Digest, *, count: int, size: int, transcript_id: str | None, budget: int
) -> str:
    """The summary text, trimmed until it is within `budget` tokens (or as small as it gets)."""
    cap = 40
    while True:
        lines = [
            f'{SUMMARY_TAG} messages="{count}" tokens="{size}">',
            f"kimi-mcp compressed {count} earlier messages ({size:,} tokens) of this conversation "
            "into this summary.",
        ]
        if transcript_id:
            lines.append(
                f'The full transcript is stored: call the memory_get tool with ids ["{transcript_id}"] '
                "to read it."
            )
        lines += _section("User said", d.user, cap)
        lines += _section("Tool calls made and their outcome", d.calls, cap)
        if d.files:
            shown = d.files[-cap * 2 :]
            lines.append("Files touched: " + ", ".join(shown))
        lines += _section("Errors seen", d.errors, max(cap // 2, 1))
        lines += _section("Decisions stated", d.decisions, max(cap // 2, 1))
        lines.append("</conversation-summary>")
        text = "\n".join(lines)
        if cap <= 1 or tokens.count_text(text) <= budget:
            return text
        cap //= 2


def transcript(messages: Sequence[Message]) -> str:
    """The compressed messages exactly, as JSON (what the stored transcript holds)."""
    return json.dumps(list(messages), ensure_ascii=False, indent=1)
