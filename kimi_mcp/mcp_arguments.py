"""What clients send versus what a tool declares: arguments read by the tool's input schema,
and validation failures explained in the tool's public terms.

Clients built on agent frameworks do not all send what a schema says. Read by the schema,
in this order, at every level (top-level arguments, objects inside arrays, nested objects):

1. `null` for a property whose schema does not accept null means "not given": an optional
   property falls back to its default. A `null` for a property the tool does not have is
   dropped too (clients send `null` for every parameter they know of).
2. An empty string for an optional property that does not accept strings means "not given"
   (form-based clients send `""` for an empty field).
3. A string where the schema wants an array or an object (and not a string) is parsed as
   JSON (or as a Python literal, which some models write); the parsed value is used when it
   has the declared type.
4. A single item where the schema wants an array of such items becomes a one-item array.
5. A number where the schema wants only a string becomes its decimal text.
6. A camelCase key that names a snake_case property (`thoughtNumber` → `thought_number`)
   is renamed, unless the snake_case key is also present.

Everything else reaches the tool's validation unchanged; its failures come back through
`explain`, which names the public tool and parameter, says what was expected and what came,
and never echoes the input or pydantic's internals.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Schema = Mapping[str, Any]
_MAX_PARSE_CHARS = 1_000_000  # a string longer than this is never parsed as a literal
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")
_JSON_TYPES = {
    dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
    float: "number", type(None): "null",
}


def json_type(value: Any) -> str:
    """The JSON Schema type name of a decoded JSON value (`integer` for ints, not `number`)."""
    return _JSON_TYPES.get(type(value), "object")


def accepted_types(schema: Schema, root: Schema | None = None) -> set[str]:
    """The JSON types a schema admits; `{"any"}` when it does not constrain the type."""
    schema = _resolve(schema, root)
    if "const" in schema:
        return {json_type(schema["const"])}
    if "enum" in schema and "type" not in schema:
        return {json_type(v) for v in schema["enum"]}
    declared = schema.get("type")
    if isinstance(declared, str):
        types = {declared}
    elif isinstance(declared, list):
        types = set(declared)
    else:
        branches = list(_branches(schema))
        if not branches:
            return {"any"}
        types = set().union(*(accepted_types(b, root) for b in branches))
    if "number" in types:
        types.add("integer")
    return types


def normalize(arguments: Mapping[str, Any], schema: Schema) -> dict[str, Any]:
    """The arguments a client meant, read by the tool's input schema (rules in the module doc)."""
    return _object(dict(arguments), schema, schema)


def needs_normalizing(arguments: Mapping[str, Any], schema: Schema) -> bool:
    """A cheap check for the common case: every key known, no null, no string for a container."""
    properties = schema.get("properties") or {}
    for key, value in arguments.items():
        prop = properties.get(key)
        if prop is None or value is None or value == "" or isinstance(value, dict | list):
            return True
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            types = accepted_types(prop, schema)
            if "any" not in types and json_type(value) not in types and not (
                isinstance(value, str) and types & {"integer", "number", "boolean"}
            ):
                return True
    return False


def _object(value: dict[str, Any], schema: Schema, root: Schema) -> dict[str, Any]:
    properties: Mapping[str, Schema] = schema.get("properties") or {}
    if not properties:
        return value
    required = set(schema.get("required") or ())
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key not in properties:
            snake = _CAMEL.sub(r"_\1", key).lower()
            if snake in properties and snake not in value:
                key = snake
            elif item is None:
                continue
            else:
                out[key] = item
                continue
        prop = properties[key]
        types = accepted_types(prop, root)
        if "any" in types:
            out[key] = item
            continue
        if key not in required and (
            (item is None and "null" not in types)
            or (item == "" and "string" not in types)
        ):
            continue
        out[key] = _value(item, prop, types, root)
    return out


def _value(item: Any, schema: Schema, types: set[str], root: Schema) -> Any:
    if isinstance(item, str) and "string" not in types:
        if types & {"array", "object"}:
            parsed = _parse(item)
            if parsed is not None and json_type(parsed) in types:
                item = parsed
        elif isinstance(item, str) and not item.strip() and "null" in types:
            return None
    if isinstance(item, int | float) and not isinstance(item, bool) and types == {"string"}:
        return str(item)
    if isinstance(item, dict):
        branch = _branch_for(item, schema, "object", root)
        return _object(item, branch, root) if branch is not None else item
    if isinstance(item, list):
        branch = _branch_for(item, schema, "array", root)
        items = branch.get("items") if branch is not None else None
        if isinstance(items, Mapping):
            item_types = accepted_types(items, root)
            if "any" in item_types:
                return item
            return [_value(x, items, item_types, root) for x in item]
        return item
    if "array" in types and item is not None and json_type(item) not in types:
        branch = _branch_for([], schema, "array", root)
        items = branch.get("items") if branch is not None else None
        if isinstance(items, Mapping):
            item_types = accepted_types(items, root)
            if "any" in item_types or json_type(item) in item_types:
                return [_value(item, items, item_types, root)]
    return item


def _parse(text: str) -> Any:
    text = text.strip()
    if not text or text[0] not in "[{(" or len(text) > _MAX_PARSE_CHARS:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        parsed = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(parsed, tuple):
        parsed = list(parsed)
    try:  # only what JSON could have said
        return json.loads(json.dumps(parsed))
    except (TypeError, ValueError):
        return None


def _branch_for(value: Any, schema: Schema, kind: str, root: Schema) -> Schema | None:
    """The sub-schema (this one, or an anyOf/oneOf branch) that describes a value of `kind`;
    for objects, the branch whose constants and properties fit the value best."""
    schema = _resolve(schema, root)
    candidates = [schema] if schema.get("type") == kind or (
        kind == "object" and "properties" in schema) else []
    for branch in _branches(schema):
        branch = _resolve(branch, root)
        if kind in accepted_types(branch, root):
            nested = _branch_for(value, branch, kind, root)
            if nested is not None:
                candidates.append(nested)
    if not candidates:
        return None
    if kind != "object" or len(candidates) == 1:
        return candidates[0]
    return max(candidates, key=lambda b: _fit(value, b))


def _fit(value: Mapping[str, Any], schema: Schema) -> int:
    properties = schema.get("properties") or {}
    score = 0
    for key, prop in properties.items():
        if key in value and isinstance(prop, Mapping):
            if "const" in prop:
                score += 100 if prop["const"] == value[key] else -100
            elif "enum" in prop and len(prop["enum"]) == 1:
                score += 100 if value[key] in prop["enum"] else -100
            else:
                score += 1
    return score - sum(1 for key in value if key not in properties)


def _branches(schema: Schema) -> Iterable[Schema]:
    for key in ("anyOf", "oneOf", "allOf"):
        yield from schema.get(key) or ()


def _resolve(schema: Schema, root: Schema | None) -> Schema:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or root is None or not ref.startswith("#/"):
        return schema
    node: Any = root
    for part in ref[2:].split("/"):
        if not isinstance(node, Mapping) or part not in node:
            return schema
        node = node[part]
    return node if isinstance(node, Mapping) else schema


# ---- explaining a refusal --------------------------------------------------------------------

def explain(tool: str, schema: Schema, errors: Sequence[Mapping[str, Any]]) -> str:
    """One message for a refused call: each wrong parameter by its public path, what it must be
    (type, bounds, choices, its description) and what came; never the input itself."""
    lines: list[str] = []
    seen: set[str] = set()
    for error in errors:
        path, where = _locate(error.get("loc") or (), schema)
        if path in seen:
            continue
        seen.add(path)
        lines.append(_line(tool, path, where, error, schema))
    if not lines:
        lines.append("the arguments do not match its input schema")
    head = f"Invalid arguments for {tool}:"
    params = _parameter_list(schema)
    tail = f"{tool} takes: {params}." if params else ""
    return "\n".join([head, *(f"- {line}" for line in lines), tail]).rstrip()


def _locate(loc: Sequence[Any], schema: Schema) -> tuple[str, Schema | None]:
    """The public path of an error location (`edits[0].old_text`) and the schema there; parts
    pydantic adds for union branches and call internals are skipped."""
    node: Schema | None = schema
    path = ""
    for part in loc:
        if node is None:
            break
        nxt = _child(node, part, schema)
        if nxt is None:
            continue
        node = nxt
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path, node


def _child(node: Schema, part: Any, root: Schema) -> Schema | None:
    node = _resolve(node, root)
    for candidate in [node, *(_resolve(b, root) for b in _branches(node))]:
        if isinstance(part, int):
            items = candidate.get("items")
            if isinstance(items, Mapping):
                return items
        else:
            prop = (candidate.get("properties") or {}).get(part)
            if isinstance(prop, Mapping):
                return prop
    return None


def _line(tool: str, path: str, where: Schema | None, error: Mapping[str, Any],
          root: Schema) -> str:
    kind = str(error.get("type", ""))
    name = f"`{path}`" if path else "the arguments"
    if kind == "unexpected_keyword_argument" or kind == "extra_forbidden":
        loc = tuple(error.get("loc") or ("?",))
        parent, _ = _locate(loc[:-1], root)
        if not parent:
            return f"`{loc[-1]}` is not a parameter of {tool}; leave it out"
        return f"`{parent}` has no field `{loc[-1]}`; leave it out"

    if kind in ("missing", "missing_argument", "missing_keyword_only_argument"):
        expected = describe(where, root) if where is not None else "a value"
        return f"{name} is required: send {expected}"
    if where is None:
        return f"{name}: {_message(error)}"
    got = _got(error.get("input"), kind)
    expected = describe(where, root)
    rule = _rule(kind, error)
    default = _default_hint(where)
    return f"{name} must be {expected}{rule}; got {got}.{default}"


def describe(schema: Schema, root: Schema) -> str:
    """What a schema asks for, in words: `an integer ≥ 1`, `one of "name", "size"`, ..."""
    schema = _resolve(schema, root)
    text = _shape(schema, root)
    desc = schema.get("description")
    return f"{text} ({_sentence(desc)})" if isinstance(desc, str) and desc else text


def _shape(schema: Schema, root: Schema) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    branches = [_resolve(b, root) for b in _branches(schema)]
    if branches and "type" not in schema:
        shapes = [_shape(b, root) for b in branches if b.get("type") != "null"]
        return " or ".join(dict.fromkeys(shapes)) or "null"
    types = schema.get("type")
    type_list = [types] if isinstance(types, str) else list(types or [])
    parts = [_type_words(t, schema, root) for t in type_list if t != "null"]
    return " or ".join(parts) if parts else "a value"


def _type_words(kind: str, schema: Schema, root: Schema) -> str:
    bounds = _bounds(schema)
    if kind == "integer":
        return "an integer" + bounds
    if kind == "number":
        return "a number" + bounds
    if kind == "boolean":
        return "true or false"
    if kind == "string":
        return "a string" + _length(schema, "minLength", "maxLength", "characters")
    if kind == "array":
        items = schema.get("items")
        inner = ""
        if isinstance(items, Mapping):
            inner = " of " + _plural(_shape(_resolve(items, root), root))
        return "an array" + inner + _length(schema, "minItems", "maxItems", "items")
    if kind == "object":
        props = list(schema.get("properties") or {})
        required = [p for p in props if p in set(schema.get("required") or ())]
        if props:
            keys = ", ".join(f"`{p}`" for p in required or props)
            return f"an object with {keys}"
        return "an object"
    return f"a {kind}"


def _plural(shape: str) -> str:
    for single, many in (("an integer", "integers"), ("a number", "numbers"),
                         ("a string", "strings"), ("an object", "objects"),
                         ("an array", "arrays")):
        if shape.startswith(single):
            return many + shape[len(single):]
    return shape


def _bounds(schema: Schema) -> str:
    marks = [("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"),
             ("exclusiveMaximum", "<")]
    found = [f"{sign} {schema[key]}" for key, sign in marks if key in schema]
    return " " + " and ".join(found) if found else ""


def _length(schema: Schema, low: str, high: str, unit: str) -> str:
    lo, hi = schema.get(low), schema.get(high)
    if lo is not None and hi is not None:
        return f" of {lo} to {hi} {unit}"
    if lo:
        return f" of at least {lo} {unit}"
    if hi is not None:
        return f" of at most {hi} {unit}"
    return ""


def _rule(kind: str, error: Mapping[str, Any]) -> str:
    if kind == "value_error" or kind == "assertion_error":
        return f" ({_message(error)})"
    if kind.startswith("string_pattern"):
        return " matching the expected pattern"
    return ""


def _default_hint(schema: Schema) -> str:
    if "default" not in schema:
        return ""
    return f" Leave it out for the default ({json.dumps(schema['default'])})."


def _got(value: Any, kind: str) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and abs(value) < 1e15:
        return f"{value}"
    if isinstance(value, str):
        if len(value) <= 24 and "\n" not in value:
            return f"the string {json.dumps(value)}"
        return f"a string of {len(value):,} characters"
    if isinstance(value, list):
        return f"an array of {len(value)} item{'' if len(value) == 1 else 's'}"
    if isinstance(value, dict):
        keys = ", ".join(f"`{k}`" for k in list(value)[:6])
        return f"an object with {keys}" if keys else "an empty object"
    return "a value of another type"


def _message(error: Mapping[str, Any]) -> str:
    msg = str(error.get("msg", "")).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return msg or "invalid value"


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 160 else text[:157] + "…"


def _parameter_list(schema: Schema) -> str:
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    names = [f"{p} (required)" if p in required else p for p in properties]
    return ", ".join(names)
