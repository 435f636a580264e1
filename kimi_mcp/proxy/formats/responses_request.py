"""OpenAI Responses requests -> the canonical (chat-completions) request.

`instructions` -> a system message; `input` as a string -> a user message; as items: `message`
items (`input_text`, `output_text`, `input_image` parts) -> messages, `function_call` and
`custom_tool_call` items -> an assistant message's `tool_calls`, `function_call_output` and
`custom_tool_call_output` -> `tool` messages (so the context stages mask them), `reasoning` items
-> the next assistant message's `reasoning_content`. Function tools -> chat function tools;
custom (freeform) tools -> a function with one string parameter `input`; the tools of a
`namespace` (Codex groups each MCP server's tools in one) -> functions named
`<namespace>__<name>`, answered as `function_call` items with their `namespace`. Hosted tools
(web search, file search...) are run by OpenAI only and are not sent to other providers.

`previous_response_id` continues a conversation the proxy kept (`ResponseStore`, bounded in
bytes; `store: false` answers are not kept): its messages come before the new input, and, as
with OpenAI, its instructions do not carry over.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from kimi_mcp.context.caches import ByteLRU
from kimi_mcp.errors import NotFound, RequestError
from kimi_mcp.proxy.formats.canonical import Body

FORMAT = "openai_responses"
STORE_BYTES = 64 * 1024 * 1024
Message = dict[str, Any]


class ResponseStore:
    """Conversations of kept responses by response id, least recently used dropped first."""

    def __init__(self, max_bytes: int = STORE_BYTES) -> None:
        self._items: ByteLRU[str, list[Message]] = ByteLRU(max_bytes)

    def put(self, response_id: str, messages: list[Message]) -> None:
        size = 200 + sum(len(json.dumps(m, ensure_ascii=False)) for m in messages)
        self._items.put(response_id, messages, size)

    def get(self, response_id: str) -> list[Message] | None:
        return self._items.get(response_id)


@dataclass
class ResponsesCall:
    """One Responses request: the client's body, the conversation to keep, the custom tools."""

    body: Body
    history: list[Message]  # the conversation without the instructions, before the stages
    custom_tools: set[str] = field(default_factory=set)
    namespaced: dict[str, tuple[str, str]] = field(default_factory=dict)  # chat name -> (ns, name)

    @property
    def keep(self) -> bool:
        return self.body.get("store") is not False


def validate(body: Any) -> Body:
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    if not isinstance(body.get("input"), str | list):
        raise RequestError("input: must be a string or an array of input items")
    if "model" in body and not isinstance(body["model"], str):
        raise RequestError("model: must be a string")
    if not isinstance(body.get("stream", False), bool):
        raise RequestError("stream: must be true or false")
    if body.get("instructions") is not None and not isinstance(body["instructions"], str):
        raise RequestError("instructions: must be a string")
    limit = body.get("max_output_tokens")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise RequestError("max_output_tokens: must be a positive integer")
    if not isinstance(body.get("tools", []), list):
        raise RequestError("tools: must be an array")
    return body


def to_canonical(body: Body, store: ResponseStore) -> tuple[Body, ResponsesCall]:
    history: list[Message] = []
    previous = body.get("previous_response_id")
    if previous:
        kept = store.get(str(previous))
        if kept is None:
            raise NotFound(f"previous_response_id: response '{previous}' is not kept by this "
                           "kimi-mcp (it was made with store: false, by another worker, or was "
                           "dropped); send the whole conversation in 'input' instead")
        history = list(kept)
    listed = _flatten(body.get("tools") or [])
    custom = {name for name, tool in listed if tool.get("type") == "custom"}
    namespaced = {name: ns for name, tool in listed if (ns := tool.get("_namespace"))}
    items = body["input"]
    if isinstance(items, str):
        history.append({"role": "user", "content": items})
    else:
        history.extend(_messages(items))
    messages = list(history)
    if body.get("instructions"):
        messages.insert(0, {"role": "system", "content": body["instructions"]})
    out: Body = {"messages": messages}
    if isinstance(body.get("model"), str):
        out["model"] = body["model"]
    if body.get("max_output_tokens"):
        out["max_tokens"] = body["max_output_tokens"]
    for key in ("temperature", "top_p", "parallel_tool_calls", "stream"):
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("stream"):
        out["stream_options"] = {"include_usage": True}
    tools = [t for t in (_tool(tool, name) for name, tool in listed) if t]
    if tools:
        out["tools"] = tools
        choice = _choice(body.get("tool_choice"))
        if choice is not None:
            out["tool_choice"] = choice
    fmt = _response_format((body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None)
    if fmt:
        out["response_format"] = fmt
    return out, ResponsesCall(body, history, custom, namespaced)


def _messages(items: list[Any]) -> list[Message]:
    out: list[Message] = []
    reasoning: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise RequestError(f"input.{i}: must be an object")
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise RequestError(f"input.{i}.role: must be user, assistant, system or developer")
            message: Message = {"role": role, "content": _content(item.get("content"), i)}
            if role == "assistant":
                message = _with_reasoning(message, reasoning)
                reasoning = []
            out.append(message)
        elif kind in ("function_call", "custom_tool_call"):
            arguments = item.get("arguments") if kind == "function_call" else json.dumps(
                {"input": item.get("input", "")}, ensure_ascii=False)
            name = str(item.get("name", ""))
            if item.get("namespace"):
                name = chat_name(str(item["namespace"]), name)
            call = {"id": str(item.get("call_id") or item.get("id") or ""), "type": "function",
                    "function": {"name": name, "arguments": str(arguments or "")}}
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant" and not reasoning:
                last["tool_calls"] = [*(last.get("tool_calls") or ()), call]
            else:
                out.append(_with_reasoning({"role": "assistant", "content": None,
                                            "tool_calls": [call]}, reasoning))
                reasoning = []
        elif kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output", "")
            content = output if isinstance(output, str) else _content(output, i)
            out.append({"role": "tool", "tool_call_id": str(item.get("call_id", "")), "content": content})
        elif kind == "reasoning":
            reasoning.append(_reasoning_text(item))
    return out


def _with_reasoning(message: Message, reasoning: list[str]) -> Message:
    text = "".join(r for r in reasoning if r)
    return {**message, "reasoning_content": text} if text else message


def _reasoning_text(item: dict[str, Any]) -> str:
    parts = [p.get("text", "") for p in item.get("content") or () if isinstance(p, dict)]
    if not any(parts):
        parts = [p.get("text", "") for p in item.get("summary") or () if isinstance(p, dict)]
    return "".join(str(p) for p in parts)


def _content(content: Any, i: int) -> Any:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise RequestError(f"input.{i}.content: must be a string or an array of content parts")
    parts: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text", "summary_text", "refusal"):
            parts.append({"type": "text", "text": str(part.get("text", part.get("refusal", "")))})
        elif kind == "input_image" and part.get("image_url"):
            image: dict[str, Any] = {"url": str(part["image_url"])}
            if part.get("detail"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "input_image":
            raise RequestError(f"input.{i}: an input_image needs image_url (file_id is not "
                               "supported by kimi-mcp)")
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def chat_name(namespace: str, name: str) -> str:
    """The chat function name of a namespaced tool (chat allows 64 of [a-zA-Z0-9_-])."""
    joined = f"{namespace}__{name}"
    if len(joined) <= 64:
        return joined
    return f"{joined[:53]}_{hashlib.sha1(joined.encode()).hexdigest()[:10]}"


def _flatten(tools: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    """(chat name, tool) for every tool, the tools of a namespace included (marked `_namespace`)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "namespace":
            ns = str(tool.get("name", ""))
            for inner in tool.get("tools") or ():
                if isinstance(inner, dict):
                    name = str(inner.get("name", ""))
                    out.append((chat_name(ns, name), {**inner, "_namespace": (ns, name)}))
        else:
            out.append((str(tool.get("name", "")), tool))
    return out


def _tool(tool: dict[str, Any], name: str) -> dict[str, Any] | None:
    kind = tool.get("type")
    if kind == "function":
        function: dict[str, Any] = {"name": name}
        function.update({k: tool[k] for k in ("description", "parameters", "strict") if k in tool})
        function.setdefault("parameters", {"type": "object", "properties": {}})
        return {"type": "function", "function": function}
    if kind == "custom":
        described = str(tool.get("description") or "")
        grammar: dict[str, Any] = tool["format"] if isinstance(tool.get("format"), dict) else {}
        if grammar.get("definition"):
            described += f"\n\nThe input follows this {grammar.get('syntax', '')} grammar:\n{grammar['definition']}"
        return {"type": "function", "function": {
            "name": name, "description": described.strip(),
            "parameters": {"type": "object", "properties": {"input": {"type": "string"}},
                           "required": ["input"]}}}
    return None  # a hosted tool: only OpenAI runs it


def _choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") in ("function", "custom") and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    return None


def _response_format(fmt: Any) -> dict[str, Any] | None:
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    return None
