"""Changes to a parsed JSON document, and how to write it back in the style it was read."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from .engine import JsonError, preview, type_name
from .paths import Parts, Segment, compile_path, evaluate, find, render, split_last_name

# ---- updates --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Style:
    """How a file was written, so a rewrite keeps its look."""

    indent: int | str | None = 2
    separators: tuple[str, str] = (",", ": ")
    ensure_ascii: bool = False
    newline: bool = True
    bom: bool = False
    crlf: bool = False

    @classmethod
    def detect(cls, text: str) -> Style:
        head = text[:65536]
        ascii_only = head.isascii() and "\\u" in head
        newline = text.endswith("\n")
        bom = text.startswith("\ufeff")
        crlf = "\r\n" in head
        indented = re.search(r"\n([ \t]+)[^\s]", head)
        if indented:
            unit = indented.group(1)
            indent: int | str = "\t" if unit.startswith("\t") else len(unit)
            return cls(indent, (",", ": "), ascii_only, newline, bom, crlf)
        if "\n" in text.strip():
            return cls(0, (",", ": "), ascii_only, newline, bom, crlf)
        key_sep = ": " if re.search(r'":\s', head) else ":"
        item_sep = ", " if re.search(r",\s", head) else ","
        return cls(None, (item_sep, key_sep), ascii_only, newline, bom)

    def dump(self, value: Any) -> str:
        text = json.dumps(
            value, indent=self.indent, separators=self.separators, ensure_ascii=self.ensure_ascii
        )
        text = ("\ufeff" if self.bom else "") + text + ("\n" if self.newline else "")
        # raw newlines occur only between tokens: JSON strings escape theirs
        return text.replace("\n", "\r\n") if self.crlf else text


class Change(BaseModel):
    path: str
    action: Literal["set", "created", "deleted", "appended"]
    before: str | None = Field(default=None, description="Old value as JSON (shortened)")
    after: str | None = Field(default=None, description="New value as JSON (shortened)")


def _parent(doc: Any, parts: Sequence[Segment]) -> Any:
    node = doc
    for part in parts[:-1]:
        node = node[part]
    return node


def _creatable(expression: str, doc: Any) -> list[tuple[Parts, str]]:
    """Where `set` may add a missing key: `<parent query>.<name>` with object parents."""
    split = split_last_name(compile_path(expression))
    if split is None:
        return []
    parent, name = split
    return [
        (parts, name)
        for parts, found in evaluate(parent, doc)
        if isinstance(found, dict) and name not in found
    ]


def _create(doc: Any, expression: str, operation: str, value: Any) -> list[Change]:
    changes = []
    for parts, name in _creatable(expression, doc):
        new = value if operation == "set" else [value]
        _parent(doc, [*parts, name])[name] = new
        changes.append(Change(path=render([*parts, name]), action="created", after=preview(new)))
    if not changes:
        raise JsonError(
            f"{expression!r} matched nothing and has no parent object to add it to; check the "
            "path with the query tool (result_type='path')"
        )
    return changes


def _change_one(doc: Any, parts: Parts, operation: str, value: Any) -> Change:
    if operation == "delete":
        if not parts:
            raise JsonError("Cannot delete the root '$'; set it to {} or [] instead")
        parent = _parent(doc, parts)
        old = parent[parts[-1]]
        del parent[parts[-1]]
        return Change(path=render(parts), action="deleted", before=preview(old))
    target = _parent(doc, parts)[parts[-1]] if parts else doc
    if operation == "append":
        if not isinstance(target, list):
            raise JsonError(
                f"append needs an array but {render(parts)} is {type_name(target)}; "
                "use operation='set' with a key path instead"
            )
        target.append(value)
        where = render([*parts, len(target) - 1])
        return Change(path=where, action="appended", after=preview(value))
    if parts:
        _parent(doc, parts)[parts[-1]] = value
    return Change(path=render(parts), action="set", before=preview(target), after=preview(value))


def apply_update(doc: Any, expression: str, operation: str, value: Any) -> tuple[Any, list[Change]]:
    """Apply the operation in place (`set` on '$' replaces the root); return the new root."""
    located = {parts for parts, _value in find(doc, expression)}
    if not located:
        return doc, _create(doc, expression, operation, value) if operation != "delete" else []
    if () in located and operation == "set":
        return value, [Change(path="$", action="set", before=preview(doc), after=preview(value))]
    # deepest and highest indices first, so earlier removals do not shift later ones
    changes = [_change_one(doc, parts, operation, value) for parts in sorted(located, reverse=True)]
    changes.reverse()
    return doc, changes
