"""The passes for outputs with structure: grep results, listings, diffs, JSON arrays.

Each keeps every path, line number and matched or changed line; what goes is repetition (the
same file name on every grep line, the same directory on every path, a diff's unchanged
context, a JSON array's keys on every object). Each returns its input unchanged when it finds
nothing of its kind, so running one twice gives what running it once gave.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from kimi_mcp.context.lines import important, is_error_line, is_marker, marker

GREP = re.compile(r"^(?P<path>[^\s:]+?)(?P<sep>[:-])(?P<line>\d+)(?P=sep)(?P<text>.*)$")
PATH = re.compile(r"^(?:\./|\.\./|/)?[\w.@+-]+(?:/[\w.@+-]+)*/?$")
LONG_LINE, CLIPPED = 400, 300
DIFF_KEEP = re.compile(r"^(diff |index |--- |\+\+\+ |@@|new file|deleted file|similarity|rename |Binary )")
DIFF_CONTEXT = 1
TABLE_MIN_ROWS = 4
MAX_LISTING_LINES = 80


def _clip(line: str) -> str:
    if len(line) <= LONG_LINE or is_error_line(line):
        return line
    return f"{line[:CLIPPED]}…[+{len(line) - CLIPPED:,} chars]"


# ---- grep ---------------------------------------------------------------------------------------


def search_pass(lines: Sequence[str]) -> list[str]:
    """`path:12:text` lines of one file in a row (2 or more, none naming an error) become `path`
    and `  12: text`."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = GREP.match(lines[i])
        if match is None:
            out.append(_clip(lines[i]))
            i += 1
            continue
        path = match["path"]
        group = [match]
        j = i + 1
        while j < len(lines) and (m := GREP.match(lines[j])) is not None and m["path"] == path:
            group.append(m)
            j += 1
        if len(group) == 1 or any(is_error_line(m["text"]) for m in group):
            out += [_clip(line) for line in lines[i:j]]  # an error line is never rewritten
        else:
            out.append(f"{path}:")
            out += [_clip(f"  {m['line']}{':' if m['sep'] == ':' else '-'} {m['text']}") for m in group]
        i = j
    return out


# ---- listings -----------------------------------------------------------------------------------


def _split(path: str) -> tuple[str, str]:
    stripped = path.rstrip("/")
    head, sep, name = stripped.rpartition("/")
    return (head + sep, name + path[len(stripped):]) if sep else ("", path)


def listing_pass(lines: Sequence[str]) -> list[str]:
    """Paths of one directory in a row (3 or more) become `dir/: name  name  name`; a listing
    still longer than MAX_LISTING_LINES keeps its first 30 and last 10 lines."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if not PATH.match(line) or "/" not in line.rstrip("/"):
            out.append(lines[i])
            i += 1
            continue
        folder, name = _split(line)
        names = [name]
        j = i + 1
        while j < len(lines) and PATH.match(lines[j].strip()) and _split(lines[j].strip())[0] == folder:
            names.append(_split(lines[j].strip())[1])
            j += 1
        if len(names) >= 3:
            out.append(f"{folder}: " + "  ".join(names))
        else:
            out += lines[i:j]
        i = j
    if len(out) > MAX_LISTING_LINES and not any(is_marker(ln) for ln in out):
        keep = [ln for ln in out[30:-10] if is_error_line(ln)]
        out = [*out[:30], marker(f"{len(out) - 40 - len(keep)} more listing lines"), *keep, *out[-10:]]
    return out


# ---- diffs --------------------------------------------------------------------------------------


def diff_pass(lines: Sequence[str]) -> list[str]:
    """Unchanged context lines of a diff keep DIFF_CONTEXT lines next to each change; headers,
    hunk headers and every added or removed line stay."""
    n = len(lines)
    in_hunk = False
    context = bytearray(n)  # 1: an unchanged line inside a hunk
    for i, line in enumerate(lines):
        if line.startswith("@@"):
            in_hunk = True
        elif in_hunk and line.startswith(" "):
            context[i] = not important(line)
        elif not line.startswith(("+", "-", "\\")):
            in_hunk = False
    out: list[str] = []
    i = 0
    while i < n:
        if not context[i]:
            out.append(_clip(lines[i]))
            i += 1
            continue
        j = i
        while j < n and context[j]:
            j += 1
        run = lines[i:j]
        before = DIFF_CONTEXT if i > 0 and lines[i - 1].startswith(("+", "-")) else 0
        after = DIFF_CONTEXT if j < n and lines[j].startswith(("+", "-")) else 0
        if len(run) > before + after + 2:
            out += run[:before]
            out.append(marker(f"{len(run) - before - after} unchanged lines"))
            out += run[len(run) - after :]
        else:
            out += run
        i = j
    return out


# ---- JSON arrays --------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if isinstance(value, str) and "\n" not in value and " | " not in value and value.strip() == value:
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def table(rows: list[dict[str, Any]]) -> list[str] | None:
    """An array of objects sharing most keys as `columns: a | b` and one line of values per object
    (keys an object adds go at its end as JSON); None when the objects are not alike."""
    columns: list[str] = []
    for key in rows[0]:
        if sum(1 for r in rows if key in r) >= 0.6 * len(rows):
            columns.append(key)
    if not columns:
        return None
    out = [marker(f"JSON array of {len(rows)} objects as a table"), "columns: " + " | ".join(columns)]
    for row in rows:
        cells = [_cell(row[c]) if c in row else "" for c in columns]
        extra = {k: v for k, v in row.items() if k not in columns}
        missing = [c for c in columns if c not in row]
        if extra or missing:
            cells.append(json.dumps({"+": extra, "-": missing}, ensure_ascii=False, separators=(",", ":")))
        out.append(" | ".join(cells))
    return out


def _json_span(lines: Sequence[str]) -> tuple[int, int] | None:
    start = next((i for i, ln in enumerate(lines) if ln.lstrip()[:1] in ("[", "{")), None)
    if start is None:
        return None
    end = next((i for i in range(len(lines) - 1, start - 1, -1) if lines[i].rstrip()[-1:] in ("]", "}")), None)
    return None if end is None else (start, end + 1)


def json_pass(lines: Sequence[str]) -> list[str]:
    """A JSON array (or an object holding one) of TABLE_MIN_ROWS+ similar objects as a table."""
    span = _json_span(lines)
    if span is None:
        return list(lines)
    start, end = span
    try:
        data = json.loads("\n".join(lines[start:end]))
    except ValueError:
        return list(lines)
    rendered = _render(data)
    if rendered is None:
        return list(lines)
    return [*lines[:start], *rendered, *lines[end:]]


def _rows(value: Any) -> list[dict[str, Any]] | None:
    if isinstance(value, list) and len(value) >= TABLE_MIN_ROWS and all(isinstance(v, dict) and v for v in value):
        return value
    return None


def _render(data: Any) -> list[str] | None:
    rows = _rows(data)
    if rows is not None:
        return table(rows)
    if isinstance(data, dict):
        for key, value in data.items():
            rows = _rows(value)
            if rows is None:
                continue
            rendered = table(rows)
            if rendered is None:
                return None
            rest = {k: v for k, v in data.items() if k != key}
            head = [json.dumps(rest, ensure_ascii=False, separators=(",", ":"))] if rest else []
            return [*head, f"{json.dumps(key)}:", *rendered]
    return None


__all__ = ["diff_pass", "is_marker", "json_pass", "listing_pass", "search_pass", "table"]
