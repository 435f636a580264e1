"""The request a provider receives: its format, its model id, its key, without what it rejects.

`build` dispatches on `provider.format` to the outbound wire in `proxy/formats/`: `openai`
(chat completions), `gemini` (`generateContent`) or `anthropic` (Messages). An OpenAI-format
body is first made what the provider's profile accepts (`Profile.prepare`: renamed fields,
history, tool-call ids), then loses `drop_params` (the profile's unless the settings name them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kimi_mcp.catalog import Provider, Resolved
from kimi_mcp.errors import UpstreamError
from kimi_mcp.proxy import profiles
from kimi_mcp.proxy.formats import anthropic_request, gemini, openai_chat
from kimi_mcp.proxy.formats.canonical import without_origin

ANTHROPIC_VERSION = "2023-06-01"
# client headers an Anthropic-format provider needs to see (beta features, API version)
ANTHROPIC_FORWARDED = ("anthropic-beta", "anthropic-version")


@dataclass
class Outgoing:
    url: str
    headers: dict[str, str]
    content: bytes
    strip_usage: bool  # we asked for include_usage; the client did not


def build(resolved: Resolved, body: dict[str, Any], stream: bool,
          client_headers: Mapping[str, str] | None = None,
          signatures: gemini.Signatures | None = None) -> Outgoing:
    """The request for the provider: its model id, its key, without the fields it rejects."""
    provider = resolved.provider
    headers = {"content-type": "application/json", **provider.headers}
    if provider.format == "gemini":
        payload = gemini.to_gemini(without_origin(body), resolved.model.id, signatures)
        verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
        url = f"{provider.base_url}/models/{resolved.model.id}:{verb}"
        if provider.api_key:
            headers["x-goog-api-key"] = provider.api_key
        return Outgoing(url, headers, json.dumps(payload).encode(), False)
    if provider.format == "anthropic":
        return _anthropic(resolved, body, headers, client_headers or {})
    profile = profiles.of(provider)
    payload = profile.prepare(dict(openai_chat.request_body(body)))
    payload["model"] = resolved.model.id
    strip = False
    if stream and profile.stream_usage_option:
        options = payload.get("stream_options")
        if not (isinstance(options, dict) and options.get("include_usage")):
            payload["stream_options"] = {**(options if isinstance(options, dict) else {}),
                                         "include_usage": True}
            strip = True
    for name in drop_params(provider):
        payload.pop(name, None)
    if "stream_options" not in payload:
        strip = False
    if provider.api_key:
        headers["authorization"] = f"Bearer {provider.api_key}"
    return Outgoing(f"{provider.base_url}/chat/completions", headers,
                    json.dumps(payload, ensure_ascii=False).encode(), strip)


def _anthropic(resolved: Resolved, body: dict[str, Any], headers: dict[str, str],
               client_headers: Mapping[str, str]) -> Outgoing:
    provider = resolved.provider
    payload = anthropic_request.from_canonical(body, resolved.model.id,
                                               resolved.model.max_output_tokens)
    for name in drop_params(provider):
        payload.pop(name, None)
    headers["anthropic-version"] = ANTHROPIC_VERSION
    for name in ANTHROPIC_FORWARDED:
        if client_headers.get(name):
            headers[name] = client_headers[name]
    if provider.api_key:
        headers["x-api-key"] = provider.api_key
    return Outgoing(f"{provider.base_url}/messages", headers,
                    json.dumps(payload, ensure_ascii=False).encode(), False)


def drop_params(provider: Provider) -> tuple[str, ...]:
    """`providers.<name>.drop_params` when set, else the fields its profile rejects."""
    if provider.drop_params is not None:
        return provider.drop_params
    return profiles.of(provider).drop_params


def check_key(provider: Provider) -> None:
    """`UpstreamError` (401, retryable on another provider) when the provider has no key."""
    if provider.ready:
        return
    raise UpstreamError(
        f"no API key for provider '{provider.name}': set the environment variable "
        f"{provider.key_env} (or providers.{provider.name}.api_key in the config file)",
        status=401, code="missing_api_key", retryable=True,
    )
