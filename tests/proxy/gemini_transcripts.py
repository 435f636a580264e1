"""Gemini wire transcripts, written from Google's API reference, and a loopback fake that plays them.

The model id in the URL picks the transcript (`/v1beta/models/<id>:generateContent` answers one
body, `:streamGenerateContent?alt=sse` its events, `data: {...}` framed with CRLF as Google
sends them). Like the real API, the fake refuses with Gemini's 400s:
- a `functionCall` part in a model turn sent back without the `thoughtSignature` it was issued
  ("Function call is missing a thought_signature in functionCall parts"), for `gemini-3-*`;
- a tool schema with a key Gemini's `Schema` does not have ("Invalid JSON payload received.
  Unknown name ..."), or an `OBJECT` with empty `properties`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

KEY = "g-replay-secret-0123456789"
SIGNATURE = "Q2lRQjBlMmtqN3NpZ25hdHVyZUE="  # base64, opaque to everyone but Google
TEXT_SIGNATURE = "Q2lRQjBlMmtqN3RleHRzaWdCQg=="
# Gemini's Schema object (ai.google.dev/api/caching#Schema)
SCHEMA_FIELDS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
    "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
    "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum"})
USAGE_TOOL = {"promptTokenCount": 120, "candidatesTokenCount": 12, "thoughtsTokenCount": 30,
              "cachedContentTokenCount": 64, "toolUsePromptTokenCount": 5, "totalTokenCount": 167}
USAGE_ANSWER = {"promptTokenCount": 160, "candidatesTokenCount": 6, "thoughtsTokenCount": 10,
                "cachedContentTokenCount": 128, "totalTokenCount": 176}
CALL = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
        "thoughtSignature": SIGNATURE}


def _candidate(parts: list[dict[str, Any]], finish: str | None = "STOP", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0, **extra}
    if finish:
        out["finishReason"] = finish
    return out


def _body(candidates: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"candidates": candidates, "modelVersion": "gemini-3-pro-preview",
                           "responseId": "resp-1"}
    if usage:
        out["usageMetadata"] = usage
    return out


def _tool_loop(contents: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Turn 1 calls get_weather (signed); turn 2, after the functionResponse, answers (signed)."""
    answered = any("functionResponse" in p for p in contents[-1]["parts"])
    if not answered:
        whole = _body([_candidate([CALL])], USAGE_TOOL)
        events = [_body([_candidate([CALL])], USAGE_TOOL)]
        return whole, events
    whole = _body([_candidate([{"text": "Sunny in Paris", "thoughtSignature": TEXT_SIGNATURE}])],
                  USAGE_ANSWER)
    partial = {**USAGE_ANSWER, "candidatesTokenCount": 2}
    events = [_body([_candidate([{"text": "Sunny"}], None)], partial),
              _body([_candidate([{"text": " in Paris"}], None)], partial),
              _body([_candidate([{"text": "", "thoughtSignature": TEXT_SIGNATURE}])], USAGE_ANSWER)]
    return whole, events


def transcript(model: str, body: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the generateContent body, the streamGenerateContent events) of `model`."""
    if model.startswith("gemini-3"):
        return _tool_loop(body["contents"])
    if model == "blocked":
        whole = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                 "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}}
        return whole, [whole]
    if model == "malformed":
        broken = _body([{"finishReason": "MALFORMED_FUNCTION_CALL", "index": 0,
                         "finishMessage": "Malformed function call: print(default_api.get_weather(city=Paris"}],
                       {"promptTokenCount": 50, "candidatesTokenCount": 0, "thoughtsTokenCount": 40,
                        "totalTokenCount": 90})
        return broken, [broken]
    if model == "safety":
        ratings = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]
        whole = _body([_candidate([{"text": "I can"}], "SAFETY", safetyRatings=ratings)],
                      {"promptTokenCount": 9, "candidatesTokenCount": 2, "totalTokenCount": 11})
        return whole, [_body([_candidate([{"text": "I can"}], None)]), whole]
    usage = {"promptTokenCount": 9, "candidatesTokenCount": 1, "totalTokenCount": 10}
    if model == "cut":  # the connection ends before any finishReason
        return _body([_candidate([{"text": "Hel"}])], usage), [
            _body([_candidate([{"text": "Hel"}], None)], usage)]
    if model == "error-event":
        return _body([_candidate([{"text": "Hel"}])], usage), [
            _body([_candidate([{"text": "Hel"}], None)], usage),
            {"error": {"code": 503, "message": "The model is overloaded. Please try again later.",
                       "status": "UNAVAILABLE"}}]
    return _body([_candidate([{"text": "Hello"}])], usage), [_body([_candidate([{"text": "Hello"}])], usage)]


def _refusal(model: str, body: dict[str, Any]) -> str | None:
    """The 400 message the real API gives this body, or None."""
    if model.startswith("gemini-3"):
        for content in body.get("contents") or ():
            calls = [p for p in content["parts"] if "functionCall" in p]
            if content["role"] == "model" and calls and calls[0].get("thoughtSignature") != SIGNATURE:
                return ("Function call is missing a thought_signature in functionCall parts. This is "
                        "required for tools to work correctly")
    for tool in body.get("tools") or ():
        for decl in tool.get("functionDeclarations") or ():
            found = bad_schema_key(decl.get("parameters") or {"type": "object", "properties": {"x": {}}})
            if found:
                return f"Invalid JSON payload received. Unknown name \"{found}\""
    return None


def bad_schema_key(schema: Any) -> str | None:
    """The first key Gemini's Schema would refuse, or None."""
    if not isinstance(schema, dict):
        return None
    for key, value in schema.items():
        if key not in SCHEMA_FIELDS:
            return key
        children: list[Any] = []
        if key == "properties":
            if not value and schema.get("type") == "object":
                return "properties (should be non-empty for OBJECT type)"
            children = list(value.values())
        elif key in ("items",):
            children = [value]
        elif key == "anyOf":
            children = list(value)
        for child in children:
            found = bad_schema_key(child)
            if found:
                return found
    return None


@dataclass
class Replay:
    seen: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)

    def bodies(self, model: str) -> list[dict[str, Any]]:
        return [body for path, _, body in self.seen if f"/models/{model}:" in path]


def replay_provider(replay: Replay) -> Starlette:
    async def models(request: Request) -> Response:
        body = await request.json()
        replay.seen.append((request.url.path, dict(request.headers), body))
        model, _, verb = request.path_params["rest"].partition(":")
        refused = _refusal(model, body)
        if refused:
            return JSONResponse({"error": {"code": 400, "message": refused,
                                           "status": "INVALID_ARGUMENT"}}, status_code=400)
        whole, events = transcript(model, body)
        if verb == "generateContent":
            return JSONResponse(whole)

        async def stream() -> AsyncIterator[bytes]:
            for event in events:
                yield b"data: " + json.dumps(event).encode() + b"\r\n\r\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1beta/models/{rest:path}", models, methods=["POST"])])
