"""OpenAI chat completions ⇄ Gemini `generateContent` / `streamGenerateContent?alt=sse`.

Requests: system/developer messages → `systemInstruction`; turns → `contents` (assistant →
`model`, consecutive roles merged); tool calls → `functionCall` parts; tool results →
`functionResponse` parts; `tools` → `functionDeclarations` (schemas converted by
`gemini_schema`); images → `inlineData` / `fileData` (`gemini_media`). Responses: candidates →
choices, `functionCall` → `tool_calls`, `usageMetadata` → `usage`.

Thought signatures (Gemini 3 refuses turn 2 of a tool loop without them) travel the way Google's
own OpenAI-compatible endpoint carries them: `tool_calls[i].extra_content.google.thought_signature`
on each call that had one (streamed on the tool-call delta), and a text part's signature as
`extra_content.google.thought_signature` on the message (or delta). An assistant message sent
back with them gets them back on its `functionCall` / last text part. Clients with no place for
the field (Anthropic Messages, Responses, SDKs that drop unknown keys) still get them back:
`Signatures` remembers each one by the tool-call id kimi-mcp gave the call. A Gemini 3 turn
whose first function call has none either way (history written elsewhere, another process)
gets Google's documented `skip_thought_signature_validator` placeholder rather than a 400.

Finishes and blocks (`FINISH` / `FINISH_ERRORS`): `STOP` → `stop` (`tool_calls` when it called
tools), `MAX_TOKENS` → `length`; the reasons where Gemini withheld the rest (`SAFETY`,
`RECITATION`, `BLOCKLIST`, `PROHIBITED_CONTENT`, `SPII`, `LANGUAGE`, `IMAGE_*`, `OTHER`) →
`content_filter` with the text so far, an `ok` row as with OpenAI's own filter; an unknown
future reason → `stop`. Reasons that mean the answer is broken (`MALFORMED_FUNCTION_CALL`,
`UNEXPECTED_TOOL_CALL`, `TOO_MANY_TOOL_CALLS`, `MISSING_THOUGHT_SIGNATURE`,
`FINISH_REASON_UNSPECIFIED`, `NO_IMAGE`, `IMAGE_OTHER`) raise `UpstreamError` naming the
reason: the client gets an OpenAI-style error (its status, or an error event in a stream), the
ledger row is an error and keeps the usage Gemini billed.
A prompt Gemini blocked (`promptFeedback.blockReason`, no candidates) is a 400 with code
`content_filter` — what Azure OpenAI answers for a filtered prompt — never a 200 without choices.
An `error` object in the stream raises `UpstreamError` too.

Usage: `prompt_tokens` = `promptTokenCount` + `toolUsePromptTokenCount`, `completion_tokens` =
`candidatesTokenCount` + `thoughtsTokenCount` (thinking is billed as output), cached =
`cachedContentTokenCount`, reasoning = `thoughtsTokenCount`.
"""

from __future__ import annotations

import functools
import json
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import httpx

from kimi_mcp.errors import RequestError, UpstreamError
from kimi_mcp.proxy.formats.canonical import loads_object
from kimi_mcp.proxy.formats.gemini_media import image_part
from kimi_mcp.proxy.formats.gemini_schema import to_gemini_schema
from kimi_mcp.tokens import content_text

_CONTENT_FILTER = ("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "OTHER",
                   "LANGUAGE", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION")
FINISH = {"STOP": "stop", "MAX_TOKENS": "length", **dict.fromkeys(_CONTENT_FILTER, "content_filter")}
# reason -> (HTTP status, error code, what it means for the client)
FINISH_ERRORS = {
    "MALFORMED_FUNCTION_CALL": (502, "malformed_function_call",
                                "the model wrote a function call Gemini could not parse; retry"),
    "UNEXPECTED_TOOL_CALL": (502, "unexpected_tool_call",
                             "the model called a tool the request did not declare; retry"),
    "TOO_MANY_TOOL_CALLS": (502, "too_many_tool_calls",
                            "the model made more tool calls than Gemini allows in one turn"),
    "MISSING_THOUGHT_SIGNATURE": (400, "missing_thought_signature",
                                  "send back each tool call's extra_content.google.thought_signature"),
    "NO_IMAGE": (502, "no_image", "the model was asked for an image and made none"),
    "IMAGE_OTHER": (502, "image_other", "the model could not make the image"),
    "FINISH_REASON_UNSPECIFIED": (502, "upstream_error", "Gemini ended without saying why"),
}
SKIP_SIGNATURE = "skip_thought_signature_validator"  # Google's documented placeholder
_NO_SIGNATURES = re.compile(r"^(models/)?(gemini-(1|2)[.-]|gemma)")
_GEN = {"temperature": "temperature", "top_p": "topP", "top_k": "topK", "n": "candidateCount",
        "seed": "seed", "presence_penalty": "presencePenalty",
        "frequency_penalty": "frequencyPenalty"}


class Signatures:
    """Thought signatures by tool-call id, the oldest forgotten first (one process's memory)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._by_id: OrderedDict[str, str] = OrderedDict()

    def put(self, call_id: str, signature: str) -> None:
        self._by_id[call_id] = signature
        if len(self._by_id) > self.size:
            self._by_id.popitem(last=False)

    def get(self, call_id: Any) -> str | None:
        return self._by_id.get(call_id) if isinstance(call_id, str) else None


def to_gemini(body: dict[str, Any], model: str = "",
              signatures: Signatures | None = None) -> dict[str, Any]:
    """The `generateContent` body of a canonical chat request for Gemini model `model`;
    `RequestError` when a part cannot be sent (an image URL Gemini cannot read)."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    placeholder = bool(model) and not _NO_SIGNATURES.match(model)
    for i, message in enumerate(body.get("messages") or ()):
        role = message.get("role")
        if role in ("system", "developer"):
            system.append({"text": content_text(message.get("content"))})
            continue
        if role == "assistant":
            parts = _assistant_parts(message, names, placeholder, f"messages[{i}]", signatures)
            _append(contents, "model", parts)
        elif role in ("tool", "function"):
            call_id = message.get("tool_call_id")
            name = message.get("name") or names.get(call_id if isinstance(call_id, str) else "", "tool")
            _append(contents, "user", [{"functionResponse": {
                "name": name, "response": _response_object(message.get("content"))}}])
        else:
            _append(contents, "user", _user_parts(message.get("content"), f"messages[{i}]"))
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


def _user_parts(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, list):
        parts: list[dict[str, Any]] = []
        for j, part in enumerate(content):
            if not isinstance(part, dict):
                continue
            if part.get("type") == "image_url":
                image = part.get("image_url")
                url = image.get("url") if isinstance(image, dict) else image
                parts.append(image_part(url, f"{where}.content[{j}]"))
            elif isinstance(part.get("text"), str):
                parts.append({"text": part["text"]})
        return parts
    text = content_text(content)
    return [{"text": text}] if text else []


def signature_of(holder: Any) -> str | None:
    """`extra_content.google.thought_signature` of a tool call or message, when it has one."""
    extra = holder.get("extra_content") if isinstance(holder, dict) else None
    google = extra.get("google") if isinstance(extra, dict) else None
    found = google.get("thought_signature") if isinstance(google, dict) else None
    return found if isinstance(found, str) and found else None


def _extra(signature: str) -> dict[str, Any]:
    return {"google": {"thought_signature": signature}}


def _assistant_parts(message: dict[str, Any], names: dict[str, str],
                     placeholder: bool, where: str,
                     signatures: Signatures | None) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    text = content_text(message.get("content"))
    if text:
        parts.append({"text": text})
        signature = signature_of(message)
        if signature:
            parts[-1]["thoughtSignature"] = signature
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list) or not all(isinstance(c, dict) and isinstance(c.get("function"), dict)
                                              for c in calls):
        raise RequestError(f"{where}.tool_calls must be an array of objects with a 'function' object")
    if isinstance(message.get("function_call"), dict):
        calls = [*calls, {"id": "", "function": message["function_call"]}]
    for n, call in enumerate(calls):
        function = call["function"]
        name = str(function.get("name") or "")
        if isinstance(call.get("id"), str) and call["id"]:
            names[call["id"]] = name
        part: dict[str, Any] = {"functionCall": {"name": name,
                                                 "args": loads_object(function.get("arguments"))}}
        signature = signature_of(call) or (signatures.get(call.get("id")) if signatures else None)
        if signature is None and n == 0 and placeholder and not any(signature_of(c) for c in calls):
            signature = SKIP_SIGNATURE  # only the first call of a turn must carry one
        if signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _response_object(content: Any) -> dict[str, Any]:
    text = content_text(content)
    try:
        value = json.loads(text)
    except ValueError:
        return {"content": text}
    return value if isinstance(value, dict) else {"content": value}


def _tools(tools: Any, functions: Any) -> list[dict[str, Any]]:
    """`functionDeclarations` of the request's tools; an agent sends the same tools on every
    turn, so they are converted once per distinct JSON text (the result is shared, read-only)."""
    listed = tools or functions or []
    if not isinstance(listed, list):
        raise RequestError("'tools' must be an array of tool objects")
    try:
        key = json.dumps(listed, separators=(",", ":"))
    except (TypeError, ValueError):
        return _declare(listed)
    return _declared(key)


@functools.lru_cache(maxsize=256)
def _declared(key: str) -> list[dict[str, Any]]:
    return _declare(json.loads(key))


def _declare(listed: list[Any]) -> list[dict[str, Any]]:
    declarations = []
    for tool in listed:
        function = tool.get("function", tool) if isinstance(tool, dict) else None
        if not isinstance(function, dict) or "name" not in function:
            continue
        decl: dict[str, Any] = {"name": str(function["name"])}
        if isinstance(function.get("description"), str) and function["description"]:
            decl["description"] = function["description"]
        parameters = to_gemini_schema(function.get("parameters"))
        if parameters:
            decl["parameters"] = parameters
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
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str) and name:
            return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    return None


def _generation_config(body: dict[str, Any]) -> dict[str, Any]:
    config = {target: body[key] for key, target in _GEN.items() if body.get(key) is not None}
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit:
        config["maxOutputTokens"] = limit
    stop = body.get("stop")
    if stop:
        if not isinstance(stop, str | list) or not all(isinstance(s, str) for s in stop):
            raise RequestError("'stop' must be a string or an array of strings")
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if isinstance(schema, dict) and schema:
            config["responseJsonSchema"] = schema
    return config


# ---- responses ---------------------------------------------------------------------------------


def usage_of(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    """Gemini `usageMetadata` as OpenAI `usage` (see the module docstring)."""
    if not isinstance(meta, dict) or not meta:
        return None
    prompt = _count(meta, "promptTokenCount") + _count(meta, "toolUsePromptTokenCount")
    thoughts = _count(meta, "thoughtsTokenCount")
    completion = _count(meta, "candidatesTokenCount") + thoughts
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": _count(meta, "totalTokenCount") or prompt + completion}
    if _count(meta, "cachedContentTokenCount"):
        usage["prompt_tokens_details"] = {"cached_tokens": _count(meta, "cachedContentTokenCount")}
    if thoughts:
        usage["completion_tokens_details"] = {"reasoning_tokens": thoughts}
    return usage


def _count(meta: dict[str, Any], key: str) -> int:
    value = meta.get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def check(data: dict[str, Any]) -> None:
    """`UpstreamError` when a `GenerateContentResponse` (whole or one stream event) is an error
    object or a blocked prompt (see the module docstring)."""
    error = data.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        status = code if isinstance(code, int) and 400 <= code < 600 else 502
        message = error.get("message") or error.get("status") or "unknown error"
        raise UpstreamError(f"Gemini reported an error: {message}", status=status)
    feedback = data.get("promptFeedback")
    if not isinstance(feedback, dict):
        return
    reason = feedback.get("blockReason")
    if reason and not candidates(data):
        message = feedback.get("blockReasonMessage")
        raise UpstreamError(
            f"Gemini blocked the prompt (blockReason {reason})"
            + (f": {message}" if isinstance(message, str) and message else "")
            + "; rephrase the request or remove the content it names",
            status=400, code="content_filter")


def candidates(data: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """(index, candidate) of each candidate object in a response."""
    found = data.get("candidates")
    out = []
    for n, candidate in enumerate(found if isinstance(found, list) else ()):
        if isinstance(candidate, dict):
            index = candidate.get("index")
            out.append((index if isinstance(index, int) and not isinstance(index, bool) else n, candidate))
    return out


def _message_of(candidate: dict[str, Any], signatures: Signatures | None,
                ) -> tuple[str, list[dict[str, Any]], str | None]:
    """A candidate's text, its tool calls and the thought signature of its text parts."""
    texts, calls = [], []
    text_signature = None
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict) or part.get("thought"):
            continue
        signature = part.get("thoughtSignature")
        if "functionCall" in part:
            call = part["functionCall"] if isinstance(part["functionCall"], dict) else {}
            out: dict[str, Any] = {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                                   "function": {"name": str(call.get("name") or ""),
                                                "arguments": json.dumps(call.get("args") or {})}}
            if isinstance(signature, str) and signature:
                out["extra_content"] = _extra(signature)
                if signatures is not None:
                    signatures.put(out["id"], signature)
            calls.append(out)
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        if isinstance(signature, str) and signature:
            text_signature = signature
    return "".join(texts), calls, text_signature


def _finish(candidate: dict[str, Any], has_calls: bool) -> str | None:
    """The OpenAI finish reason of a candidate; None while it has not finished;
    `UpstreamError` for a reason that means the answer is broken."""
    raw = candidate.get("finishReason")
    if raw is None:
        return None
    reason = str(raw)
    if reason in FINISH_ERRORS:
        status, code, meaning = FINISH_ERRORS[reason]
        message = candidate.get("finishMessage")
        detail = f" ({message})" if isinstance(message, str) and message else ""
        raise UpstreamError(f"Gemini stopped with finishReason {reason}: {meaning}{detail}",
                            status=status, code=code)
    finish = FINISH.get(reason, "stop")
    return "tool_calls" if has_calls and finish == "stop" else finish


def from_gemini(data: dict[str, Any], model: str, notes: dict[str, Any] | None = None,
                signatures: Signatures | None = None) -> dict[str, Any]:
    """A whole `GenerateContentResponse` as a chat.completion; `UpstreamError` for an error
    object, a blocked prompt, an answer without candidates or a broken finish. `notes["usage"]`
    gets the usage first, so a failed call is still billed."""
    usage = usage_of(data.get("usageMetadata"))
    if notes is not None and usage:
        notes["usage"] = usage
    check(data)
    choices = []
    for index, candidate in candidates(data):
        text, calls, signature = _message_of(candidate, signatures)
        message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
        if calls:
            message["tool_calls"] = calls
        if signature:
            message["extra_content"] = _extra(signature)
        choices.append({"index": index, "message": message,
                        "finish_reason": _finish(candidate, bool(calls)) or "stop"})
    if not choices:
        raise UpstreamError("Gemini answered without a candidate")
    out: dict[str, Any] = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
                           "created": int(time.time()), "model": model, "choices": choices}
    if usage:
        out["usage"] = usage
    return out


class StreamTranslator:
    """Turns each streamed GenerateContentResponse into one OpenAI chunk."""

    def __init__(self, model: str, signatures: Signatures | None = None) -> None:
        self.model = model
        self.signatures = signatures
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.usage: dict[str, Any] | None = None
        self.text: list[str] = []
        self._started: set[int] = set()
        self._calls: dict[int, int] = {}

    def chunk(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """The chunk of one event (None when it carries nothing for the client);
        `UpstreamError` as `check` and `_finish` raise it."""
        if data.get("usageMetadata"):
            self.usage = usage_of(data["usageMetadata"])
        check(data)
        choices = []
        for idx, candidate in candidates(data):
            text, calls, signature = _message_of(candidate, self.signatures)
            delta: dict[str, Any] = {}
            if idx not in self._started:
                self._started.add(idx)
                delta["role"] = "assistant"
            if text:
                delta["content"] = text
                self.text.append(text)
            if signature:
                delta["extra_content"] = _extra(signature)
            if calls:
                first = self._calls.get(idx, 0)
                delta["tool_calls"] = [{"index": first + i, **c} for i, c in enumerate(calls)]
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


async def chunks(response: httpx.Response, model: str,
                 signatures: Signatures | None = None) -> AsyncIterator[dict[str, Any]]:
    """A `streamGenerateContent?alt=sse` stream as chat chunks; the usage comes last, alone.
    An error event, a blocked prompt or a broken finish raises `UpstreamError`; a stream that
    ends without a finish reason is left to the relay to call an error."""
    translator = StreamTranslator(model, signatures)
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        try:
            data = json.loads(line[5:])
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        try:
            chunk = translator.chunk(data)
        except UpstreamError:
            if translator.usage:  # a broken finish is still billed: the row keeps its usage
                yield translator.usage_chunk()
            raise
        if chunk is not None:
            yield chunk
    if translator.usage:
        yield translator.usage_chunk()
