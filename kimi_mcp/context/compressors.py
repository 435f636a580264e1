"""Content-aware compression of one tool output, by kind: what the model needs stays, noise goes.

Rules, in the order they run (each a pure function of the text, so the result is byte-stable):

1. Terminal noise goes for every kind but `read`/`edit`: ANSI escape sequences, what a carriage
   return overwrote, progress bars; a line repeated 3+ times in a row is kept once with a count.
2. The kind's own pass: passing tests (`test`), build progress (`build`), grep matches grouped
   under their file (`search`), paths grouped under their directory (`listing`), unchanged
   context of a diff (`diff`), a JSON array of similar objects as one table (`json`), runs of
   lines of the same shape (`log`, `test`, `build`).
3. Long outputs keep their first and last lines, every line that names an error, failure,
   warning or a source location (with two lines of context), and lose the runs in between.

What is dropped becomes a marker line `[… what …]`. Error lines (`is_error_line`) are never
dropped: a run of identical ones is kept once with its count. Applying a compressor to its own
output returns it unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from kimi_mcp.context.lines import important, is_error_line, is_marker, marker
from kimi_mcp.context.structured import diff_pass, json_pass, listing_pass, search_pass

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][A-Z0-9]")
SUMMARY = re.compile(r"(?i)^(=+ .* =+|-+|ran \d+ tests?.*|ok|failed \(.*\)|test result: .*|\d+ (passed|failed).*)$")
PROGRESS = re.compile(r"\d{1,3}(?:\.\d+)?%\s*\|.*\||[█▉▊▋▌▍▎▏━]{4,}|\[[=#>.\- ]{8,}\]|^\s*[.#]{20,}\s*$")
PASS_LINE = re.compile(
    r"::\S+ PASSED\b|\.\.\. ok\s*$|^--- PASS: |^=== (?:RUN|PAUSE|CONT) |^\s*[✓✔√] |^PASS\s|^ok\s+\S+"
    r"|^\S+\.py [.sxX]+\s*(?:\[\s*\d+%\])?$"
)
BUILD_PROGRESS = re.compile(r"^\s*(?:Compiling|Checking|Building|Downloaded|Downloading|Fresh|CC|CXX|LD|AR)\s|"
                            r"^\[\s*\d+%\]\s")
SHAPE_WORD = re.compile(r"\d+")
HEAD, TAIL, CONTEXT, MIN_RUN, MIN_LINES = 8, 8, 2, 5, 40
SIMILAR_RUN = 8


# ---- 1. terminal noise --------------------------------------------------------------------------


def clean_lines(text: str) -> list[str]:
    """The text's lines without ANSI codes, overwritten carriage-return segments and progress bars;
    identical lines in a row (3 or more) kept once with a count."""
    if "\x1b" in text:
        text = ANSI.sub("", text)
    lines = []
    for line in text.split("\n"):
        if "\r" in line:
            line = line.rstrip("\r")
            line = line.rsplit("\r", 1)[-1]
        lines.append(line)
    lines = _drop(lines, lambda ln: PROGRESS.search(ln) is not None and not is_error_line(ln), "progress lines")
    return collapse_repeats(lines)


def collapse_repeats(lines: Sequence[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        j = i
        while j + 1 < len(lines) and lines[j + 1] == lines[i]:
            j += 1
        count = j - i + 1
        if count >= 3 and lines[i].strip():
            out += [lines[i], marker(f"the line above repeated {count - 1} more times")]
        else:
            out += lines[i : j + 1]
        i = j + 1
    return out


def _drop(lines: Sequence[str], drop: Callable[[str], bool], what: str, min_run: int = 1) -> list[str]:
    """Runs of `min_run`+ lines matching `drop` become one marker naming how many went."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not drop(lines[i]):
            out.append(lines[i])
            i += 1
            continue
        j = i
        while j < len(lines) and drop(lines[j]):
            j += 1
        if j - i >= min_run:
            out.append(marker(f"{j - i} {what}"))
        else:
            out += lines[i:j]
        i = j
    return out


# ---- 2. the kinds' own passes -------------------------------------------------------------------


def shape(line: str) -> str:
    words = line.split(None, 2)
    return " ".join(SHAPE_WORD.sub("#", w) for w in words[:2]) if len(words) >= 2 else ""


def similar_runs(lines: Sequence[str]) -> list[str]:
    """Runs of SIMILAR_RUN+ lines of one shape (their first two words, digits aside) keep their
    first two and last line; the error lines in them all stay."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        key = shape(lines[i])
        j = i + 1
        while key and j < len(lines) and shape(lines[j]) == key and not is_marker(lines[j]):
            j += 1
        if key and j - i >= SIMILAR_RUN and not is_marker(lines[i]):
            middle = lines[i + 2 : j - 1]
            errors = [ln for ln in middle if is_error_line(ln)]
            if len(middle) - len(errors) < 3:
                out += lines[i:j]
                i = j
                continue
            out += lines[i : i + 2]
            out.append(marker(f"{len(middle) - len(errors)} similar lines"))
            out += errors
            out.append(lines[j - 1])
        else:
            out += lines[i:j]
        i = j
    return out


def test_pass(lines: Sequence[str]) -> list[str]:
    return _drop(lines, lambda ln: PASS_LINE.search(ln) is not None and not is_error_line(ln), "passing tests")


def build_pass(lines: Sequence[str]) -> list[str]:
    return _drop(lines, lambda ln: BUILD_PROGRESS.search(ln) is not None and not is_error_line(ln),
                 "build progress lines", min_run=2)


# ---- 3. long outputs ----------------------------------------------------------------------------


def elide(lines: Sequence[str], *, head: int = HEAD, tail: int = TAIL, min_lines: int = MIN_LINES) -> list[str]:
    """Keep the first and last lines and every important line with its context; runs of
    MIN_RUN+ other lines become a marker."""
    n = len(lines)
    if n <= min_lines:
        return list(lines)
    keep = bytearray(n)
    keep[: min(head, n)] = b"\x01" * min(head, n)
    keep[max(0, n - tail) :] = b"\x01" * (n - max(0, n - tail))
    for i, line in enumerate(lines):
        if important(line) or SUMMARY.match(line.strip()):
            lo, hi = max(0, i - CONTEXT), min(n, i + CONTEXT + 1)
            keep[lo:hi] = b"\x01" * (hi - lo)
    out: list[str] = []
    i = 0
    while i < n:
        if keep[i]:
            out.append(lines[i])
            i += 1
            continue
        j = i
        while j < n and not keep[j]:
            j += 1
        out += [marker(f"{j - i} lines")] if j - i >= MIN_RUN else lines[i:j]
        i = j
    return out


Pass = Callable[[Sequence[str]], list[str]]
PASSES: dict[str, tuple[Pass, ...]] = {
    "test": (test_pass, similar_runs, elide),
    "build": (build_pass, similar_runs, elide),
    "log": (similar_runs, elide),
    "search": (search_pass,),
    "listing": (listing_pass,),
    "diff": (diff_pass,),
    "json": (json_pass,),
}


def compress(kind: str, text: str) -> str:
    """The compressed text of a tool output of `kind` (the text itself for `read` and `edit`)."""
    passes = PASSES.get(kind)
    if passes is None:
        return text
    lines = clean_lines(text)
    for step in passes:
        lines = step(lines)
    return "\n".join(collapse_repeats(lines))  # lines a pass made identical (clipped ones)


__all__ = ["PASSES", "clean_lines", "compress", "elide", "similar_runs"]
