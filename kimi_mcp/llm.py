"""Ask a configured model for one JSON object: a small client for planning-type calls.

`complete_json` resolves "provider/model" through the catalog, posts one OpenAI-format
chat completion with structured output, and returns the parsed object after validating it
against the given JSON schema. Every failure is an `LlmError` (an `UpstreamError`), so a
caller can fall back to a path without a model.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any

from kimi_mcp.catalog import Catalog, Provider
from kimi_mcp.config import Settings
from kimi_mcp.errors import KimiError, UpstreamError

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


class LlmError(UpstreamError):
    """The model could not be asked, or its answer was not the JSON asked for."""


def split_model_ref(model_ref: str) -> tuple[str, str]:
    provider, sep, model = model_ref.partition("/")
    if not sep or not provider or not model:
        raise LlmError(f"model reference '{model_ref}' must look like 'provider/model'", status=400)
    return provider, model


def _endpoint(settings: Settings, provider: str) -> Provider:
    try:
        found = Catalog(settings).provider(provider)
    except KimiError as exc:
        raise LlmError(f"provider '{provider}' is not available: {exc}", status=400) from None
    if found.format != "openai":
        raise LlmError(
            f"provider '{provider}' speaks '{found.format}'; only 'openai' format is supported here"
        )
    return found


def _body(model: str, messages: list[dict[str, Any]], schema: dict[str, Any], strict: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": messages, "temperature": 0}
    if strict:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "result", "schema": schema, "strict": False},
        }
    else:
        body["response_format"] = {"type": "json_object"}
    return body


def parse_answer(content: str, schema: dict[str, Any]) -> dict[str, Any]:
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


async def complete_json(
    settings: Settings,
    model_ref: str,
    messages: list[dict[str, Any]],
    schema: dict[str, Any],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    client: httpx.AsyncClient | None = None,
) -> dict[str, Any]:
    """One structured completion; falls back from `json_schema` to `json_object` on HTTP 400."""
    import httpx

    provider, model = split_model_ref(model_ref)
    endpoint = _endpoint(settings, provider)
    base_url = endpoint.base_url.rstrip("/")
    headers = dict(endpoint.headers)
    if endpoint.api_key:
        headers["Authorization"] = f"Bearer {endpoint.api_key}"
    owned = client is None
    http = client or httpx.AsyncClient(transport=transport, timeout=endpoint.timeout_s)
    try:
        for strict in (True, False):
            try:
                response = await http.post(
                    f"{base_url}/chat/completions", json=_body(model, messages, schema, strict),
                    headers=headers,
                )
            except httpx.HTTPError as exc:
                raise LlmError(f"{provider} could not be reached: {type(exc).__name__}") from None
            if response.status_code == 400 and strict:
                log.info("%s rejected json_schema output; retrying with json_object", provider)
                continue
            if response.status_code >= 400:
                raise LlmError(f"{provider} answered HTTP {response.status_code}",
                               status=response.status_code)
            try:
                content = response.json()["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                raise LlmError(f"{provider} sent a response without choices[0].message.content") from None
            if not isinstance(content, str):
                raise LlmError(f"{provider} sent no text content")
            return parse_answer(content, schema)
        raise LlmError(f"{provider} rejected the request (HTTP 400)", status=400)
    finally:
        if owned:
            await http.aclose()
