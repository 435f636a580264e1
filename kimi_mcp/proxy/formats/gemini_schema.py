"""JSON Schema (MCP tools, pydantic models) -> the OpenAPI-subset `Schema` Gemini accepts.

Why `parameters` and not `parametersJsonSchema`: the JSON-Schema field exists only on the
v1beta Gemini API and newer models, and even there Google documents a subset whose edges move
per model; the `Schema` object is accepted by every Gemini model on both the Gemini API and
Vertex AI. So tool parameters are converted, by these rules in order:

1. `$ref` (`#/$defs/X`, `#/definitions/X`) is replaced by what it names; a reference met again
   inside itself (a recursive model) becomes `{"type": "object"}` with the name in its
   description, since Gemini's schemas cannot recurse. `allOf` is merged into one schema.
2. `type: [..., "null"]`, `anyOf`/`oneOf` with a `{"type": "null"}` branch and `null` in an
   `enum` become `nullable: true`; a single remaining branch is merged in, several stay `anyOf`.
3. `const` becomes an `enum` of one; enums of strings stay enums; enums of other values are
   dropped and named in the description (Gemini enums hold strings only).
4. `exclusiveMinimum` / `exclusiveMaximum` (numbers) become `minimum` / `maximum` (one step in
   for integers); `format` is kept only where Gemini knows it (`enum`, `date-time`, `int32`,
   `int64`, `float`, `double`), others go into the description.
5. Everything outside `SCHEMA_KEYS` is dropped (`additionalProperties`, `default`, `examples`,
   `title`, `$schema`, `$id`, `patternProperties`, `not`, `if`...). Empty `properties` are
   removed (Gemini rejects an empty map), `required` keeps only names that are properties, an
   array without `items` gets string items, a schema with neither a type nor `anyOf` (`{}`, "any
   value") becomes a string — Gemini requires a type on every node not made of `anyOf`.

Source: the `Schema` reference of ai.google.dev/api/caching#Schema and the 400s users of
other gateways reported against it.
"""

from __future__ import annotations

import math
from typing import Any

# the fields of Gemini's Schema object this converter writes (a subset of the reference's)
SCHEMA_KEYS = frozenset({
    "type", "format", "description", "nullable", "enum", "maxItems", "minItems", "properties",
    "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "anyOf",
    "propertyOrdering", "items", "minimum", "maximum"})
TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object"})
_FORMATS = {"string": {"enum", "date-time"}, "integer": {"int32", "int64"},
            "number": {"float", "double"}}
_COPIED = ("description", "maxItems", "minItems", "minProperties", "maxProperties", "minLength",
           "maxLength", "pattern", "minimum", "maximum", "propertyOrdering")
_MAX_DEPTH = 32


def to_gemini_schema(schema: Any) -> dict[str, Any] | None:
    """Tool parameters for a `FunctionDeclaration`; None when there is nothing to send (no
    schema, or an object without properties — Gemini rejects empty `properties`)."""
    if not isinstance(schema, dict):
        return None
    out = _Converter(schema).convert(schema, (), 0)
    if out.get("type") == "object" and not out.get("properties"):
        return None
    return out


class _Converter:
    def __init__(self, root: dict[str, Any]) -> None:
        self.defs: dict[str, Any] = {}
        for key in ("definitions", "$defs"):
            if isinstance(root.get(key), dict):
                self.defs.update({f"#/{key}/{k}": v for k, v in root[key].items()})

    def convert(self, node: Any, seen: tuple[str, ...], depth: int) -> dict[str, Any]:
        if not isinstance(node, dict) or depth > _MAX_DEPTH:
            return {"type": "string"}  # `true`, a stray value, or nesting past any real schema
        node, seen, cut = self._resolve(node, seen)
        if cut is not None:
            return cut
        node = self._merge_all_of(node, seen)
        out: dict[str, Any] = {}
        notes: list[str] = []
        nullable = self._type(node, out)
        branches = [b for key in ("anyOf", "oneOf") for b in _list(node.get(key)) if isinstance(b, dict)]
        if branches:
            kept = [b for b in branches if b.get("type") != "null"]
            nullable = nullable or len(kept) < len(branches)
            converted = [self.convert(b, seen, depth + 1) for b in kept]
            converted = [c for c in converted if c]
            if len(converted) == 1:
                out = {**converted[0], **out}
            elif converted:
                out["anyOf"] = converted
        for key in _COPIED:
            if key in node and node[key] is not None:
                out[key] = node[key]
        nullable = self._enum(node, out, notes) or nullable
        self._bounds(node, out)
        self._format(node, out, notes)
        self._children(node, out, seen, depth)
        if "type" not in out and "anyOf" not in out:
            out["type"] = "string"  # Gemini: a type "must be specified when not using any_of"
        if nullable:
            out["nullable"] = True
        if notes:
            described = out.get("description")
            out["description"] = " ".join([described, *notes] if isinstance(described, str) else notes)
        return out

    def _resolve(self, node: dict[str, Any], seen: tuple[str, ...],
                 ) -> tuple[dict[str, Any], tuple[str, ...], dict[str, Any] | None]:
        ref = node.get("$ref")
        if not isinstance(ref, str):
            return node, seen, None
        name = ref.rsplit("/", 1)[-1]
        if ref in seen:
            return node, seen, {"type": "object",
                                "description": f"a {name} (recursive: same shape as its parent)"}
        target = self.defs.get(ref)
        if not isinstance(target, dict):
            return node, seen, {"type": "object", "description": f"a {name}"}
        # sibling keys of $ref (a field's description) win over the definition's
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return merged, (*seen, ref), None

    def _merge_all_of(self, node: dict[str, Any], seen: tuple[str, ...]) -> dict[str, Any]:
        parts = node.get("allOf")
        if not isinstance(parts, list):
            return node
        merged = {k: v for k, v in node.items() if k != "allOf"}
        for part in parts:
            if not isinstance(part, dict):
                continue
            part, _, cut = self._resolve(part, seen)
            part = cut or self._merge_all_of(part, seen)
            for key, value in part.items():
                if key == "properties" and isinstance(value, dict):
                    mine = merged.get("properties")
                    merged["properties"] = {**value, **(mine if isinstance(mine, dict) else {})}
                elif key == "required" and isinstance(value, list):
                    merged["required"] = [*_list(merged.get("required")), *value]
                else:
                    merged.setdefault(key, value)
        return merged

    @staticmethod
    def _type(node: dict[str, Any], out: dict[str, Any]) -> bool:
        raw = node.get("type")
        types = [raw] if isinstance(raw, str) else _strings(raw)
        nullable = "null" in types
        known = [t for t in types if t in TYPES]
        if len(known) == 1:
            out["type"] = known[0]
        elif len(known) > 1:
            out["anyOf"] = [{"type": t} for t in known]
        elif "properties" in node:
            out["type"] = "object"
        elif "items" in node:
            out["type"] = "array"
        return nullable

    @staticmethod
    def _enum(node: dict[str, Any], out: dict[str, Any], notes: list[str]) -> bool:
        values = [node["const"]] if "const" in node else node.get("enum")
        if not isinstance(values, list):
            return False
        nullable = None in values
        values = [v for v in values if v is not None]
        if values and all(isinstance(v, str) for v in values) and out.get("type", "string") == "string":
            out.update(type="string", format="enum", enum=values)
        elif values:
            notes.append("One of: " + ", ".join(repr(v) for v in values) + ".")
        return nullable

    @staticmethod
    def _bounds(node: dict[str, Any], out: dict[str, Any]) -> None:
        integer = out.get("type") == "integer"
        for key, target, step in (("exclusiveMinimum", "minimum", 1), ("exclusiveMaximum", "maximum", -1)):
            value = node.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue  # draft-4 booleans: the plain bound is already copied
            if integer:
                value = math.floor(value) + 1 if step > 0 else math.ceil(value) - 1
            out[target] = value
        for key in ("minimum", "maximum"):
            if key in out and (isinstance(out[key], bool) or not isinstance(out[key], int | float)):
                del out[key]

    @staticmethod
    def _format(node: dict[str, Any], out: dict[str, Any], notes: list[str]) -> None:
        fmt = node.get("format")
        if not isinstance(fmt, str) or "format" in out:
            return
        if fmt in _FORMATS.get(str(out.get("type")), ()):
            out["format"] = fmt
        else:
            notes.append(f"Format: {fmt}.")

    def _children(self, node: dict[str, Any], out: dict[str, Any], seen: tuple[str, ...],
                  depth: int) -> None:
        props = node.get("properties")
        if isinstance(props, dict) and props:
            out["properties"] = {str(k): self.convert(v, seen, depth + 1) for k, v in props.items()}
            out["type"] = "object"
            required = [r for r in _strings(node.get("required")) if r in out["properties"]]
            if required:
                out["required"] = list(dict.fromkeys(required))
        elif not out.get("properties"):
            out.pop("properties", None)
            out.pop("propertyOrdering", None)
        if out.get("type") == "array" and ("items" in node or "items" not in out):
            items = node.get("items")
            if isinstance(items, list):  # tuple form: Gemini has one items schema
                items = items[0] if items else None
            converted = self.convert(items, seen, depth + 1) if isinstance(items, dict) else {}
            out["items"] = converted if converted.get("type") or converted.get("anyOf") \
                else {**converted, "type": "string"}
        for key in ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"):
            if key in out and (isinstance(out[key], bool) or not isinstance(out[key], int)):
                del out[key]
        for key in ("description", "pattern"):
            if key in out and not isinstance(out[key], str):
                del out[key]
        if "propertyOrdering" in out and not isinstance(out["propertyOrdering"], list):
            del out["propertyOrdering"]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _strings(value: Any) -> list[str]:
    return [v for v in _list(value) if isinstance(v, str)]
