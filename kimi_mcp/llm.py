"""The product's own model calls (task planning, conversation summaries), as a core Protocol.

Tool families and context stages ask a `Completions` for one JSON object; the composition root
gives them the proxy's implementation (`kimi_mcp.proxy.completions.ProxyCompletions`), so these
calls are routed, rate-limited, retried, scrubbed and recorded in the ledger like every proxied
call. Every failure is an `LlmError` (an `UpstreamError`), so a caller can fall back to a path
without a model.
"""

from __future__ import annotations

import json
import re
from typing import Any, Protocol

from kimi_mcp.errors import UpstreamError

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


class LlmError(UpstreamError):
    """The model could not be asked, or its answer was not the JSON asked for."""


class Completions(Protocol):
    async def complete_json(self, model_ref: str, messages: list[dict[str, Any]],
                            schema: dict[str, Any], *, purpose: str) -> dict[str, Any]:
        """One object matching `schema` from `model_ref` ("provider/model" or an alias).

        `purpose` names the caller in the ledger (e.g. "tasks_expand"). Raises `LlmError`.
        """
        ...


def json_request(model: str, messages: list[dict[str, Any]], schema: dict[str, Any],
                 strict: bool) -> dict[str, Any]:
    """An OpenAI chat body asking for JSON: `json_schema` structured output, else `json_object`."""
    body: dict[str, Any] = {"model": model, "messages": messages, "temperature": 0}
    if strict:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "result", "schema": schema, "strict": False},
        }
    else:
        body["response_format"] = {"type": "json_object"}
    return body


def answer_text(answer: dict[str, Any], who: str) -> str:
    """`choices[0].message.content` of an OpenAI chat completion, or `LlmError`."""
    try:
        content = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise LlmError(f"{who} sent a response without choices[0].message.content") from None
    if not isinstance(content, str):
        raise LlmError(f"{who} sent no text content")
    return content


def parse_answer(content: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON object in `content` (a ```json fence is allowed), validated against `schema`."""
    match = _FENCE.match(content)
    text = match.group(1) if match else content
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LlmError(f"the model's answer is not JSON ({exc.msg} at {exc.pos})") from None
    if not isinstance(data, dict):
        raise LlmError("the model's answer is JSON but not an object")
    import jsonschema  # only when a model answers: keeps `kimi-mcp stdio`'s start light

    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise LlmError(f"the model's answer does not match the schema at {where}: {exc.message}") from None
    return data
