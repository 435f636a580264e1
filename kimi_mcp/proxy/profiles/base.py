"""The `Profile` dataclass: one provider's wire quirks as data, and the functions that apply them.

Everything a profile changes is a rule a provider publishes or a failure its users reported;
each preset in `presets.py` names its sources. `prepare` copies what it changes: the client's
body (kept for the ledger's estimate) is never edited in place.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from kimi_mcp.tokens import ImageRule, openai_image_tokens

# where a provider puts usage: top-level `usage`, `choices[0].usage` (Moonshot), `x_groq.usage` (Groq)
UsageAt = Literal["usage", "choice", "x_groq"]
IdRule = Callable[[str], str]
Wire = Literal["openai", "gemini", "anthropic"]
OPENAI_FINISH = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})


def _frozen(**items: str) -> Mapping[str, str]:
    return MappingProxyType(dict(items))


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    wire: Wire = "openai"
    # -- usage: where it lives in streams and bodies, first found wins
    usage_at: tuple[UsageAt, ...] = ("usage",)
    stream_usage_option: bool = True  # accepts stream_options.include_usage
    # -- the request: what the provider rejects or names otherwise
    drop_params: tuple[str, ...] = ()  # the default of providers.<name>.drop_params
    rename_params: Mapping[str, str] = field(default_factory=_frozen)
    drop_history_fields: tuple[str, ...] = ()  # keys removed from assistant messages
    empty_tool_call_content: bool = False  # `content: null` beside tool_calls sent as ""
    name_on_tool_only: bool = False  # `name` removed from every message but tool results
    tool_call_id: IdRule | None = None  # rewrites ids the provider would refuse
    # -- the answer
    finish_reasons: Mapping[str, str] = field(default_factory=_frozen)  # the provider's -> OpenAI's
    error_finish: frozenset[str] = frozenset({"error"})
    image_tokens: ImageRule = openai_image_tokens
    retry_after: str = "Retry-After in seconds"  # the form of its rate-limit wait, for the docs
    normalises: str = ""  # the README's "what kimi-mcp normalises" column

    @property
    def rewrites_request(self) -> bool:
        return bool(self.rename_params or self.drop_history_fields or self.empty_tool_call_content
                    or self.tool_call_id or self.name_on_tool_only)

    # ---- the request ------------------------------------------------------------------------

    def prepare(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The OpenAI-format body this provider accepts: renamed fields (a renamed field never
        overwrites one the client set), assistant history without the fields it rejects,
        `content: ""` beside tool calls, tool-call ids rewritten by `tool_call_id` (the same id
        always gives the same new id, in `tool_calls[].id` and `tool_call_id` alike).
        `payload` is a copy at the top level; messages are copied only where they change."""
        if not self.rewrites_request:
            return payload
        for old, new in self.rename_params.items():
            if old in payload:
                value = payload.pop(old)
                payload.setdefault(new, value)
        if (self.drop_history_fields or self.empty_tool_call_content or self.tool_call_id
                or self.name_on_tool_only):
            messages = payload.get("messages")
            if isinstance(messages, list):
                payload["messages"] = [self._message(m) if isinstance(m, dict) else m
                                       for m in messages]
        return payload

    def _message(self, message: dict[str, Any]) -> dict[str, Any]:
        role = message.get("role")
        out = message
        if self.name_on_tool_only and role != "tool" and "name" in message:
            out = {k: v for k, v in message.items() if k != "name"}
        if role == "assistant":
            if any(k in out for k in self.drop_history_fields):
                out = {k: v for k, v in out.items() if k not in self.drop_history_fields}
            calls = out.get("tool_calls")
            if calls and self.empty_tool_call_content and out.get("content") is None:
                out = {**out, "content": ""}
            if calls and self.tool_call_id is not None and isinstance(calls, list):
                rule = self.tool_call_id
                out = {**out, "tool_calls": [
                    {**c, "id": rule(str(c["id"]))} if isinstance(c, dict) and c.get("id") else c
                    for c in calls]}
        elif role == "tool" and self.tool_call_id is not None and message.get("tool_call_id"):
            out = {**message, "tool_call_id": self.tool_call_id(str(message["tool_call_id"]))}
        return out

    # ---- the answer -------------------------------------------------------------------------

    def usage(self, data: Any) -> dict[str, Any] | None:
        """The usage a chunk or a whole answer carries, wherever this provider puts it, in
        OpenAI's shape: cached tokens also under `prompt_tokens_details.cached_tokens`."""
        if not isinstance(data, dict):
            return None
        for place in self.usage_at:
            found = _usage_at(data, place)
            if found is not None:
                return _normalised(found)
        return None

    def finish(self, reason: str) -> str | None:
        """The provider's finish reason as OpenAI's; None when it reports an error."""
        if reason in self.error_finish:
            return None
        return self.finish_reasons.get(reason, reason)

    def rewrite_finish(self, raw: bytes) -> bytes:
        """Raw JSON (an answer, or SSE events) with this provider's own finish reasons written
        as OpenAI's, by byte replacement (no parse on the relay's path)."""
        for theirs, ours in self.finish_reasons.items():
            needle = b'"' + theirs.encode() + b'"'
            if needle in raw:
                target = b'"' + ours.encode() + b'"'
                for colon in (b'"finish_reason":', b'"finish_reason": '):
                    raw = raw.replace(colon + needle, colon + target)
        return raw

    def stream_error(self, data: Any) -> str | None:
        """The message of an in-band error a chunk (or an answer) carries: an `error` object,
        or a finish reason that means one (OpenRouter's `"error"`); None when there is none."""
        if not isinstance(data, dict):
            return None
        error = data.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error.get("code") or "unknown error")
        if isinstance(error, str) and error:
            return error
        for choice in data.get("choices") or ():
            if isinstance(choice, dict) and choice.get("finish_reason") in self.error_finish:
                return f"finish_reason {choice['finish_reason']!r}"
        return None


def _usage_at(data: dict[str, Any], place: UsageAt) -> dict[str, Any] | None:
    if place == "usage":
        found = data.get("usage")
    elif place == "choice":
        choices = data.get("choices")
        found = choices[0].get("usage") if isinstance(choices, list) and choices \
            and isinstance(choices[0], dict) else None
    else:
        extra = data.get("x_groq")
        found = extra.get("usage") if isinstance(extra, dict) else None
    return found if isinstance(found, dict) and found.get("prompt_tokens") is not None else None


def _normalised(usage: dict[str, Any]) -> dict[str, Any]:
    cached = usage.get("cached_tokens")
    if cached is None:
        cached = usage.get("prompt_cache_hit_tokens")  # DeepSeek's name, served by SiliconFlow
    details = usage.get("prompt_tokens_details")
    if isinstance(cached, int) and not (isinstance(details, dict) and "cached_tokens" in details):
        usage = {**usage, "prompt_tokens_details": {**(details if isinstance(details, dict) else {}),
                                                    "cached_tokens": cached}}
    return usage


_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def alnum_id(length: int) -> IdRule:
    """A rule that keeps ids already `^[a-zA-Z0-9]{length}$` and maps any other id to `length`
    base-62 characters of its BLAKE2b digest (deterministic: a prompt cache sees the same text)."""
    ok = re.compile(rf"[a-zA-Z0-9]{{{length}}}")

    def rule(original: str) -> str:
        if ok.fullmatch(original):
            return original
        number = int.from_bytes(hashlib.blake2b(original.encode(), digest_size=16).digest(), "big")
        chars = []
        for _ in range(length):
            number, digit = divmod(number, 62)
            chars.append(_ID_ALPHABET[digit])
        return "".join(chars)

    return rule
