"""OpenAI chat completions ⇄ Gemini `generateContent` / `streamGenerateContent?alt=sse`.

Requests: system/developer messages → `systemInstruction`; turns → `contents` (assistant →
`model`, consecutive roles merged); tool calls → `functionCall` parts; tool results →
`functionResponse` parts; `tools` → `functionDeclarations`. Responses: candidates → choices,
`functionCall` → `tool_calls`, `usageMetadata` → `usage`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from kimi_mcp.tokens import content_text

_FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter",
           "RECITATION": "content_filter", "BLOCKLIST": "content_filter",
           "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter"}
_GEN = {"temperature": "temperature", "top_p": "topP", "top_k": "topK", "n": "candidateCount",
        "seed": "seed", "presence_penalty": "presencePenalty",
        "frequency_penalty": "frequencyPenalty"}
# JSON-schema keys Gemini's function declarations reject
_SCHEMA_DROP = frozenset({"$schema", "additionalProperties", "strict", "$id", "examples"})


def to_gemini(body: dict[str, Any]) -> dict[str, Any]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for message in body.get("messages") or ():
        role = message.get("role")
        if role in ("system", "developer"):
            system.append({"text": content_text(message.get("content"))})
            continue
        if role == "assistant":
            parts = _assistant_parts(message, names)
            _append(contents, "model", parts)
        elif role in ("tool", "function"):
            name = message.get("name") or names.get(message.get("tool_call_id", ""), "tool")
            _append(contents, "user", [{"functionResponse": {
                "name": name, "response": _response_object(message.get("content"))}}])
        else:
            _append(contents, "user", _user_parts(message.get("content")))
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    tools = _tools(body.get("tools"), body.get("functions"))
    if tools:
        out["tools"] = tools
    config = _tool_config(body.get("tool_choice"))
    if config:
        out["toolConfig"] = config
    generation = _generation_config(body)
    if generation:
        out["generationConfig"] = generation
    return out


def _append(contents: list[dict[str, Any]], role: str, parts: list[dict[str, Any]]) -> None:
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _user_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, list):
        parts: list[dict[str, Any]] = []
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "image_url":
                url = (part.get("image_url") or {}).get("url", "")
                if url.startswith("data:") and ";base64," in url:
                    mime, data = url[5:].split(";base64,", 1)
                    parts.append({"inlineData": {"mimeType": mime, "data": data}})
                continue
            if isinstance(part.get("text"), str):
                parts.append({"text": part["text"]})
        return parts
    text = content_text(content)
    return [{"text": text}] if text else []


def _assistant_parts(message: dict[str, Any], names: dict[str, str]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    text = content_text(message.get("content"))
    if text:
        parts.append({"text": text})
    calls = list(message.get("tool_calls") or ())
    if isinstance(message.get("function_call"), dict):
        calls.append({"id": "", "function": message["function_call"]})
    for call in calls:
        function = call.get("function") or {}
        name = str(function.get("name", ""))
        if call.get("id"):
            names[call["id"]] = name
        parts.append({"functionCall": {"name": name, "args": _loads_object(function.get("arguments"))}})
    return parts


def _loads_object(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except (TypeError, ValueError):
        return {"value": raw}
    return value if isinstance(value, dict) else {"value": value}


def _response_object(content: Any) -> dict[str, Any]:
    text = content_text(content)
    try:
        value = json.loads(text)
    except ValueError:
        return {"content": text}
    return value if isinstance(value, dict) else {"content": value}


def _clean_schema(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _clean_schema(v) for k, v in node.items() if k not in _SCHEMA_DROP}
    if isinstance(node, list):
        return [_clean_schema(v) for v in node]
    return node


def _tools(tools: Any, functions: Any) -> list[dict[str, Any]]:
    declarations = []
    for tool in tools or functions or ():
        function = tool.get("function", tool) if isinstance(tool, dict) else None
        if not isinstance(function, dict) or "name" not in function:
            continue
        decl: dict[str, Any] = {"name": function["name"]}
        if function.get("description"):
            decl["description"] = function["description"]
        if function.get("parameters"):
            decl["parameters"] = _clean_schema(function["parameters"])
        declarations.append(decl)
    return [{"functionDeclarations": declarations}] if declarations else []


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice in (None, "auto"):
        return None
    if choice == "none":
        return {"functionCallingConfig": {"mode": "NONE"}}
    if choice == "required":
        return {"functionCallingConfig": {"mode": "ANY"}}
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if name:
            return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    return None


def _generation_config(body: dict[str, Any]) -> dict[str, Any]:
    config = {target: body[key] for key, target in _GEN.items() if body.get(key) is not None}
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit:
        config["maxOutputTokens"] = limit
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema")
        if schema:
            config["responseJsonSchema"] = schema
    return config


# ---- responses ---------------------------------------------------------------------------------


def usage_of(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    if not meta:
        return None
    prompt = int(meta.get("promptTokenCount") or 0)
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    completion = int(meta.get("candidatesTokenCount") or 0) + thoughts
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": int(meta.get("totalTokenCount") or prompt + completion)}
    if meta.get("cachedContentTokenCount"):
        usage["prompt_tokens_details"] = {"cached_tokens": int(meta["cachedContentTokenCount"])}
    if thoughts:
        usage["completion_tokens_details"] = {"reasoning_tokens": thoughts}
    return usage


def _message_of(candidate: dict[str, Any], call_ids: list[str]) -> tuple[str, list[dict[str, Any]]]:
    texts, calls = [], []
    for part in (candidate.get("content") or {}).get("parts") or ():
        if part.get("thought"):
            continue
        if "text" in part:
            texts.append(part["text"])
        elif "functionCall" in part:
            call = part["functionCall"]
            call_id = f"call_{uuid.uuid4().hex[:24]}"
            call_ids.append(call_id)
            calls.append({"id": call_id, "type": "function", "function": {
                "name": call.get("name", ""), "arguments": json.dumps(call.get("args") or {})}})
    return "".join(texts), calls


def _finish(candidate: dict[str, Any], has_calls: bool) -> str | None:
    reason = candidate.get("finishReason")
    if reason is None:
        return None
    return "tool_calls" if has_calls else _FINISH.get(reason, "stop")


def from_gemini(data: dict[str, Any], model: str) -> dict[str, Any]:
    choices = []
    for index, candidate in enumerate(data.get("candidates") or ()):
        text, calls = _message_of(candidate, [])
        message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
        if calls:
            message["tool_calls"] = calls
        choices.append({"index": candidate.get("index", index), "message": message,
                        "finish_reason": _finish(candidate, bool(calls)) or "stop"})
    out: dict[str, Any] = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
                           "created": int(time.time()), "model": model, "choices": choices}
    usage = usage_of(data.get("usageMetadata"))
    if usage:
        out["usage"] = usage
    return out


class StreamTranslator:
    """Turns each streamed GenerateContentResponse into one OpenAI chunk."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.usage: dict[str, Any] | None = None
        self.text: list[str] = []
        self._started: set[int] = set()
        self._calls: dict[int, int] = {}

    def chunk(self, data: dict[str, Any]) -> dict[str, Any] | None:
        if data.get("usageMetadata"):
            self.usage = usage_of(data["usageMetadata"])
        choices = []
        for index, candidate in enumerate(data.get("candidates") or ()):
            idx = candidate.get("index", index)
            text, calls = _message_of(candidate, [])
            delta: dict[str, Any] = {}
            if idx not in self._started:
                self._started.add(idx)
                delta["role"] = "assistant"
            if text:
                delta["content"] = text
                self.text.append(text)
            if calls:
                first = self._calls.get(idx, 0)
                delta["tool_calls"] = [{**c, "index": first + i} for i, c in enumerate(calls)]
                self._calls[idx] = first + len(calls)
            finish = _finish(candidate, bool(self._calls.get(idx)))
            choices.append({"index": idx, "delta": delta, "finish_reason": finish})
        if not choices:
            return None
        return self._wrap(choices)

    def usage_chunk(self) -> dict[str, Any]:
        out = self._wrap([])
        out["usage"] = self.usage
        return out

    def _wrap(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": choices}


async def chunks(response: httpx.Response, model: str) -> AsyncIterator[dict[str, Any]]:
    """A `streamGenerateContent?alt=sse` stream as chat chunks; the usage comes last, alone."""
    translator = StreamTranslator(model)
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        try:
            data = json.loads(line[5:])
        except ValueError:
            continue
        chunk = translator.chunk(data) if isinstance(data, dict) else None
        if chunk is not None:
            yield chunk
    if translator.usage:
        yield translator.usage_chunk()
