"""Continue.dev's records, line by line, as `Call`s.

Three shapes, each as Continue's source writes it (continuedev/continue):

- `dev_data/0.2.0/tokensGenerated.jsonl` — one JSON object per line, written by
  `core/data/log.ts` (`DataLogger.logLocalData`) with the fields of
  `packages/config-yaml/src/schemas/data/tokensGenerated/index.ts`: `model`, `provider`,
  `promptTokens`, `generatedTokens`, plus the base fields (`eventName`, `schema`, `createdAt` or
  `timestamp`, `userAgent`, ...). The counts come from `_logEnd` in `core/llm/index.ts`, which runs
  Continue's own tokenizer (`countTokens`) over prompt and completion: they are estimates, not the
  provider's usage.
- The prompt/completion log blocks of `core/llm/logFormatter.ts` (`LLMLogFormatter`): every line is
  a one-character interaction prefix (" ", "|", "&", "%", "#", "X"), a ten-character time column
  (`HH:MM:SS.d` UTC at an interaction's start, `+0.2` relative later, blanks otherwise), a space,
  then `[Chat]` / `[Complete]` / `[Fim]`, `Options: {...}` (JSON holding `"model"`), the messages,
  and at the end `Success` / `Error` / `Cancelled` followed by `Prompt Tokens: N` and
  `Generated Tokens: N`.
- `core.log` console lines from `binary/src/logging.ts` (`setupCoreLogging`):
  `[2025-01-31T12:00:00] message`; API failures carry the message built in `core/llm/index.ts`'s
  fetch wrapper: `HTTP 429 Too Many Requests from https://host/v1/chat/completions`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from kimi_mcp.errors import KimiError


class Unparseable(KimiError, ValueError):
    """A line that looks like one of Continue's records but cannot be read."""


@dataclass
class Call:
    created_at: float
    model: str = ""
    provider: str = ""
    prompt_tokens: int | None = None
    generated_tokens: int | None = None
    status: str = "ok"  # ok | error | cancelled
    http_status: int | None = None
    error: str | None = None
    origin: str = "dev_data"  # dev_data | prompt_log | core_log
    url: str | None = None


# ---- tokensGenerated.jsonl ----------------------------------------------------------------------

def parse_timestamp(value: Any) -> float | None:
    """ISO 8601 (with or without zone; naive means UTC) or UNIX seconds/milliseconds."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) / 1000 if value > 1e11 else float(value)
    if isinstance(value, str) and value:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp()
    return None


def parse_devdata(line: str, now: float) -> Call | None:
    """One line of tokensGenerated.jsonl; None for a blank line or another event's record."""
    if not line.strip():
        return None
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise Unparseable(f"not JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise Unparseable("not a JSON object")
    if data.get("eventName", "tokensGenerated") != "tokensGenerated":
        return None
    prompt: Any = data.get("promptTokens")
    generated: Any = data.get("generatedTokens")
    if not _is_count(prompt) or not _is_count(generated) or not isinstance(data.get("model"), str):
        raise Unparseable("tokensGenerated record without model, promptTokens, generatedTokens")
    when = parse_timestamp(data.get("createdAt")) or parse_timestamp(data.get("timestamp")) or now
    return Call(created_at=when, model=data["model"], provider=str(data.get("provider") or ""),
                prompt_tokens=int(prompt), generated_tokens=int(generated), origin="dev_data")


def _is_count(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


# ---- core.log / prompt.log ----------------------------------------------------------------------

_CONSOLE = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z?)\]\s?(.*)$")
_HTTP_ERROR = re.compile(r"HTTP (\d{3}) ([^\n]*?) from (\S+)")
_ABSOLUTE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d)$")
_RELATIVE = re.compile(r"^\s*\+\d+\.\d$")
_PREFIXES = frozenset(" |&%#X")
_MODEL = re.compile(r'^\s*"model":\s*"((?:[^"\\]|\\.)*)"')
_ENDS = {"Success": "ok", "Error": "error", "Cancelled": "cancelled"}
_STARTS = ("[Chat]", "[Complete]", "[Fim]")


@dataclass
class _Interaction:
    started_at: float
    model: str = ""
    in_options: bool = False
    status: str | None = None
    prompt_tokens: int | None = None


@dataclass
class LogParser:
    """Stateful reader of one log file's lines (interactions interleave, keyed by prefix)."""

    now: float = 0.0
    reference: datetime | None = None  # the last full date-time seen (console lines), for HH:MM:SS
    open: dict[str, _Interaction] = field(default_factory=dict)

    def feed(self, line: str, now: float) -> Call | None:
        self.now = now
        if not line.strip():
            return None
        console = _CONSOLE.match(line)
        if console:
            return self._console(console.group(1), console.group(2))
        if len(line) >= 12 and line[0] in _PREFIXES and line[11] == " ":
            column, body = line[1:11], line[12:]
            if _ABSOLUTE.match(column) or _RELATIVE.match(column) or not column.strip():
                return self._formatter(line[0], column, body)
        return None  # message continuation lines, stack traces, other output: not a record

    def _console(self, stamp: str, message: str) -> Call | None:
        when = parse_timestamp(stamp) or self.now
        self.reference = datetime.fromtimestamp(when, UTC)
        found = _HTTP_ERROR.search(message)
        if not found:
            return None
        url = found.group(3)
        return Call(created_at=when, provider=urlsplit(url).hostname or "", status="error",
                    http_status=int(found.group(1)), origin="core_log", url=url,
                    error=message[found.start():].strip()[:2000])

    def _formatter(self, prefix: str, column: str, body: str) -> Call | None:
        absolute = _ABSOLUTE.match(column)
        if absolute and body.startswith(_STARTS):
            self.open[prefix] = _Interaction(self._time_of_day(absolute), in_options=True)
            return None
        current = self.open.get(prefix)
        if current is None or body.startswith(("| ", ". ")):
            return None  # message text ("| ...", wrapped ". ...") is never structure
        if current.in_options:
            model = _MODEL.match(body)
            if model and not current.model:
                current.model = json.loads(f'"{model.group(1)}"')
            if body.startswith(("Role: ", "Prompt:", "Prefix:")):
                current.in_options = False
        if body in _ENDS:
            current.status = _ENDS[body]
        elif current.status and body.startswith("Prompt Tokens: "):
            current.prompt_tokens = _count(body, "Prompt Tokens: ")
        elif current.status and body.startswith("Generated Tokens: "):
            del self.open[prefix]
            return Call(created_at=current.started_at, model=current.model,
                        prompt_tokens=current.prompt_tokens,
                        generated_tokens=_count(body, "Generated Tokens: "),
                        status=current.status, origin="prompt_log")
        return None

    def _time_of_day(self, match: re.Match[str]) -> float:
        """HH:MM:SS.d (UTC, no date) placed on the reference day, or today, never in the future."""
        base = self.reference or datetime.fromtimestamp(self.now, UTC)
        hours, minutes, seconds, tenths = (int(g) for g in match.groups())
        when = base.replace(hour=hours, minute=minutes, second=seconds, microsecond=tenths * 100_000)
        if when.timestamp() > max(self.now, base.timestamp()) + 3600:
            when -= timedelta(days=1)
        elif self.reference is not None and when < self.reference - timedelta(hours=12):
            when += timedelta(days=1)  # the clock passed midnight since the reference line
        return when.timestamp()


def _count(body: str, label: str) -> int:
    try:
        return int(body[len(label):].strip())
    except ValueError:
        raise Unparseable(f"bad token count: {body[:80]!r}") from None
