"""JSONPath for the json tools: RFC 9535 queries, normalized paths and bounded regexes.

The rules, in order:

1. An expression is an RFC 9535 JSONPath query, parsed and run by `jsonpath-rfc9535` in one
   environment; surrounding whitespace is ignored and compiled queries are cached by text.
2. A syntax error names the parameter, the position and the reason. When the query uses a
   form of the older jsonpath_ng dialect (`=~`, `&`, `|`, `=`, `and`, `` `len` ``, no leading
   `$`, ...), the message also says what RFC 9535 form to write instead.
3. `match()` and `search()` take I-Regexp patterns (RFC 9485) and run on the `regex` module
   under a CPU-time budget (the unit of `regex`'s own timeout): at most REGEX_CALL_S seconds
   for one value and REGEX_QUERY_S for all the calls of one query, so a pattern that
   backtracks catastrophically ends the query with an error instead of holding a worker.
   A pattern that is not I-Regexp is an error too (RFC 9535 would let it match nothing,
   which hides the mistake).
4. Every match is (location, value): the location is the member names and array indices
   from the root, rendered as an RFC 9535 normalized path (`$['a'][0]`, section 2.7).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

import regex
from iregexp_check import check as is_iregexp
from jsonpath_rfc9535 import (
    JSONPathEnvironment,
    JSONPathError,
    JSONPathQuery,
    JSONPathRecursionError,
)
from jsonpath_rfc9535.function_extensions import ExpressionType, FilterFunction

# the library's own I-Regexp to `regex` translation (`.` excludes \r as well as \n);
# pinned with the library (<2), and test_jsonq_paths covers it
from jsonpath_rfc9535.function_extensions._pattern import map_re
from jsonpath_rfc9535.segments import JSONPathChildSegment
from jsonpath_rfc9535.selectors import NameSelector
from jsonpath_rfc9535.serialize import canonical_string

from .engine import JsonError, gc_paused

Segment = str | int
Parts = tuple[Segment, ...]
Hit = tuple[Parts, Any]

REGEX_CALL_S = 0.5  # CPU seconds; a sane pattern takes microseconds on one JSON string
REGEX_QUERY_S = 2.0
MAX_DEPTH = 256  # nesting the descendant segment (`..`) may walk; the library's default is 100

EXAMPLES = (
    "$.users[0].name, $..id, $.users[?@.age > 30 && @.active == true].name, "
    "$.users[?search(@.email, 'example[.]com')]"
)

# ---- normalized paths -----------------------------------------------------------------------


def render(parts: Sequence[Segment | None]) -> str:
    """The normalized path of `parts`; None renders as `[*]` (outline patterns)."""
    out = ["$"]
    for part in parts:
        if part is None:
            out.append("[*]")
        elif isinstance(part, int):
            out.append(f"[{part}]")
        else:
            out.append(f"[{canonical_string(part)}]")
    return "".join(out)


# ---- compiling ------------------------------------------------------------------------------


def compile_path(expression: str, param: str = "expression") -> JSONPathQuery:
    """The compiled query; a JsonError naming `param` when it is not RFC 9535 JSONPath."""
    text = expression.strip()
    if not text:
        raise JsonError(f"`{param}` is empty; use '$' for the whole document")
    try:
        return _compiled(text)
    except JSONPathError as exc:
        raise JsonError(_explain(text, exc, param)) from None
    except RecursionError:
        raise JsonError(f"`{param}` is nested too deeply to parse; simplify it") from None


@lru_cache(maxsize=256)
def _compiled(text: str) -> JSONPathQuery:
    return _environment().compile(text)


def split_last_name(query: JSONPathQuery) -> tuple[JSONPathQuery, str] | None:
    """`$.a.b` as (`$.a`, 'b') when the query ends in one name selector, else None."""
    if not query.segments:
        return None
    last = query.segments[-1]
    if type(last) is not JSONPathChildSegment or len(last.selectors) != 1:
        return None
    selector = last.selectors[0]
    if not isinstance(selector, NameSelector):
        return None
    return JSONPathQuery(env=query.env, segments=query.segments[:-1]), selector.name


_STRINGS = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_OLD_FORMS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"^[^$]"),
        "a query starts at the root: $.users[0].name ('@' only inside a filter)",
    ),
    (
        re.compile(r"=~"),
        "a regex test is a function: match(@.name, 'ab.*') for the whole string, "
        "search(@.name, 'ab') for any part",
    ),
    (
        re.compile(r"`\w*`"),
        "JSONPath selects values and does not compute them (`len`, `keys`): inside a "
        "filter use length(@.tags) or count(@.*); for the length of an array or the keys "
        "of an object use the structure tool, or query $.obj.* with result_type='path'",
    ),
    (re.compile(r"\blen\s*\("), "the length function is length(...)"),
    (re.compile(r"(?<!&)&(?!&)|\band\b"), "'and' is && (e.g. [?@.a > 1 && @.b == 'x'])"),
    (
        re.compile(r"(?<!\|)\|(?!\|)|\bor\b"),
        "'or' is || inside a filter; to select several members use one bracket: $['a','b']",
    ),
    (re.compile(r"\bnot\b"), "'not' is ! (e.g. [?!@.done])"),
    (re.compile(r"(?<![=!<>])=(?![=~])"), "equality is == (and inequality !=)"),
    (re.compile(r"\bin\b"), "there is no 'in': write [?@.x == 1 || @.x == 2]"),
    (
        re.compile(r"\b(?:True|False|None|Null|NULL|TRUE|FALSE)\b"),
        "the literals are lowercase: true, false, null",
    ),
    (
        re.compile(r"\.[A-Za-z_]\w*-"),
        "a member name with characters other than letters, digits and _ goes in brackets: "
        "$['my-key']",
    ),
)


def _explain(text: str, exc: JSONPathError, param: str) -> str:
    reason = str(exc.args[0]) if exc.args else type(exc).__name__
    where = f" at character {exc.token.index + 1}" if exc.token is not None else ""
    bare = _STRINGS.sub("''", text)
    hints = [hint for pattern, hint in _OLD_FORMS if pattern.search(bare)]
    advice = f" RFC 9535 form: {'; '.join(hints)}." if hints else ""
    return f"Invalid JSONPath in `{param}`{where}: {reason}.{advice} Examples: {EXAMPLES}"


# ---- evaluating -----------------------------------------------------------------------------


def find(value: Any, expression: str, param: str = "expression") -> list[Hit]:
    return evaluate(compile_path(expression, param), value, param)


def evaluate(query: JSONPathQuery, value: Any, param: str = "expression") -> list[Hit]:
    """Every match of `query` in document order as (location, value)."""
    token = _regex_spent.set([0.0])
    try:
        with gc_paused():
            return [(node.location, node.value) for node in query.finditer(value)]
    except (JSONPathRecursionError, RecursionError):
        raise JsonError(
            f"The document is nested more than {MAX_DEPTH} levels deep where `{param}` "
            "descends with '..'; start the descent lower, e.g. $.a.b..name"
        ) from None
    except JSONPathError as exc:
        raise JsonError(f"`{param}` failed on this document: {exc.args[0]}") from None
    finally:
        _regex_spent.reset(token)


# ---- match() and search() under a CPU budget -----------------------------------------------

# CPU seconds the current query has spent in match()/search(); unset outside `evaluate`
_regex_spent: ContextVar[list[float] | None] = ContextVar("jsonq_regex_spent", default=None)


@lru_cache(maxsize=256)
def _pattern(pattern: str, function: str) -> Any:
    if not is_iregexp(pattern):
        raise JsonError(
            f"{function}(): {pattern!r} is not an I-Regexp (RFC 9485), the regex form RFC "
            r"9535 filters take: write [0-9] for \d, [A-Za-z0-9_] for \w, [ \t\n\r] for \s; "
            "no lookaround, lazy quantifiers, (?:...) groups or backreferences"
        )
    return regex.compile(map_re(pattern))


class _BoundedRegex(FilterFunction):
    """RFC 9535 `match()`: the whole string matches the pattern."""

    name = "match"

    @property
    def arg_types(self) -> list[ExpressionType]:
        return [ExpressionType.VALUE, ExpressionType.VALUE]

    @property
    def return_type(self) -> ExpressionType:
        return ExpressionType.LOGICAL

    def __call__(self, value: object, pattern: object) -> bool:
        if not isinstance(value, str) or not isinstance(pattern, str):
            return False
        compiled = _pattern(pattern, self.name)
        spent = _regex_spent.get() or [0.0]
        budget = min(REGEX_CALL_S, REGEX_QUERY_S - spent[0])
        started = time.thread_time()
        try:
            if budget <= 0:
                raise TimeoutError
            return self.run(compiled, value, budget)
        except TimeoutError:
            raise JsonError(
                f"{self.name}() gave up on {pattern!r}: it backtracks catastrophically on "
                f"this document (over {REGEX_CALL_S:g} s of CPU for one value or "
                f"{REGEX_QUERY_S:g} s in all). Avoid nested or overlapping repetition such as "
                "(a+)+ or (a|aa)+"
            ) from None
        finally:
            spent[0] += time.thread_time() - started

    def run(self, compiled: Any, value: str, timeout: float) -> bool:
        return compiled.fullmatch(value, timeout=timeout) is not None


class _BoundedSearch(_BoundedRegex):
    """RFC 9535 `search()`: some part of the string matches the pattern."""

    name = "search"

    def run(self, compiled: Any, value: str, timeout: float) -> bool:
        return compiled.search(value, timeout=timeout) is not None


class _Environment(JSONPathEnvironment):
    max_recursion_depth = MAX_DEPTH

    def setup_function_extensions(self) -> None:
        super().setup_function_extensions()
        self.function_extensions["match"] = _BoundedRegex()
        self.function_extensions["search"] = _BoundedSearch()


@lru_cache(maxsize=1)
def _environment() -> _Environment:
    return _Environment()
