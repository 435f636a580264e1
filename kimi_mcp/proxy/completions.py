"""`llm.Completions` served by the proxy's pipeline, for the product's own model calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kimi_mcp.errors import KimiError
from kimi_mcp.llm import LlmError, answer_text, json_request, parse_answer
from kimi_mcp.proxy.pipeline import Proxy


class ProxyCompletions:
    """Task planning and summaries go through `Proxy.complete`: routed, limited, retried and
    recorded in the ledger (with `meta.purpose`) like any call a client makes.

    `proxy` is called on first use, so a server that never plans never builds the proxy.
    """

    def __init__(self, proxy: Callable[[], Proxy]) -> None:
        self._proxy = proxy

    async def complete_json(self, model_ref: str, messages: list[dict[str, Any]],
                            schema: dict[str, Any], *, purpose: str) -> dict[str, Any]:
        proxy = self._proxy()
        for strict in (True, False):  # json_schema first; json_object where it is refused
            body = json_request(model_ref, messages, schema, strict)
            try:
                answer = await proxy.complete(body, purpose=purpose)
            except KimiError as exc:
                if strict and exc.status in (400, 422):
                    continue
                raise LlmError(f"{model_ref} could not answer: {exc}", status=exc.status) from None
            return parse_answer(answer_text(answer, model_ref), schema)
        raise LlmError(f"{model_ref} rejected both structured-output forms (HTTP 400)", status=400)
