"""One chat completion through the proxy: validate, resolve, stages, limits, upstream, answer.

`Proxy.chat(request)` never raises: every failure becomes an OpenAI-shaped error, and every call,
failed or not, hands one `CallRecord` to the accountant.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response

from kimi_mcp.catalog import Resolved
from kimi_mcp.deps import Deps
from kimi_mcp.httputil import BadRequest, json_error, read_json
from kimi_mcp.ledger import Event
from kimi_mcp.proxy import gemini
from kimi_mcp.proxy.accounting import Accountant, CallRecord
from kimi_mcp.proxy.limits import Limiter, RateLimited
from kimi_mcp.proxy.resolve import Plan, Router
from kimi_mcp.proxy.streaming import Relay, relay_gemini, relay_openai
from kimi_mcp.proxy.upstream import (
    Backoff,
    ProxyError,
    build,
    check_key,
    open_upstream,
    to_proxy_error,
)

log = logging.getLogger(__name__)

Stages = Callable[..., Awaitable[Any]]
JSON_TYPE = "application/json"


def validate(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array"
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            return f"messages[{i}] must be an object with a string 'role'"
    if "model" in body and not isinstance(body["model"], str):
        return "'model' must be a string"
    if not isinstance(body.get("stream", False), bool):
        return "'stream' must be true or false"
    for key in ("max_tokens", "max_completion_tokens"):
        if body.get(key) is not None and (not isinstance(body[key], int) or body[key] < 0):
            return f"'{key}' must be a non-negative integer"
    return None


@dataclass
class Proxy:
    deps: Deps
    client: Callable[[], httpx.AsyncClient]
    stages: Stages | None = None
    backoff: Backoff = field(default_factory=Backoff)
    limiter: Limiter = field(default_factory=Limiter)
    router: Router = field(init=False)
    accountant: Accountant = field(init=False)
    _sessions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.router = Router(self.deps.catalog, self.deps.settings.routing, self.limiter,
                             on_breaker=self._breaker_event)
        self.accountant = Accountant(self.deps, observe=self.router.observe)

    # ---- the endpoint -------------------------------------------------------------------------

    async def chat(self, request: Request) -> Response:
        rec = CallRecord(created_at=time.time(), started=time.perf_counter(), stream=False)
        try:
            body = await read_json(request, int(self.deps.settings.server.max_body_mb * 1_000_000))
            problem = validate(body)
            if problem:
                raise BadRequest(problem)
        except BadRequest as exc:
            rec.status, rec.http_status, rec.error = "error", exc.status, str(exc)
            self.finish(rec)
            return exc.response()
        rec.stream = bool(body.get("stream"))
        rec.model = str(body.get("model") or "")
        try:
            return await self._serve(request, body, rec)
        except ProxyError as exc:
            rec.status, rec.http_status, rec.error = "error", exc.status, str(exc)
            self.finish(rec)
            headers = {"retry-after": f"{max(1, round(exc.retry_after))}"} if exc.retry_after else {}
            if rec.route:
                headers["x-kimi-route"] = rec.route
            return json_error(exc.status, str(exc), exc.code, headers=headers)

    async def _serve(self, request: Request, body: dict[str, Any], rec: CallRecord) -> Response:
        model = body.get("model") or self.deps.settings.routing.default_model
        max_tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or 0)
        estimate = int(request.headers.get("content-length") or 0) // 4
        plan = self.router.plan(model, estimate, max_tokens)
        first = plan.candidates[0]
        rec.provider, rec.model, rec.resolved = first.provider.name, first.model.id, first
        rec.session_id = await self.session_for(request, body, plan.alias or first.ref)
        body = _without_session(body)
        if self.stages is not None:
            body = await self._apply_stages(request, body, rec, first)
        rec.body = body
        return await self._call(body, plan, rec, estimate + max_tokens)

    async def _apply_stages(self, request: Request, body: dict[str, Any], rec: CallRecord,
                            first: Resolved) -> dict[str, Any]:
        assert self.stages is not None
        enabled = request.headers.get("x-kimi-context", "").lower() != "off"
        result = await self.stages(self.deps, body, session_id=rec.session_id,
                                   context_window=first.model.context_window, enabled=enabled)
        if result.error:
            raise ProxyError(result.error, status=400, code="context_length_exceeded")
        rec.saved_mask_tokens = int(result.saved_mask_tokens or 0)
        rec.saved_compress_tokens = int(result.saved_compress_tokens or 0)
        rec.memory_tokens = int(result.memory_tokens or 0)
        if result.masked_ids:
            rec.meta["masked_ids"] = list(result.masked_ids)
        savings = getattr(result, "savings", None)  # until the stages are one typed object (issue 17)
        if savings is not None and savings.tokens:
            rec.meta["context"] = savings.as_meta()
        new_body: dict[str, Any] = result.body
        return new_body

    async def _call(self, body: dict[str, Any], plan: Plan, rec: CallRecord, tokens: int) -> Response:
        stream = rec.stream
        tried: list[str] = []
        for index, cand in enumerate(plan.candidates):
            last = index == len(plan.candidates) - 1
            rec.provider, rec.model, rec.resolved = cand.provider.name, cand.model.id, cand
            rec.route = _route(cand, plan, tried)
            try:
                check_key(cand.provider)
                try:
                    await self.limiter.acquire(cand.provider, tokens)
                except RateLimited as exc:
                    raise ProxyError(str(exc), status=429, code="rate_limit_exceeded",
                                     retry_after=exc.retry_after, retryable=True) from None
                out = build(cand, body, stream)
                response = await open_upstream(self.client(), cand, out, self.backoff,
                                               on_retry=lambda why: _note(rec, why))
            except ProxyError as exc:
                if exc.retryable and exc.status >= 500:
                    self.router.failure(cand.ref)
                if not exc.retryable or last:
                    if tried:
                        exc.args = (f"{exc} (after {'; '.join(tried)})",)
                    raise
                tried.append(f"{cand.ref}: HTTP {exc.status}")
                continue
            self.router.success(cand.ref)
            rec.http_status = response.status_code
            if stream:
                return self._stream(response, cand, body, rec, out.strip_usage)
            return await self._whole(response, cand, rec)
        raise AssertionError("a plan always has a candidate")

    def _stream(self, response: httpx.Response, cand: Resolved, body: dict[str, Any],
                rec: CallRecord, strip_usage: bool) -> Response:
        headers = {"x-kimi-route": rec.route or "", "cache-control": "no-cache"}
        if cand.provider.format == "gemini":
            options = body.get("stream_options")
            wants = isinstance(options, dict) and bool(options.get("include_usage"))
            translator = gemini.StreamTranslator(str(body.get("model") or cand.model.id))
            gen = relay_gemini(response, cand.provider, rec, translator, wants, self.finish)
        else:
            gen = relay_openai(response, cand.provider, rec, strip_usage, self.finish)
        return Relay(gen, response, rec, self.finish, headers=headers)

    async def _whole(self, response: httpx.Response, cand: Resolved, rec: CallRecord) -> Response:
        try:
            raw = await response.aread()
        except httpx.HTTPError as exc:
            raise to_proxy_error(cand.provider, exc=exc) from None
        finally:
            await response.aclose()
        rec.ended_at = time.perf_counter()
        if cand.provider.format == "gemini":
            try:
                data = json.loads(raw)
            except ValueError:
                raise ProxyError(f"{cand.provider.name} sent an answer that is not JSON") from None
            answer = gemini.from_gemini(data, rec.body.get("model") or cand.model.id if rec.body else cand.model.id)
            rec.usage = answer.get("usage")
            rec.text = [str(c["message"].get("content") or "") for c in answer["choices"]]
            raw = json.dumps(answer, ensure_ascii=False).encode()
        else:
            rec.raw_answer = raw
        self.finish(rec)
        return Response(raw, status_code=response.status_code, media_type=JSON_TYPE,
                        headers={"x-kimi-route": rec.route or ""})

    # ---- sessions, accounting, events -------------------------------------------------------------

    async def session_for(self, request: Request, body: dict[str, Any], model_ref: str) -> str | None:
        ref = request.headers.get("x-kimi-session")
        if not ref:
            meta = body.get("metadata")
            if isinstance(meta, dict) and isinstance(meta.get("session"), str):
                ref = meta["session"]
        if not ref:
            return await self.deps.sessions.auto_for(model_ref)
        found = self._sessions.get(ref)
        if found is None:
            found = self.deps.sessions.resolve(ref)
            if found is None:
                created = await self.deps.sessions.create(ref, model=model_ref, activate=False)
                found = str(created["id"])
            self._sessions[ref] = found
        return found

    def on_event(self, event: Event) -> None:
        if event.type == "session":
            self._sessions.clear()

    def finish(self, rec: CallRecord) -> None:
        if rec.ended_at is None:
            rec.ended_at = time.perf_counter()
        if rec.stream and rec.status == "error" and rec.resolved is not None and rec.http_status == 200:
            self.router.failure(rec.resolved.ref)
        self.accountant.submit(rec)

    def _breaker_event(self, ref: str, state: str) -> None:
        self.deps.ledger.bus.publish(Event("provider", {"model": ref, "breaker": state}))


def _route(cand: Resolved, plan: Plan, tried: list[str]) -> str:
    route = f"{cand.ref}; {plan.reason}"
    if plan.alias:
        route += f"; alias={plan.alias}"
    if tried:
        route += f"; fallback after {', '.join(tried)}"
    return route


def _without_session(body: dict[str, Any]) -> dict[str, Any]:
    """`metadata.session` is ours: providers never see it."""
    meta = body.get("metadata")
    if not isinstance(meta, dict) or "session" not in meta:
        return body
    rest = {k: v for k, v in meta.items() if k != "session"}
    out = {k: v for k, v in body.items() if k != "metadata"}
    if rest:
        out["metadata"] = rest
    return out


def _note(rec: CallRecord, why: str) -> None:
    rec.meta.setdefault("retries", []).append(why)
