"""Anthropic Messages requests <-> the canonical (chat-completions) request.

`to_canonical(body)`: `system` (a string or text blocks) -> system message; each user message's
`tool_result` blocks -> `tool` messages (so the context stages mask them), its other blocks -> a
user message; an assistant message's `text` -> content, `thinking` -> `reasoning_content` and
`thinking_blocks`, `tool_use` -> `tool_calls`; `tools` (`input_schema`) -> function tools;
`tool_choice`, `stop_sequences` -> chat's names. Every canonical message remembers the original
message (and block) it came from under `kimi_origin`, and the whole original body rides along.

`from_canonical(body)` builds the Messages request for an Anthropic-format provider. A message the
stages left alone is sent as the client sent it (the very same object: `cache_control`, unknown
block types and key order survive), a changed one is rebuilt from its original blocks with only
the changed text; messages kimi-mcp added (a compression summary) are translated. A body that did
not come from a Messages client is translated whole.
"""

from __future__ import annotations

import json
from typing import Any

from kimi_mcp.errors import RequestError
from kimi_mcp.proxy.formats.canonical import ORIGIN, Body, loads_object, origin, text_of

FORMAT = "anthropic_messages"
DEFAULT_MAX_TOKENS = 4096
_PASSED = ("model", "max_tokens", "temperature", "top_p", "stream")


# ---- Messages -> canonical -------------------------------------------------------------------------


def validate(body: Any, *, needs_max_tokens: bool = True) -> Body:
    """The body as a dict, or `RequestError` naming the first field that is wrong."""
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages: must be a non-empty array")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant", "system"):
            raise RequestError(f"messages.{i}.role: must be 'user', 'assistant' or 'system'")
        content = message.get("content")
        if not isinstance(content, str | list):
            raise RequestError(f"messages.{i}.content: must be a string or an array of blocks")
        if isinstance(content, list) and not all(isinstance(b, dict) and isinstance(b.get("type"), str)
                                                 for b in content):
            raise RequestError(f"messages.{i}.content: every block must be an object with a 'type'")
    if "model" in body and not isinstance(body["model"], str):
        raise RequestError("model: must be a string")
    if needs_max_tokens and (not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1):
        raise RequestError("max_tokens: must be a positive integer")
    if not isinstance(body.get("stream", False), bool):
        raise RequestError("stream: must be true or false")
    if not isinstance(body.get("system", ""), str | list):
        raise RequestError("system: must be a string or an array of text blocks")
    if not isinstance(body.get("tools", []), list):
        raise RequestError("tools: must be an array")
    return body


def to_canonical(body: Body) -> Body:
    out: Body = {k: body[k] for k in _PASSED if k in body}
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": system if isinstance(system, str)
                         else [dict(b) for b in system if isinstance(b, dict)], ORIGIN: "system"})
    for j, message in enumerate(body["messages"]):
        if message["role"] == "assistant":
            messages.append(_assistant(message["content"], j))
        elif message["role"] == "system":  # a system message between turns (Claude Code 2.1)
            content = message["content"]
            messages.append({"role": "system", "content": content if isinstance(content, str)
                             else [_part(b) for b in content], ORIGIN: j})
        else:
            messages.extend(_user(message["content"], j))
    out["messages"] = messages
    if isinstance(body.get("stop_sequences"), list) and body["stop_sequences"]:
        out["stop"] = list(body["stop_sequences"])
    tools = [_tool(t) for t in body.get("tools") or () if isinstance(t, dict)]
    if tools:
        out["tools"] = tools
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        out["tool_choice"] = _choice(choice)
        if choice.get("disable_parallel_tool_use"):
            out["parallel_tool_calls"] = False
    if body.get("stream"):
        out["stream_options"] = {"include_usage": True}
    out[ORIGIN] = {"format": FORMAT, "body": body, "messages": list(messages)}
    return out


def _user(content: Any, j: int) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "user", "content": content, ORIGIN: j}]
    out: list[dict[str, Any]] = []
    rest: list[dict[str, Any]] = []
    for k, block in enumerate(content):
        if block.get("type") == "tool_result":
            out.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")),
                        "content": _result_content(block.get("content")), ORIGIN: [j, k]})
        else:
            rest.append(_part(block))
    if rest:
        out.append({"role": "user", "content": rest, ORIGIN: j})
    return out


def _result_content(content: Any) -> Any:
    if content is None:
        return ""
    if isinstance(content, list):
        return [_part(b) for b in content if isinstance(b, dict)]
    return content


def _part(block: dict[str, Any]) -> dict[str, Any]:
    """A content block as a chat content part: text as is, images as `image_url`, others kept."""
    if block.get("type") != "image" or not isinstance(block.get("source"), dict):
        return block
    source = block["source"]
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url":
        url = str(source.get("url", ""))
    else:
        return block
    part: dict[str, Any] = {"type": "image_url", "image_url": {"url": url}}
    if "cache_control" in block:
        part["cache_control"] = block["cache_control"]
    return part


def _assistant(content: Any, j: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant"}
    if isinstance(content, str):
        message["content"] = content
        message[ORIGIN] = j
        return message
    texts = [b for b in content if b.get("type") == "text"]
    thinking = [b for b in content if b.get("type") in ("thinking", "redacted_thinking")]
    calls = [b for b in content if b.get("type") == "tool_use"]
    if len(texts) == 1 and set(texts[0]) <= {"type", "text"}:
        message["content"] = str(texts[0].get("text", ""))
    else:
        message["content"] = texts if texts else ("" if not calls else None)
    if thinking:
        message["reasoning_content"] = "".join(str(b.get("thinking", "")) for b in thinking)
        message["thinking_blocks"] = thinking
    if calls:
        message["tool_calls"] = [{
            "id": str(b.get("id", "")), "type": "function",
            "function": {"name": str(b.get("name", "")),
                         "arguments": json.dumps(b.get("input") or {}, ensure_ascii=False)}}
            for b in calls]
    message[ORIGIN] = j
    return message


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    if "input_schema" not in tool and tool.get("type") not in (None, "custom"):
        return {**tool}  # a server tool (web search, code execution): only Anthropic runs it
    function: dict[str, Any] = {"name": tool.get("name", "")}
    if tool.get("description"):
        function["description"] = tool["description"]
    function["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
    out: dict[str, Any] = {"type": "function", "function": function}
    if "cache_control" in tool:
        out["cache_control"] = tool["cache_control"]
    return out


def _choice(choice: dict[str, Any]) -> Any:
    kind = choice.get("type")
    if kind == "any":
        return "required"
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name", "")}}
    return "none" if kind == "none" else "auto"


# ---- canonical -> Messages ----------------------------------------------------------------------


def from_canonical(body: Body, model: str, default_max_tokens: int | None = None) -> Body:
    """The Messages request for `model` (see the module docstring)."""
    found = origin(body, FORMAT)
    if found is not None:
        original = found["body"]
        out = dict(original)
        system, messages = _restore(body["messages"], original, found.get("messages") or [])
        if system is None:
            out.pop("system", None)
        else:
            out["system"] = system
        out["messages"] = messages
        out["model"] = model
        return out
    return _translate(body, model, default_max_tokens or DEFAULT_MAX_TOKENS)


def _restore(messages: list[dict[str, Any]], original: Body,
             fresh: list[dict[str, Any]]) -> tuple[Any, list[dict[str, Any]]]:
    system_msgs = [m for m in messages if m.get(ORIGIN) == "system"]
    if system_msgs and all(any(m is f for f in fresh) for m in system_msgs):
        system: Any = original.get("system")
    elif system_msgs:
        system = _system_of(system_msgs)
    else:
        system = original.get("system") if not fresh or fresh[0].get(ORIGIN) != "system" else None
    out: list[dict[str, Any]] = []
    groups: list[tuple[Any, list[dict[str, Any]]]] = []
    for m in messages:
        tag = m.get(ORIGIN)
        if tag == "system":
            continue
        j = tag[0] if isinstance(tag, list) else tag
        if isinstance(j, int) and groups and groups[-1][0] == j:
            groups[-1][1].append(m)
        else:
            groups.append((j if isinstance(j, int) else None, [m]))
    fresh_ids = {id(m) for m in fresh}
    by_j: dict[int, list[dict[str, Any]]] = {}
    for m in fresh:
        tag = m.get(ORIGIN)
        j = tag[0] if isinstance(tag, list) else tag
        if isinstance(j, int):
            by_j.setdefault(j, []).append(m)
    for j, group in groups:
        if j is None or j >= len(original["messages"]):
            out.extend(_translate_messages(group))
        elif len(group) == len(by_j.get(j, ())) and all(a is b for a, b in zip(group, by_j[j], strict=True)):
            out.append(original["messages"][j])
        else:
            out.append(_rebuild(original["messages"][j], group, fresh_ids))
    return system, out


def _rebuild(message: dict[str, Any], group: list[dict[str, Any]], fresh_ids: set[int]) -> dict[str, Any]:
    """The original message with only what the stages changed replaced."""
    content: Any = message.get("content") or []
    if message["role"] == "assistant":
        changed = group[0]
        if isinstance(content, str):
            return {**message, "content": text_of(changed.get("content"))}
        args = {c.get("id"): c["function"].get("arguments")
                for c in changed.get("tool_calls") or () if isinstance(c, dict)}
        blocks = []
        for block in content:
            if block.get("type") == "tool_use" and block.get("id") in args:
                block = {**block, "input": loads_object(args[block["id"]])}
            blocks.append(block)
        return {**message, "content": blocks}
    if isinstance(content, str):
        return {**message, "content": text_of(group[0].get("content")) if group else content}
    results = {m[ORIGIN][1]: m for m in group if isinstance(m.get(ORIGIN), list)}
    user = next((m for m in group if m.get("role") == "user"), None)
    if user is not None and id(user) in fresh_ids:
        user = None  # unchanged: its blocks stay where they were
    blocks = []
    for k, block in enumerate(content):
        if block.get("type") == "tool_result":
            result = results.get(k)
            if result is not None and id(result) not in fresh_ids:
                block = {**block, "content": _blocks(result.get("content"))}
            if result is not None:
                blocks.append(block)
        elif user is None:
            blocks.append(block)
    if user is not None:
        blocks.extend(_blocks(user.get("content")))
    return {**message, "content": blocks}


def _blocks(content: Any) -> Any:
    if isinstance(content, str):
        return content
    out = []
    for part in content or ():
        if not isinstance(part, dict):
            continue
        if part.get("type") == "image_url":
            out.append(_image(part))
        else:
            out.append(part)
    return out


def _image(part: dict[str, Any]) -> dict[str, Any]:
    url = str((part.get("image_url") or {}).get("url", ""))
    if url.startswith("data:") and ";base64," in url:
        media, data = url[5:].split(";base64,", 1)
        block: dict[str, Any] = {"type": "image", "source": {"type": "base64", "media_type": media,
                                                             "data": data}}
    else:
        block = {"type": "image", "source": {"type": "url", "url": url}}
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _system_of(messages: list[dict[str, Any]]) -> Any:
    blocks: list[dict[str, Any]] = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            if content:
                blocks.append({"type": "text", "text": content})
        else:
            blocks.extend(p for p in content or () if isinstance(p, dict) and p.get("type") == "text")
    if all(set(b) <= {"type", "text"} for b in blocks):
        return "\n\n".join(b["text"] for b in blocks)
    return blocks


def _translate(body: Body, model: str, default_max_tokens: int) -> Body:
    messages = [m for m in body.get("messages") or () if isinstance(m, dict)]
    system = [m for m in messages if m.get("role") in ("system", "developer")]
    out: Body = {"model": model,
                 "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens")
                 or default_max_tokens}
    if system:
        out["system"] = _system_of(system)
    out["messages"] = _translate_messages([m for m in messages if m not in system])
    for key in ("temperature", "top_p", "stream"):
        if body.get(key) is not None:
            out[key] = min(float(body[key]), 1.0) if key == "temperature" else body[key]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    tools = [_anthropic_tool(t) for t in body.get("tools") or () if isinstance(t, dict)]
    if any(tools):
        out["tools"] = [t for t in tools if t]
        choice = _anthropic_choice(body.get("tool_choice"))
        if body.get("parallel_tool_calls") is False:
            choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
        if choice:
            out["tool_choice"] = choice
    return out


def _translate_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        if role == "assistant":
            out.append({"role": "assistant", "content": _assistant_blocks(m)})
            continue
        if role in ("tool", "function"):
            block = {"type": "tool_result", "tool_use_id": str(m.get("tool_call_id", "")),
                     "content": _blocks(m.get("content"))}
            blocks = [block]
        else:
            content = _blocks(m.get("content"))
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            if not blocks:
                continue
        if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": "user", "content": list(blocks)})
    return out


def _assistant_blocks(m: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    thinking = m.get("thinking_blocks")
    if isinstance(thinking, list):
        blocks.extend(b for b in thinking if (isinstance(b, dict) and b.get("signature")) or
                      (isinstance(b, dict) and b.get("type") == "redacted_thinking"))
    content = m.get("content")
    if isinstance(content, list):
        blocks.extend(p for p in content if isinstance(p, dict) and p.get("type") == "text" and p.get("text"))
    elif content:
        blocks.append({"type": "text", "text": str(content)})
    for call in m.get("tool_calls") or ():
        function = call.get("function") or {}
        blocks.append({"type": "tool_use", "id": str(call.get("id", "")),
                       "name": str(function.get("name", "")),
                       "input": loads_object(function.get("arguments"))})
    return blocks or [{"type": "text", "text": ""}]


def _anthropic_tool(tool: dict[str, Any]) -> dict[str, Any] | None:
    function = tool.get("function")
    if tool.get("type") != "function" or not isinstance(function, dict):
        return None
    out: dict[str, Any] = {"name": function.get("name", "")}
    if function.get("description"):
        out["description"] = function["description"]
    out["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    if "cache_control" in tool:
        out["cache_control"] = tool["cache_control"]
    return out


def _anthropic_choice(choice: Any) -> dict[str, Any] | None:
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if name:
            return {"type": "tool", "name": name}
    return {"type": "auto"} if choice == "auto" else None
