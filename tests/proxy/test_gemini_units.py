"""The Gemini wire in pieces: schema conversion, image parts, finish and block reasons."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kimi_mcp.errors import RequestError, UpstreamError
from kimi_mcp.proxy.formats import gemini
from kimi_mcp.proxy.formats.gemini_media import image_part
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
    assert "type" in node or "anyOf" in node, f"{path} has no type"


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
        "e": {"type": "string", "nullable": True, "description": "One of: 1, 2."},
        "f": {"type": "string", "description": "Format: uri."},
        "g": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}}


def test_a_tool_without_parameters_sends_none_since_gemini_refuses_empty_properties() -> None:
    assert to_gemini_schema({"type": "object", "properties": {}}) is None
    assert to_gemini_schema({"type": "object"}) is None
    assert to_gemini_schema(None) is None



FINISHES = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter",
            "RECITATION": "content_filter", "BLOCKLIST": "content_filter",
            "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter",
            "LANGUAGE": "content_filter", "OTHER": "content_filter", "IMAGE_SAFETY": "content_filter",
            "SOMETHING_NEW": "stop"}
BROKEN = {"MALFORMED_FUNCTION_CALL": 502, "UNEXPECTED_TOOL_CALL": 502, "TOO_MANY_TOOL_CALLS": 502,
          "FINISH_REASON_UNSPECIFIED": 502, "MISSING_THOUGHT_SIGNATURE": 400, "NO_IMAGE": 502}


def _answer(reason: str) -> dict[str, Any]:
    return {"candidates": [{"content": {"role": "model", "parts": [{"text": "so far"}]},
                            "finishReason": reason}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2,
                              "toolUsePromptTokenCount": 4}}


@pytest.mark.parametrize(("reason", "finish"), FINISHES.items())
def test_each_gemini_finish_reason_has_an_openai_finish_reason(reason: str, finish: str) -> None:
    answer = gemini.from_gemini(_answer(reason), "g")
    assert answer["choices"][0]["finish_reason"] == finish
    assert answer["choices"][0]["message"]["content"] == "so far"
    assert answer["usage"]["prompt_tokens"] == 7  # tool-use prompt tokens are prompt tokens


@pytest.mark.parametrize(("reason", "status"), BROKEN.items())
def test_each_gemini_finish_reason_that_means_a_broken_answer_is_an_error_naming_it(
        reason: str, status: int) -> None:
    notes: dict[str, Any] = {}
    with pytest.raises(UpstreamError) as caught:
        gemini.from_gemini(_answer(reason), "g", notes)
    assert reason in str(caught.value) and caught.value.status == status
    assert notes["usage"]["completion_tokens"] == 2


@pytest.mark.parametrize("reason", ["BLOCK_REASON_UNSPECIFIED", "SAFETY", "OTHER", "BLOCKLIST",
                                    "PROHIBITED_CONTENT", "IMAGE_SAFETY"])
def test_each_block_reason_is_a_400_content_filter_error_naming_it(reason: str) -> None:
    with pytest.raises(UpstreamError) as caught:
        gemini.from_gemini({"promptFeedback": {"blockReason": reason}}, "g")
    assert (caught.value.status, caught.value.code) == (400, "content_filter")
    assert reason in str(caught.value)


@pytest.mark.parametrize(("url", "part"), [
    ("data:image/webp;base64,UklGRg==", {"inlineData": {"mimeType": "image/webp", "data": "UklGRg=="}}),
    ("https://cdn.test/a/b.png?sig=1#x", {"fileData": {"mimeType": "image/png", "fileUri": "https://cdn.test/a/b.png?sig=1#x"}}),
    ("gs://bucket/cat.heic", {"fileData": {"mimeType": "image/heic", "fileUri": "gs://bucket/cat.heic"}}),
    ("https://generativelanguage.googleapis.com/v1beta/files/abc",
     {"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc"}}),
])
def test_image_urls_gemini_can_read_become_inline_or_file_data(url: str, part: dict[str, Any]) -> None:
    assert image_part(url, "messages[0].content[1]") == part


@pytest.mark.parametrize(("url", "said"), [
    ("http://insecure.test/cat.png", "'http:'"),
    ("ftp://x.test/cat.png", "'ftp:'"),
    ("https://x.test/render?id=7", "does not end in one of"),
    ("data:image/png,rawbytes", "data:<mime>;base64,<data>"),
    ("", "non-empty string"),
])
def test_image_urls_gemini_cannot_read_are_refused_saying_what_to_send(url: str, said: str) -> None:
    with pytest.raises(RequestError) as caught:
        image_part(url, "messages[2].content[0]")
    assert said in str(caught.value) and "messages[2].content[0]" in str(caught.value)


def _sig(value: str) -> dict[str, Any]:
    return {"google": {"thought_signature": value}}


def test_signatures_sent_back_land_on_their_parts_and_only_a_bare_first_call_gets_the_placeholder() -> None:
    body = {"messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "Looking.", "extra_content": _sig("T1"), "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"},
             "extra_content": _sig("S1")},
            {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "a", "content": "1"},
        {"role": "tool", "tool_call_id": "b", "content": "2"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "d", "type": "function", "function": {"name": "g", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "3"},
        {"role": "tool", "tool_call_id": "d", "content": "4"}]}
    turns = gemini.to_gemini(body, "gemini-3-pro-preview")["contents"]
    assert [p.get("thoughtSignature") for p in turns[1]["parts"]] == ["T1", "S1", None]
    assert [p.get("thoughtSignature") for p in turns[3]["parts"]] == [gemini.SKIP_SIGNATURE, None]
    older = gemini.to_gemini(body, "gemini-2.5-flash")["contents"]
    assert [p.get("thoughtSignature") for p in older[3]["parts"]] == [None, None]


def test_each_signed_part_of_an_answer_reaches_the_client_as_extra_content() -> None:
    answer = gemini.from_gemini({"candidates": [{"content": {"parts": [
        {"text": "thinking...", "thought": True, "thoughtSignature": "X"},
        {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "S1"},
        {"functionCall": {"name": "g", "args": {"a": 1}}}]}, "finishReason": "STOP"}]}, "g")
    message = answer["choices"][0]["message"]
    assert [c.get("extra_content") for c in message["tool_calls"]] == [_sig("S1"), None]
    assert "extra_content" not in message and answer["choices"][0]["finish_reason"] == "tool_calls"


_WIRE_KEYS = st.sampled_from([
    "candidates", "content", "parts", "text", "functionCall", "name", "args", "finishReason", "index",
    "thought", "thoughtSignature", "usageMetadata", "promptTokenCount", "promptFeedback",
    "blockReason", "error", "code", "message", "tool_calls", "function", "arguments", "id",
    "extra_content", "image_url", "url", "tool_call_id", "stop", "tool_choice", "tools"])
_wire_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=4),
              st.sampled_from(["STOP", "SAFETY", "MALFORMED_FUNCTION_CALL", "https://x.test/a.png"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_WIRE_KEYS, inner, max_size=4)),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_WIRE_KEYS, _wire_values, max_size=4))
def test_any_gemini_response_is_an_answer_or_an_upstream_error_never_a_crash(data: dict[str, Any]) -> None:
    for read in (lambda: gemini.from_gemini(data, "m"), lambda: gemini.StreamTranslator("m").chunk(data)):
        try:
            read()
        except UpstreamError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.builds(lambda role, rest: {"role": role, **rest},
                          st.sampled_from(["user", "assistant", "tool", "system"]),
                          st.dictionaries(_WIRE_KEYS, _wire_values, max_size=4)), min_size=1, max_size=4),
       st.dictionaries(st.sampled_from(["tools", "tool_choice", "stop", "response_format"]),
                       _wire_values, max_size=3))
def test_any_chat_request_is_a_gemini_body_or_a_request_error_never_a_crash(
        messages: list[dict[str, Any]], extra: dict[str, Any]) -> None:
    try:
        gemini.to_gemini({"messages": messages, **extra}, "gemini-3-pro-preview")
    except RequestError:
        pass


def test_the_signature_memory_keeps_the_newest_calls_only() -> None:
    memory = gemini.Signatures(size=2)
    for n in range(3):
        memory.put(f"call_{n}", f"S{n}")
    assert [memory.get(f"call_{n}") for n in range(3)] == [None, "S1", "S2"]
    assert memory.get(["not", "an", "id"]) is None
