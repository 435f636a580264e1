"""Tool schemas -> Gemini's Schema subset (`kimi_mcp.proxy.formats.gemini_schema`)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kimi_mcp.proxy.formats.gemini_media import gemini_image_tokens, image_size
from kimi_mcp.proxy.formats.gemini_schema import SCHEMA_KEYS, TYPES, to_gemini_schema

JSON_SCHEMA_KEYS = ["type", "properties", "required", "items", "enum", "const", "anyOf", "oneOf",
                    "allOf", "$ref", "$defs", "definitions", "additionalProperties", "default",
                    "examples", "title", "$schema", "$id", "format", "description", "minimum",
                    "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
                    "pattern", "nullable", "patternProperties", "not", "if", "then", "readOnly",
                    "uniqueItems", "minItems", "maxItems", "propertyOrdering", "contentEncoding"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(-5, 5, allow_nan=False),
                    st.sampled_from(["string", "null", "integer", "object", "array", "email",
                                     "date-time", "#/$defs/Node", "#/definitions/Node", "#/$defs/Nope"]))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.sampled_from(JSON_SCHEMA_KEYS), st.text(max_size=4)), inner,
                        max_size=5)),
    max_leaves=25)
schemas = st.dictionaries(st.sampled_from(JSON_SCHEMA_KEYS), values, max_size=6)


def _keys_ok(node: Any, path: str = "$") -> None:
    assert isinstance(node, dict), path
    for key, value in node.items():
        assert key in SCHEMA_KEYS, f"{path}.{key}"
        if key == "type":
            assert value in TYPES, f"{path}.type = {value!r}"
        elif key == "properties":
            assert value, f"{path}.properties is empty"
            for name, child in value.items():
                _keys_ok(child, f"{path}.properties.{name}")
            assert set(node.get("required", ())) <= set(value)
        elif key == "items":
            _keys_ok(value, f"{path}.items")
        elif key == "anyOf":
            for i, child in enumerate(value):
                _keys_ok(child, f"{path}.anyOf[{i}]")
        elif key == "enum":
            assert value and all(isinstance(v, str) for v in value)
        elif key in ("minimum", "maximum"):
            assert isinstance(value, int | float) and not isinstance(value, bool)
        elif key == "nullable":
            assert value is True
    if node.get("type") == "array":
        assert "items" in node, path


@settings(max_examples=400, deadline=None)
@given(schemas)
def test_any_json_schema_becomes_one_that_uses_only_geminis_schema_fields(schema: dict[str, Any]) -> None:
    out = to_gemini_schema(schema)
    if out is not None:
        _keys_ok(out)


def test_refs_resolve_and_a_recursive_model_is_cut_at_its_second_visit() -> None:
    schema = {"type": "object", "$defs": {"Node": {"type": "object", "properties": {
        "value": {"type": "integer"}, "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}},
        "properties": {"root": {"$ref": "#/$defs/Node", "description": "the tree"}}}
    out = to_gemini_schema(schema)
    assert out is not None
    root = out["properties"]["root"]
    assert root["description"] == "the tree" and root["properties"]["value"] == {"type": "integer"}
    assert root["properties"]["children"]["items"]["type"] == "object"
    assert "recursive" in root["properties"]["children"]["items"]["description"]


def test_nullables_consts_and_exclusive_bounds_map_to_geminis_words() -> None:
    out = to_gemini_schema({"type": "object", "additionalProperties": False, "properties": {
        "a": {"type": ["string", "null"], "default": None, "title": "A"},
        "b": {"anyOf": [{"type": "integer", "exclusiveMinimum": 0}, {"type": "null"}]},
        "c": {"const": "fixed"},
        "d": {"type": "number", "exclusiveMaximum": 1.5},
        "e": {"enum": [1, 2, None]},
        "f": {"type": "string", "format": "uri"},
        "g": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}, "required": ["a", "zz"]})
    assert out == {"type": "object", "required": ["a"], "properties": {
        "a": {"type": "string", "nullable": True},
        "b": {"type": "integer", "minimum": 1, "nullable": True},
        "c": {"type": "string", "format": "enum", "enum": ["fixed"]},
        "d": {"type": "number", "maximum": 1.5},
        "e": {"nullable": True, "description": "One of: 1, 2."},
        "f": {"type": "string", "description": "Format: uri."},
        "g": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}}


def test_a_tool_without_parameters_sends_none_since_gemini_refuses_empty_properties() -> None:
    assert to_gemini_schema({"type": "object", "properties": {}}) is None
    assert to_gemini_schema({"type": "object"}) is None
    assert to_gemini_schema(None) is None


def test_image_tokens_follow_googles_258_per_tile_rule() -> None:
    assert gemini_image_tokens(384, 384) == 258
    assert gemini_image_tokens(385, 100) == 258  # one 768 tile
    assert gemini_image_tokens(1920, 1080) == 3 * 2 * 258
    assert gemini_image_tokens(None, None) == 258
    gif = b"GIF89a" + (640).to_bytes(2, "little") + (480).to_bytes(2, "little")
    assert image_size(gif) == (640, 480)
    assert image_size(b"not an image") is None
