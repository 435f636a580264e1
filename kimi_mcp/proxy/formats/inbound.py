"""The inbound adapters: what a client sent -> the canonical request; answers and errors back.

    adapter = Inbounds().anthropic_messages          # one set per proxy (Responses keeps state)
    body, call = adapter.parse(raw)                   # canonical request; RequestError names the field
    adapter.answer(completion, call, model)           # a chat.completion in the client's format
    adapter.encoder(call, model)                      # canonical chunks -> the client's events
    adapter.error(info, headers)                      # a failure in the client's error shape

`native` names the provider format whose answers reach this client untouched (the passthrough).
`session_ref` reads the client's own conversation id: Claude Code's `metadata.user_id` (its
`_session_<uuid>` part), Codex's `session_id` / `conversation_id` header or `prompt_cache_key`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.responses import JSONResponse, Response

from kimi_mcp.errors import ErrorInfo, RequestError
from kimi_mcp.httputil import error_response
from kimi_mcp.proxy.formats import anthropic_answer, anthropic_request, responses_answer
from kimi_mcp.proxy.formats import responses_request as responses
from kimi_mcp.proxy.formats.anthropic_stream import MessagesEncoder
from kimi_mcp.proxy.formats.canonical import Body, dumps
from kimi_mcp.proxy.formats.openai_chat import ChatEncoder
from kimi_mcp.proxy.formats.responses_stream import ResponsesEncoder


class Encoder(Protocol):
    finished: bool

    def feed(self, chunk: dict[str, Any]) -> bytes: ...

    def close(self) -> bytes: ...

    def error(self, info: ErrorInfo) -> bytes: ...


class Inbound(Protocol):
    name: str
    native: str | None

    def parse(self, raw: Any) -> tuple[Body, Any]: ...

    def session_ref(self, headers: Mapping[str, str], raw: Body) -> str | None: ...

    def answer(self, completion: dict[str, Any], call: Any, model: str) -> bytes: ...

    def encoder(self, call: Any, model: str) -> Encoder: ...

    def error(self, info: ErrorInfo, headers: dict[str, str]) -> Response: ...


def validate_chat(body: Any) -> Body:
    """A chat body as a dict, or `RequestError` naming the first field that is wrong."""
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty array")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RequestError(f"messages[{i}] must be an object with a string 'role'")
    if "model" in body and not isinstance(body["model"], str):
        raise RequestError("'model' must be a string")
    if not isinstance(body.get("stream", False), bool):
        raise RequestError("'stream' must be true or false")
    for key in ("max_tokens", "max_completion_tokens"):
        if body.get(key) is not None and (not isinstance(body[key], int) or body[key] < 0):
            raise RequestError(f"'{key}' must be a non-negative integer")
    return body


class OpenAIChat:
    name = "openai_chat"
    native: str | None = "openai"

    def parse(self, raw: Any) -> tuple[Body, Any]:
        body = validate_chat(raw)
        return body, body

    def session_ref(self, headers: Mapping[str, str], raw: Body) -> str | None:
        return None

    def answer(self, completion: dict[str, Any], call: Any, model: str) -> bytes:
        return dumps(completion)

    def encoder(self, call: Any, model: str) -> Encoder:
        options = call.get("stream_options") if isinstance(call, dict) else None
        return ChatEncoder(include_usage=isinstance(options, dict) and bool(options.get("include_usage")))

    def error(self, info: ErrorInfo, headers: dict[str, str]) -> Response:
        return error_response(info, headers=headers)


class AnthropicMessages:
    name = anthropic_request.FORMAT
    native: str | None = "anthropic"

    def __init__(self, *, count_only: bool = False) -> None:
        self.count_only = count_only

    def parse(self, raw: Any) -> tuple[Body, Any]:
        body = anthropic_request.validate(raw, needs_max_tokens=not self.count_only)
        return anthropic_request.to_canonical(body), body

    def session_ref(self, headers: Mapping[str, str], raw: Body) -> str | None:
        meta = raw.get("metadata")
        user = meta.get("user_id") if isinstance(meta, dict) else None
        if not isinstance(user, str) or not user:
            return None
        try:
            parsed = json.loads(user)  # newer Claude Code: a JSON object with session_id
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("session_id"), str):
            return f"claude-code-{parsed['session_id']}"
        _, found, session = user.rpartition("_session_")
        return f"claude-code-{session}" if found and session else f"anthropic-{user}"[:200]

    def answer(self, completion: dict[str, Any], call: Any, model: str) -> bytes:
        return dumps(anthropic_answer.from_canonical_answer(completion, model))

    def encoder(self, call: Any, model: str) -> Encoder:
        return MessagesEncoder(model)

    def error(self, info: ErrorInfo, headers: dict[str, str]) -> Response:
        return JSONResponse(anthropic_answer.error_body(info), status_code=info.status, headers=headers)


@dataclass
class OpenAIResponses:
    name = responses.FORMAT
    native: str | None = None
    store: responses.ResponseStore = field(default_factory=responses.ResponseStore)

    def parse(self, raw: Any) -> tuple[Body, Any]:
        return responses.to_canonical(responses.validate(raw), self.store)

    def session_ref(self, headers: Mapping[str, str], raw: Body) -> str | None:
        found = headers.get("session_id") or headers.get("conversation_id")
        if not found and isinstance(raw.get("prompt_cache_key"), str):
            found = raw["prompt_cache_key"]
        return f"codex-{found}"[:200] if found else None

    def answer(self, completion: dict[str, Any], call: Any, model: str) -> bytes:
        response, kept = responses_answer.from_canonical_answer(completion, call, model)
        self._keep(call, response, kept)
        return dumps(response)

    def encoder(self, call: Any, model: str) -> Encoder:
        return ResponsesEncoder(call, model, keep=lambda r, m: self._keep(call, r, m))

    def _keep(self, call: responses.ResponsesCall, response: dict[str, Any],
              message: dict[str, Any]) -> None:
        if call.keep and response.get("status") != "failed":
            self.store.put(str(response["id"]), [*call.history, message])

    def error(self, info: ErrorInfo, headers: dict[str, str]) -> Response:
        return JSONResponse(responses_answer.error_object(info), status_code=info.status, headers=headers)


@dataclass
class Inbounds:
    """The adapters of one proxy."""

    openai_chat: OpenAIChat = field(default_factory=OpenAIChat)
    anthropic_messages: AnthropicMessages = field(default_factory=AnthropicMessages)
    anthropic_count: AnthropicMessages = field(default_factory=lambda: AnthropicMessages(count_only=True))
    openai_responses: OpenAIResponses = field(default_factory=OpenAIResponses)
