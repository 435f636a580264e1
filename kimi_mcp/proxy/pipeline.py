"""One chat completion through the proxy: validate, resolve, stages, limits, upstream, answer.

`Proxy.chat(request)` answers every request: a `KimiError` becomes an OpenAI-shaped error with
its status, anything unexpected a 500 with a message that names no internals, and every call,
failed or not, hands one `CallRecord` to the accountant. `Proxy.complete(body, purpose=...)`
is the same path for the product's own model calls (task planning, summaries): recorded in the
ledger like any other call, with `meta.purpose` saying why it was made.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import Response

from kimi_mcp.catalog import Resolved
from kimi_mcp.context import StageResult
from kimi_mcp.deps import Deps
from kimi_mcp.errors import KimiError, RequestError, UpstreamError, describe
from kimi_mcp.httputil import error_response, read_json
from kimi_mcp.ledger import Event
from kimi_mcp.proxy import gemini
from kimi_mcp.proxy.accounting import Accountant, CallRecord
from kimi_mcp.proxy.limits import Limiter
from kimi_mcp.proxy.resolve import Plan, Router
from kimi_mcp.proxy.streaming import Relay, relay_gemini, relay_openai
from kimi_mcp.proxy.wire import build, check_key
from kimi_mcp.upstream import Upstream, to_upstream_error

log = logging.getLogger(__name__)

JSON_TYPE = "application/json"


class ContextStages(Protocol):
    """The context stages (memory tags, masking, compression) as the proxy calls them."""

    async def apply(self, body: dict[str, Any], *, session_id: str | None, context_window: int,
                    enabled: bool = True, model_ref: str | None = None) -> StageResult: ...


def validate(body: Any) -> dict[str, Any]:
    """The body as a dict, or `RequestError` naming the first field that is wrong."""
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


@dataclass
class Proxy:
    deps: Deps
    upstream: Upstream
    stages: ContextStages | None = None
    limiter: Limiter = field(default_factory=Limiter)
    router: Router = field(init=False)
    accountant: Accountant = field(init=False)
    _sessions: dict[str, str] = field(default_factory=dict)
    _started: bool = False

    def __post_init__(self) -> None:
        self.router = Router(self.deps.catalog, self.deps.settings.routing, self.limiter,
                             on_breaker=self._breaker_event)
        self.accountant = Accountant(self.deps, observe=self.router.observe)

    def start(self) -> None:
        """Start accounting and follow session events (idempotent)."""
        if not self._started:
            self._started = True
            self.accountant.start()
            self.deps.ledger.bus.on_event(self.on_event)

    async def aclose(self) -> None:
        """Account what is pending, then close the upstream client."""
        await anyio.to_thread.run_sync(self.accountant.close)
        await self.upstream.aclose()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Live state per provider for the dashboard: breakers, moving averages, rate limits."""
        out = self.router.snapshot()
        for name, headroom in self.limiter.snapshot().items():
            out.setdefault(name, {"breaker": "closed", "open_models": []})["rate_limit"] = headroom
        return out

    # ---- the endpoint -------------------------------------------------------------------------

    async def chat(self, request: Request) -> Response:
        rec = CallRecord(created_at=time.time(), started=time.perf_counter(), stream=False)
        try:
            limit = int(self.deps.settings.server.max_body_mb * 1_000_000)
            body = validate(await read_json(request, limit))
            rec.stream = bool(body.get("stream"))
            rec.model = str(body.get("model") or "")
            return await self._serve(request, body, rec)
        except Exception as exc:  # noqa: BLE001 - every failure is answered and recorded
            return self._failed(rec, exc)

    def _failed(self, rec: CallRecord, exc: Exception) -> Response:
        info = describe(exc)
        if not isinstance(exc, KimiError):
            log.error("a proxied call failed unexpectedly", exc_info=exc)
        rec.status, rec.http_status, rec.error = "error", info.status, info.message
        self.finish(rec)
        headers = {"retry-after": f"{max(1, round(info.retry_after))}"} if info.retry_after else {}
        if rec.route:
            headers["x-kimi-route"] = rec.route
        return error_response(info, headers=headers)

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
            enabled = request.headers.get("x-kimi-context", "").lower() != "off"
            body = await self._apply_stages(body, rec, first, enabled)
        rec.body = body
        response, cand, strip_usage = await self._open(body, plan, rec, estimate + max_tokens)
        if rec.stream:
            return self._stream(response, cand, body, rec, strip_usage)
        raw = await self._whole(response, cand, rec)
        return Response(raw, status_code=response.status_code, media_type=JSON_TYPE,
                        headers={"x-kimi-route": rec.route or ""})

    async def _apply_stages(self, body: dict[str, Any], rec: CallRecord, first: Resolved,
                            enabled: bool) -> dict[str, Any]:
        assert self.stages is not None
        result = await self.stages.apply(body, session_id=rec.session_id,
                                         context_window=first.model.context_window,
                                         enabled=enabled, model_ref=first.ref)
        if result.error:
            raise RequestError(result.error, code="context_length_exceeded")
        rec.saved_mask_tokens = int(result.saved_mask_tokens or 0)
        rec.saved_compress_tokens = int(result.saved_compress_tokens or 0)
        rec.memory_tokens = int(result.memory_tokens or 0)
        if result.masked_ids:
            rec.meta["masked_ids"] = list(result.masked_ids)
        if result.savings.tokens:
            rec.meta["context"] = result.savings.as_meta()
        return result.body

    # ---- the product's own calls ----------------------------------------------------------------

    async def complete(self, body: dict[str, Any], *, purpose: str) -> dict[str, Any]:
        """One non-streamed chat completion made by kimi-mcp itself; the answer in OpenAI shape.

        Raises `UpstreamError` (the provider failed) or `RequestError` (the model is unknown).
        """
        rec = CallRecord(created_at=time.time(), started=time.perf_counter(), stream=False,
                         model=str(body.get("model") or ""))
        rec.meta["purpose"] = purpose
        try:
            plan = self.router.plan(rec.model or self.deps.settings.routing.default_model, 0, 0)
            rec.session_id = self.deps.mcp_session_id()
            rec.body = body
            response, cand, _ = await self._open(body, plan, rec, 0)
            raw = await self._whole(response, cand, rec)
        except Exception as exc:
            self._failed(rec, exc)
            raise
        try:
            answer: Any = json.loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise UpstreamError(f"{rec.provider} sent an answer that is not a JSON object")
        return answer

    # ---- upstream -------------------------------------------------------------------------------

    async def _open(self, body: dict[str, Any], plan: Plan, rec: CallRecord,
                    tokens: int) -> tuple[httpx.Response, Resolved, bool]:
        """The first candidate that answers; later candidates only when the failure allows."""
        tried: list[str] = []
        for index, cand in enumerate(plan.candidates):
            last = index == len(plan.candidates) - 1
            rec.provider, rec.model, rec.resolved = cand.provider.name, cand.model.id, cand
            rec.route = _route(cand, plan, tried, rec.meta.get("purpose"))
            try:
                check_key(cand.provider)
                await self.limiter.acquire(cand.provider, tokens)
                out = build(cand, body, rec.stream)
                response = await self.upstream.open(cand.provider, out.url, headers=out.headers,
                                                    content=out.content,
                                                    on_retry=lambda why: _note(rec, why))
            except UpstreamError as exc:
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
            return response, cand, out.strip_usage
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

    async def _whole(self, response: httpx.Response, cand: Resolved, rec: CallRecord) -> bytes:
        """The whole answer in OpenAI shape (translated from the provider's format)."""
        try:
            raw = await response.aread()
        except httpx.HTTPError as exc:
            raise to_upstream_error(cand.provider, exc=exc) from None
        finally:
            await response.aclose()
        rec.ended_at = time.perf_counter()
        if cand.provider.format == "gemini":
            try:
                data = json.loads(raw)
            except ValueError:
                raise UpstreamError(f"{cand.provider.name} sent an answer that is not JSON") from None
            model = str((rec.body or {}).get("model") or cand.model.id)
            answer = gemini.from_gemini(data, model)
            rec.usage = answer.get("usage")
            rec.text = [str(c["message"].get("content") or "") for c in answer["choices"]]
            raw = json.dumps(answer, ensure_ascii=False).encode()
        else:
            rec.raw_answer = raw
        self.finish(rec)
        return raw

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


def _route(cand: Resolved, plan: Plan, tried: list[str], purpose: str | None) -> str:
    route = f"{cand.ref}; {plan.reason}"
    if plan.alias:
        route += f"; alias={plan.alias}"
    if purpose:
        route += f"; for {purpose}"
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
