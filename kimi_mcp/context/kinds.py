"""What kind of tool output a `tool` message holds: from the call that asked for it, then its text.

The kind decides how the output is compressed at first sight and how long it stays whole:

| kind    | what                                             | first sight          | kept whole |
|---------|--------------------------------------------------|----------------------|------------|
| read    | file contents the agent reads (cat, sed -n, view)| byte-exact           | `keep_read_turns` |
| edit    | the result of an edit (str_replace, write, patch)| byte-exact           | `keep_read_turns` |
| test    | test runners (pytest, unittest, go test, jest)   | passes dropped       | `keep_output_turns` |
| build   | compilers and linters (gcc, tsc, mypy, ruff)     | progress dropped     | `keep_output_turns` |
| listing | ls, find, tree                                   | grouped by directory | `keep_output_turns` |
| search  | grep, rg, ag                                     | grouped by file      | `keep_output_turns` |
| diff    | git diff, git show, diff -u                      | context trimmed      | `keep_output_turns` |
| json    | a JSON array of similar objects                  | one table            | `keep_output_turns` |
| log     | installs, downloads, anything else               | noise dropped        | `keep_output_turns` |

A reader whose output goes to a file (`cat > repro.py << 'EOF' … EOF`) writes it: its output is
the kind of the commands after it (`python repro.py`), an edit when none follow.

Classification only reads the call's tool name and arguments and the output's first lines, so
it is a pure function of the message: the same output is always the same kind.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from typing import Any, Literal

Kind = Literal["read", "edit", "test", "build", "listing", "search", "diff", "json", "log"]
KINDS: tuple[Kind, ...] = ("read", "edit", "test", "build", "listing", "search", "diff", "json", "log")
# kinds an agent works from for several turns: they stay byte-exact while recent
WORKING_KINDS: frozenset[str] = frozenset({"read", "edit"})

_READ_TOOLS = re.compile(r"(?i)^(read|read_?file|view|view_?file|open|open_?file|cat|fs_read\w*|get_file\w*)$")
_EDIT_TOOLS = re.compile(r"(?i)(edit|write|replace|insert|patch|create|apply)")
_SEARCH_TOOLS = re.compile(r"(?i)^(grep|search\w*|rg|find_string|glob|codebase_search|fs_grep)$")
_LIST_TOOLS = re.compile(r"(?i)^(ls|list\w*|tree|glob|find_files|fs_list\w*|fs_tree)$")
_SHELL_TOOLS = re.compile(r"(?i)^(bash|shell|sh|terminal|run\w*|exec\w*|execute\w*|command|cmd)$")
_SHELL_ARGS = ("command", "cmd", "script", "input", "code")

_READ_CMDS = frozenset("cat head tail nl less more bat view".split())
_LIST_CMDS = frozenset("ls find tree du fd".split())
_SEARCH_CMDS = frozenset("grep egrep fgrep rg ag ack".split())
_BUILD_CMDS = frozenset(
    "make cmake gcc g++ cc clang javac tsc mypy ruff flake8 pylint eslint cargo go rustc mvn "
    "gradle black isort pyright".split()
)
_TEST_WORDS = re.compile(r"(?:^|[\s/])(pytest|py\.test|unittest|tox|nox|jest|vitest|mocha|runtests\.py|"
                         r"manage\.py\s+test|go\s+test|cargo\s+test|npm\s+(?:run\s+)?test|yarn\s+test)\b")
_WRAPPERS = frozenset("cd env time timeout sudo nohup xargs".split())

_TEST_TEXT = re.compile(r"(?m)^(=+ test session starts =+|Ran \d+ tests? in |=+ .*\b(passed|failed)\b.* in [\d.]+s|"
                        r"(PASS|FAIL|ok|---) +[\w./-]+|test result: )")
_BUILD_TEXT = re.compile(r"(?m)^[\w./-]+\.\w+:\d+(:\d+)?: (error|warning|note)\b|^Found \d+ errors? in \d+ files?")
_DIFF_TEXT = re.compile(r"(?m)^(diff --git |--- a/|\+\+\+ b/|@@ -\d+(,\d+)? \+\d+(,\d+)? @@)")
_GREP_LINE = re.compile(r"^[^\s:]+:\d+[:-]")
_PATH_LINE = re.compile(r"^\.{0,2}/?[\w.@+-]+(/[\w.@+ -]+)*/?$")


def call_index(messages: list[dict[str, Any]]) -> dict[str, tuple[str, dict[str, Any]]]:
    """tool_call_id -> (function name, parsed arguments) for every call in `messages`."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for m in messages:
        if m.get("role") != "assistant":
            continue
        for call in m.get("tool_calls") or ():
            if not isinstance(call, Mapping) or not isinstance(call.get("id"), str):
                continue
            function = call.get("function") or {}
            out[call["id"]] = (str(function.get("name") or ""), _arguments(function.get("arguments")))
    return out


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, Mapping):
        return dict(raw)
    if isinstance(raw, str) and raw.startswith("{"):
        try:
            parsed = json.loads(raw)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def shell_command(arguments: Mapping[str, Any]) -> str | None:
    for key in _SHELL_ARGS:
        value = arguments.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return " ".join(value)
    return None


def _words(command: str) -> list[str]:
    first = command.strip().splitlines()[0] if command.strip() else ""
    try:
        return shlex.split(first, comments=False)
    except ValueError:
        return first.split()


def command_kind(command: str) -> Kind | None:
    """The kind a shell command's output is, from its first real program (None: unknown). A
    reader whose standard output goes to a file (`cat > repro.py << 'EOF'`) writes it: the output
    is what the commands after it print (an edit's when nothing follows)."""
    if _TEST_WORDS.search(command):
        return "test"
    words = _words(command)
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("&&", ";", "||") or word in _WRAPPERS or "=" in word.split("/")[0]:
            i += 1
            if word == "cd" and i < len(words):
                i += 1  # cd's directory
            continue
        break
    if i >= len(words):
        return None
    program = words[i].rsplit("/", 1)[-1]
    rest = words[i + 1 :]
    if (program in _READ_CMDS or program == "sed") and _writes_stdout(rest):
        after = _after_writer(command, rest)
        return command_kind(after) if after.strip() else "edit"
    if "|" in rest and program not in _SEARCH_CMDS and any(w in _SEARCH_CMDS for w in rest):
        return "search"
    if program in _READ_CMDS:
        return "read"
    if program == "sed":
        return "edit" if any(w.startswith("-i") for w in rest) else "read"
    if program in _LIST_CMDS:
        return "listing"
    if program in _SEARCH_CMDS or (program == "git" and rest[:1] == ["grep"]):
        return "search"
    if program == "git" and rest[:1] and rest[0] in ("diff", "show", "log", "format-patch"):
        return "diff"
    if program in ("diff", "patch"):
        return "diff" if program == "diff" else "edit"
    if program in _BUILD_CMDS or (program in ("python", "python3") and rest[:2] in (["-m", "mypy"], ["-m", "ruff"])):
        return "build"
    if program in ("pip", "pip3", "npm", "yarn", "pnpm", "apt", "apt-get", "conda", "uv", "poetry", "curl", "wget"):
        return "log"
    return None


_SEPARATORS = frozenset(("&&", ";", "||", "|"))
_STDOUT_TO_FILE = re.compile(r"^1?>>?(?!&)")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([\w.-]+)\1")


def _writes_stdout(rest: list[str]) -> bool:
    """Whether a program's own words (up to a separator) send its standard output to a file."""
    for word in rest:
        if _STDOUT_TO_FILE.match(word):
            return True
        if word in _SEPARATORS or word.endswith(";"):
            return False
    return False


def _after_writer(command: str, rest: list[str]) -> str:
    """The commands after a writing program: after its heredoc's body when it has one, and after
    a separator on its own line."""
    lines = command.strip().splitlines()
    tail = next((" ".join(rest[k + 1 :]) for k, w in enumerate(rest)
                 if (w in _SEPARATORS and w != "|") or w.endswith(";")), "")
    heredoc = _HEREDOC.search(lines[0])
    if heredoc is None:
        return "\n".join([tail, *lines[1:]])
    end = next((k for k in range(1, len(lines)) if lines[k].strip() == heredoc.group(2)), len(lines))
    return "\n".join([tail, *lines[end + 1 :]])


def tool_kind(name: str, arguments: Mapping[str, Any]) -> Kind | None:
    """The kind from the tool call alone (None: look at the text)."""
    command = shell_command(arguments)
    if command is not None and (_SHELL_TOOLS.match(name) or not name):
        return command_kind(command)
    sub = arguments.get("command")
    if isinstance(sub, str) and name.lower() in ("str_replace_editor", "str_replace_based_edit_tool", "editor"):
        return "read" if sub == "view" else "edit"
    if _READ_TOOLS.match(name):
        return "read"
    if _SEARCH_TOOLS.match(name):
        return "search"
    if _LIST_TOOLS.match(name):
        return "listing"
    if _EDIT_TOOLS.search(name):
        return "edit"
    return None


def text_kind(text: str) -> Kind:
    """The kind from the output's text (the fallback when the call does not tell)."""
    head = text[:20_000]
    if _TEST_TEXT.search(head):
        return "test"
    if _DIFF_TEXT.search(head):
        return "diff"
    if _BUILD_TEXT.search(head):
        return "build"
    lines = [ln for ln in head.splitlines()[:200] if ln.strip()]
    if len(lines) >= 5:
        if sum(1 for ln in lines if _GREP_LINE.match(ln)) >= 0.7 * len(lines):
            return "search"
        if sum(1 for ln in lines if _PATH_LINE.match(ln.strip())) >= 0.8 * len(lines):
            return "listing"
    stripped = head.lstrip()
    if stripped[:1] in ("[", "{") and '":' in stripped[:2000]:
        return "json"
    return "log"


def classify(text: str, name: str = "", arguments: Mapping[str, Any] | None = None) -> Kind:
    """The kind of a tool output, from its call when that tells, else from its text. Output of a
    shell command that ran a test runner or grep is sniffed too: a `python x.py` may run tests."""
    found = tool_kind(name, arguments or {})
    if found in ("read", "edit", "test", "listing", "search", "diff", "build"):
        return found
    sniffed = text_kind(text)
    return found if found is not None and sniffed == "log" else sniffed


__all__ = ["KINDS", "WORKING_KINDS", "Kind", "call_index", "classify", "command_kind", "shell_command",
           "text_kind", "tool_kind"]
