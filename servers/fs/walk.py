"""Fast directory walking: scandir on descriptors, early pruning, globs as one regex, .gitignore.

Walks start from a directory descriptor the workspace verified and descend with `subdir`
(`O_NOFOLLOW | O_DIRECTORY`), so a walk cannot leave the directory it started in, even when a
directory is swapped for a symlink while it runs. Hot loops work on strings and DirEntry
objects only; a walk holds one descriptor per level it is in, never one per directory seen.
`.gitignore` files are read only when they are regular files (never through a link, as git).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import pathspec

from kimi_mcp.errors import WorkspaceError
from kimi_mcp.workspace import Workspace, listdir, read_at, subdir

_GITIGNORE_BYTES = 1 << 20
DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".git",
    ".hg",
    ".svn",
    "node_modules",
    ".venv",
    "venv",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".tox",
    ".nox",
    ".idea",
    ".DS_Store",
)


_STAR, _GLOBSTAR = "[^/]*", ".*"
_WILD = (_STAR, _GLOBSTAR, "(?:.*/)?")
GLOB_MATCH_SECONDS = 0.25  # per match, for the rare pattern that could backtrack for ages


def _glob_tokens(pattern: str) -> tuple[list[str], bool]:
    """The regex pieces of a glob (`*`, `**`, `?`, `[...]`, `{a,b}`), and whether it has braces."""
    out: list[str] = []
    i, n = 0, len(pattern)
    depth = 0
    braces = False
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(_GLOBSTAR)
            i += 2
            continue
        if c == "*":
            out.append(_STAR)
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        elif c == "{":
            out.append("(?:")
            depth += 1
            braces = True
        elif c == "}" and depth:
            out.append(")")
            depth -= 1
        elif c == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(c))
        i += 1
    out.append(")" * depth)
    return out, braces


def glob_regex(pattern: str) -> str:
    """Translate a glob (`*`, `**`, `?`, `[...]`, `{a,b}`) into a regex matched on `/` paths."""
    return "".join(_glob_tokens(pattern)[0])


def bounded_glob_regex(pattern: str) -> tuple[str, bool]:
    """The regex of a glob, and whether stdlib `re` matches it in near-linear time.

    `re` holds the GIL while it matches, so only a glob whose cost is provably small may run
    on it; the rest is reported unbounded and matched by `regex` under a time limit. Braces
    are alternation, which backtracks exponentially (`{?,?,?,?}` repeated then `Z`): always
    unbounded. Without braces every token but a wildcard has a fixed width, so what counts is
    the wildcards: one of any kind, or one crossing `/` (`**`) and one within a segment, cost
    at most a path's length times a name's. Only `*` (all within segments) are rewritten as
    fnmatch does: each interior `*fixed` becomes an atomic lazy group `(?>[^/]*?fixed)`, exact
    because every piece between stars has a fixed width and a star cannot leave its segment.
    """
    tokens, braces = _glob_tokens(pattern)
    stars = [i for i, t in enumerate(tokens) if t in _WILD]
    if braces:
        return "".join(tokens), False
    crossing = sum(tokens[i] != _STAR for i in stars)
    if len(stars) <= 1 or (len(stars) == 2 and crossing == 1):
        return "".join(tokens), True
    if crossing:
        return "".join(tokens), False
    out = tokens[: stars[0]]
    for index, at in enumerate(stars):
        end = stars[index + 1] if index + 1 < len(stars) else len(tokens)
        fixed = "".join(tokens[at + 1 : end])
        if index + 1 < len(stars) and fixed:
            out.append(f"(?>{_STAR}?{fixed})")
        else:
            out.append(_STAR + fixed)
    return "".join(out), True


class _TimedPattern:
    """A pattern run by the `regex` module under a per-match time limit (`regex` releases
    the GIL while it matches; `re` holds it, so one slow `re` match stops every thread)."""

    def __init__(self, source: str, shown: str, *, why: str = "") -> None:
        import regex

        self._pattern = regex.compile(source, regex.DOTALL)
        self.pattern = source  # what pathspec's re2/hyperscan backends read
        self._shown = shown
        self._why = why or (
            f"The glob {shown!r} is too costly to match (many wildcards and braces "
            "against long names); simplify it"
        )

    def match(self, text: str) -> object | None:
        return self._timed(self._pattern.match, text)

    def search(self, text: str) -> object | None:
        return self._timed(self._pattern.search, text)

    def _timed(self, method: Callable[..., object | None], text: str) -> object | None:
        try:
            return method(text, timeout=GLOB_MATCH_SECONDS)
        except TimeoutError:
            raise WorkspaceError(self._why) from None


Matcher = re.Pattern[str] | _TimedPattern


def compile_glob(source: str, bounded: bool, shown: str) -> Matcher:
    import regex

    try:
        if bounded:
            return re.compile(source, re.DOTALL)
        return _TimedPattern(source, shown)
    except (re.error, regex.error, ValueError, OverflowError, RecursionError) as exc:
        why = "braces nest too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise WorkspaceError(
            f"The glob {shown!r} is not valid ({why}); use `*`, `**`, `?`, `[a-z]` and "
            "`{a,b}` with balanced brackets and braces"
        ) from None


@dataclass
class Glob:
    """A glob: without `/` it matches a name at any depth, with `/` the path from the top."""

    pattern: str
    by_name: bool = field(init=False)
    regex: Matcher = field(init=False)

    def __post_init__(self) -> None:
        self.by_name = "/" not in self.pattern.strip("/")
        source, bounded = bounded_glob_regex(self.pattern.strip("/"))
        self.regex = compile_glob(source + r"\Z", bounded, self.pattern)

    def matches(self, name: str, rel: str) -> bool:
        return self.regex.match(name if self.by_name else rel) is not None


class Excluder:
    """Exclude patterns, compiled into one name regex and one path regex."""

    def __init__(self, patterns: Sequence[str], defaults: bool = True) -> None:
        names = set(DEFAULT_EXCLUDES) if defaults else set()
        name_globs: list[str] = []
        path_globs: list[str] = []
        bounded = True
        for raw in patterns:
            pattern = raw.strip().strip("/")
            if not pattern:
                continue
            source, fast = bounded_glob_regex(pattern)
            bounded = bounded and fast
            if "/" in pattern:
                path_globs.append(source + r"(?:/.*)?")
            elif any(ch in pattern for ch in "*?[{"):
                name_globs.append(source)
            else:
                names.add(pattern)
        self.names = frozenset(names)
        shown = ", ".join(patterns)
        self._name_re = _union(name_globs, bounded, shown)
        self._path_re = _union(path_globs, bounded, shown)
        self.names_only = self._name_re is None and self._path_re is None

    def excluded(self, name: str, rel: str) -> bool:
        if name in self.names:
            return True
        if self._name_re is not None and self._name_re.match(name):
            return True
        return self._path_re is not None and self._path_re.match(rel) is not None


def _union(parts: list[str], bounded: bool, shown: str) -> Matcher | None:
    if not parts:
        return None
    return compile_glob("(?:" + "|".join(parts) + r")\Z", bounded, shown)


class GitIgnore:
    """The .gitignore files met on the way down, each applying below its own directory."""

    def __init__(self) -> None:
        # (base: where the rules apply below, shift: prepended to paths under base, rules)
        self._specs: list[tuple[str, str, pathspec.GitIgnoreSpec]] = []

    def load(self, dir_fd: int, base: str, shift: str = "") -> None:
        """Add the rules of the `.gitignore` in the open directory `dir_fd`, if it is a
        regular file of at most 1 MB (a link, a pipe or a huge file is not read)."""
        try:
            handle = read_at(dir_fd, ".gitignore", ".gitignore")
        except WorkspaceError:
            return
        if handle is None:
            return
        with handle:
            data = handle.read(_GITIGNORE_BYTES)
        lines = data.decode("utf-8", errors="replace").splitlines()
        spec = pathspec.GitIgnoreSpec.from_lines(lines)
        for rule in spec.patterns:
            _bound_gitignore_rule(rule, f"{base}.gitignore")
        self._specs.append((base, shift, spec))

    def child(self) -> GitIgnore:
        copy = GitIgnore()
        copy._specs = list(self._specs)
        return copy

    def ignored(self, rel: str, is_dir: bool) -> bool:
        for base, shift, spec in self._specs:
            if base and not rel.startswith(base):
                continue
            sub = shift + rel[len(base) :]
            if spec.match_file(sub + "/" if is_dir else sub):
                return True
        return False

    def __bool__(self) -> bool:
        return bool(self._specs)


def _bound_gitignore_rule(rule: pathspec.Pattern, where: str) -> None:
    """A rule with more than two `*` (the only token that backtracks) matches under the glob
    time limit; the others keep pathspec's own compiled `re`. The file comes with the
    repository, not from the caller, so a costly rule is named with its file."""
    source = getattr(rule, "pattern", None)
    compiled = getattr(rule, "regex", None)
    if not isinstance(source, str) or compiled is None or source.count("*") <= 2:
        return
    rule.regex = _TimedPattern(  # type: ignore[attr-defined]
        compiled.pattern, source,
        why=f"The rule {source!r} of {where} is too costly to match against long names "
        "(many wildcards); simplify it, or pass respect_gitignore=false where the tool has it",
    )


@dataclass
class WalkOptions:
    excluder: Excluder
    gitignore: GitIgnore | None = None
    max_depth: int | None = None
    show_hidden: bool = True


def _listing(
    dir_fd: int, prefix: str, ignore: GitIgnore | None, options: WalkOptions, ordered: bool
) -> tuple[list[tuple[os.DirEntry[str], str, bool]], GitIgnore | None]:
    """The visible entries of one open directory as (entry, rel, is_dir), and the ignore rules
    that apply below it: excluded names and patterns, hidden files and .gitignore are filtered
    here."""
    try:
        entries = listdir(dir_fd)
    except OSError:
        return [], ignore
    if ordered:
        entries.sort(key=_name)
    if ignore is not None and any(e.name == ".gitignore" for e in entries):
        ignore = ignore.child()
        ignore.load(dir_fd, prefix)
    check = ignore.ignored if ignore else None
    names = options.excluder.names
    patterns = None if options.excluder.names_only else options.excluder.excluded
    hidden = options.show_hidden
    visible = []
    for entry in entries:
        name = entry.name
        if name in names or (not hidden and name[0] == "."):
            continue
        rel = prefix + name
        if patterns is not None and patterns(name, rel):
            continue
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            continue
        if check is not None and check(rel, is_dir):
            continue
        visible.append((entry, rel, is_dir))
    return visible, ignore


Walked = tuple[os.DirEntry[str], str, bool, int]


def walk(top_fd: int, options: WalkOptions) -> Iterator[Walked]:
    """Yield (entry, path relative to top, is_dir, descriptor of the entry's directory),
    depth-first, pruning excluded dirs early. `top_fd` stays the caller's; the descriptor
    yielded is valid until the walk moves on."""
    visible, ignore = _listing(top_fd, "", options.gitignore, options, ordered=False)
    stack: list[tuple[int, int, Iterator[tuple[os.DirEntry[str], str, bool]], GitIgnore | None]]
    stack = [(top_fd, 0, iter(visible), ignore)]
    max_depth = options.max_depth
    try:
        while stack:
            fd, depth, items, ignore = stack[-1]
            descend = max_depth is None or depth + 1 < max_depth
            # siblings run in this plain loop; entering a directory pushes it and breaks out,
            # and the parent's iterator resumes where it was once the child is done
            for entry, rel, is_dir in items:
                yield entry, rel, is_dir, fd
                if is_dir and descend:
                    try:
                        child = subdir(fd, entry.name)
                    except WorkspaceError:
                        continue  # swapped for a link, removed or unreadable: not entered
                    below, child_ignore = _listing(child, rel + "/", ignore, options, False)
                    stack.append((child, depth + 1, iter(below), child_ignore))
                    break
            else:
                stack.pop()
                if fd != top_fd:
                    os.close(fd)
    finally:
        for fd, *_ in stack:
            if fd != top_fd:
                os.close(fd)


def _name(entry: os.DirEntry[str]) -> str:
    return entry.name


@dataclass
class Tree:
    lines: list[str] = field(default_factory=list)
    files: int = 0
    dirs: int = 0
    truncated: bool = False


def tree(top_fd: int, options: WalkOptions, max_entries: int) -> Tree:
    """An indented outline (directories end with `/`), depth-first in name order."""
    out = Tree()
    _tree(top_fd, "", 0, options.gitignore, options, max_entries, out)
    return out


def _tree(
    dir_fd: int,
    prefix: str,
    depth: int,
    ignore: GitIgnore | None,
    options: WalkOptions,
    max_entries: int,
    out: Tree,
) -> None:
    visible, ignore = _listing(dir_fd, prefix, ignore, options, ordered=True)
    descend = options.max_depth is None or depth + 1 < options.max_depth
    indent = "  " * depth
    lines = out.lines
    for entry, rel, is_dir in visible:
        if out.files + out.dirs >= max_entries:
            out.truncated = True
            return
        if is_dir:
            out.dirs += 1
            lines.append(indent + entry.name + "/")
            if descend:
                try:
                    child = subdir(dir_fd, entry.name)
                except WorkspaceError:
                    continue
                try:
                    _tree(child, rel + "/", depth + 1, ignore, options, max_entries, out)
                finally:
                    os.close(child)
                if out.truncated:
                    return
        else:
            out.files += 1
            lines.append(indent + entry.name)


def gitignore_for(ws: Workspace, top: str, root: str) -> GitIgnore:
    """The .gitignore files of `top`'s ancestors up to the workspace root, as seen from `top`
    (both canonical paths)."""
    ignore = GitIgnore()
    if top != root and top.startswith(root.rstrip(os.sep) + os.sep):
        current = root
        parts = top[len(root.rstrip(os.sep)) + 1 :].split(os.sep)
        for index in range(len(parts)):
            below = "/".join(parts[index:]) + "/"
            try:
                with ws.open_dir(current) as fd:
                    ignore.load(fd, "", below)
            except WorkspaceError:
                break
            current = os.path.join(current, parts[index])
    return ignore
