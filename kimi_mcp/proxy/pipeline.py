"""One proxied call: parse, resolve, stages, limits, upstream, answer — in any inbound format.

`Proxy.serve(request, inbound)` answers every request (`Proxy.chat` is chat completions): the
inbound adapter turns the client's body into the canonical request and the answer back into the
client's format; a `KimiError` becomes an error in the client's own shape with its status,
anything unexpected a 500 with a message that names no internals, and every call, failed or not,
hands one `CallRecord` (with `meta.inbound`) to the accountant. `Proxy.complete(body, purpose=...)`
is the same path for the product's own model calls (task planning, summaries): recorded in the
ledger like any other call, with `meta.purpose` saying why it was made.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from kimi_mcp.catalog import Provider, Resolved
from kimi_mcp.context import StageResult
from kimi_mcp.deps import Deps
from kimi_mcp.errors import KimiError, RequestError, UpstreamError, describe
from kimi_mcp.httputil import read_json
from kimi_mcp.ledger import Event
from kimi_mcp.ledger.rows import redact_headers
from kimi_mcp.proxy import profiles
from kimi_mcp.proxy.accounting import Accountant, CallRecord
from kimi_mcp.proxy.cluster import Cluster, SharedBreakers, SharedLimiter
from kimi_mcp.proxy.formats import anthropic_answer, gemini, openai_chat
from kimi_mcp.proxy.formats.canonical import usage_from_anthropic, without_origin
from kimi_mcp.proxy.formats.inbound import Inbound, Inbounds, validate_chat
from kimi_mcp.proxy.limits import Limiter
from kimi_mcp.proxy.profiles import Profile
from kimi_mcp.proxy.relays import anthropic_chunks, relay_anthropic, relay_translated
from kimi_mcp.proxy.resolve import Plan, Router
from kimi_mcp.proxy.streaming import INVALID, Relay, relay_openai
from kimi_mcp.proxy.wire import build, check_key
from kimi_mcp.tokens import count_chat, rough_prompt
from kimi_mcp.upstream import Upstream, scrub_bytes, to_upstream_error

log = logging.getLogger(__name__)

JSON_TYPE = "application/json"


class ContextStages(Protocol):
    """The context stages (memory tags, masking, compression) as the proxy calls them."""

    async def apply(self, body: dict[str, Any], *, session_id: str | None, context_window: int,
                    enabled: bool = True, model_ref: str | None = None) -> StageResult: ...


validate = validate_chat  # the chat body check, kept under its old name


@dataclass
class Proxy:
    deps: Deps
    upstream: Upstream
    stages: ContextStages | None = None
    limiter: Limiter = field(default_factory=Limiter)
    inbounds: Inbounds = field(default_factory=Inbounds)
    cluster: Cluster | None = None  # [cluster] redis_url: limits and breakers shared by workers
    breakers: SharedBreakers | None = field(init=False, default=None)
    signatures: gemini.Signatures = field(default_factory=gemini.Signatures)  # Gemini 3 tool loops
    router: Router = field(init=False)
    accountant: Accountant = field(init=False)
    _sessions: dict[str, str] = field(default_factory=dict)
    _started: bool = False

    def __post_init__(self) -> None:
        routing = self.deps.settings.routing
        if self.cluster is not None:
            self.limiter = SharedLimiter(cluster=self.cluster)
            self.breakers = SharedBreakers(self.cluster, routing.breaker_failures,
                                           routing.breaker_cooldown_s)
        self.router = Router(self.deps.catalog, routing, self.limiter,
                             on_breaker=self._breaker_event,
                             on_outcome=self.breakers.record if self.breakers else None)
        if self.breakers is not None:
            self.breakers.target = self.router
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

    def cluster_state(self) -> dict[str, Any]:
        """For `/health`: whether limits and breakers are shared (`cluster.Cluster.state`)."""
        if self.cluster is None:
            return {"redis": "off", "shared": False}
        return self.cluster.state()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Live state per provider for the dashboard: breakers, moving averages, rate limits."""
        out = self.router.snapshot()
        for name, headroom in self.limiter.snapshot().items():
            out.setdefault(name, {"breaker": "closed", "open_models": []})["rate_limit"] = headroom
        return out

    # ---- the endpoint -------------------------------------------------------------------------

    async def chat(self, request: Request) -> Response:
        return await self.serve(request, self.inbounds.openai_chat)

    async def serve(self, request: Request, inbound: Inbound) -> Response:
        """Answer one call made in `inbound`'s format (see the module docstring)."""
        rec = CallRecord(created_at=time.time(), started=time.perf_counter(), stream=False)
        rec.meta["inbound"] = inbound.name
        rec.meta["headers"] = redact_headers(request.headers)  # no credential is ever stored
        try:
            limit = int(self.deps.settings.server.max_body_mb * 1_000_000)
            raw = await read_json(request, limit)
            body, call = inbound.parse(raw)
            rec.stream = bool(body.get("stream"))
            rec.model = str(body.get("model") or "")
            ref = inbound.session_ref(request.headers, raw)
            return await self._serve(request, body, rec, _Call(inbound, call, ref))
        except Exception as exc:  # noqa: BLE001 - every failure is answered and recorded
            return self._failed(rec, exc, inbound)

    def _failed(self, rec: CallRecord, exc: Exception, inbound: Inbound | None = None) -> Response:
        info = describe(exc)
        if not isinstance(exc, KimiError):
            log.error("a proxied call failed unexpectedly", exc_info=exc)
        rec.status, rec.http_status, rec.error = "error", info.status, info.message
        self.finish(rec)
        headers = {"retry-after": f"{max(1, round(info.retry_after))}"} if info.retry_after else {}
        if rec.route:
            headers["x-kimi-route"] = rec.route
        return (inbound or self.inbounds.openai_chat).error(info, headers)

    async def _serve(self, request: Request, body: dict[str, Any], rec: CallRecord,
                     call: _Call) -> Response:
        model = body.get("model") or self.deps.settings.routing.default_model
        max_tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or 0)
        estimate = rough_prompt(body, int(request.headers.get("content-length") or 0))
        plan = self.router.plan(model, estimate, max_tokens)
        first = plan.candidates[0]
        rec.provider, rec.model, rec.resolved = first.provider.name, first.model.id, first
        rec.session_id = await self.session_for(request, body, plan.alias or first.ref, call.session)
        body = _without_session(body)
        if self.stages is not None:
            enabled = request.headers.get("x-kimi-context", "").lower() != "off"
            body = await self._apply_stages(body, rec, first, enabled)
        rec.body = body
        response, cand, strip_usage = await self._open(body, plan, rec, estimate + max_tokens,
                                                       request.headers)
        shown = str(body.get("model") or cand.model.id)
        if rec.stream:
            return self._stream(response, cand, body, rec, strip_usage, call, shown)
        raw = await self._whole(response, cand, rec, call, shown)
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

    async def count_tokens(self, request: Request) -> Response:
        """`POST /v1/messages/count_tokens`: `{"input_tokens": n}` counted with cl100k the way the
        ledger estimates prompts; the model is resolved (404 when unknown) but not called, and
        nothing is recorded."""
        inbound = self.inbounds.anthropic_count
        try:
            raw = await read_json(request, int(self.deps.settings.server.max_body_mb * 1_000_000))
            body, _ = inbound.parse(raw)
            self.router.plan(str(body.get("model") or self.deps.settings.routing.default_model), 0, 0)
            counted = await anyio.to_thread.run_sync(count_chat, without_origin(body))
        except Exception as exc:
            info = describe(exc)
            if not isinstance(exc, KimiError):
                log.error("counting tokens failed unexpectedly", exc_info=exc)
            return inbound.error(info, {})
        return JSONResponse({"input_tokens": counted})

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
            raw = await self._whole(response, cand, rec, _Call(self.inbounds.openai_chat, body),
                                    str(body.get("model") or cand.model.id))
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

    async def _open(self, body: dict[str, Any], plan: Plan, rec: CallRecord, tokens: int,
                    client_headers: Mapping[str, str] | None = None,
                    ) -> tuple[httpx.Response, Resolved, bool]:
        """The first candidate that answers; later candidates only when the failure allows."""
        tried: list[str] = []
        for index, cand in enumerate(plan.candidates):
            last = index == len(plan.candidates) - 1
            rec.provider, rec.model, rec.resolved = cand.provider.name, cand.model.id, cand
            rec.profile = profiles.of(cand.provider)
            rec.route = _route(cand, plan, tried, rec.meta.get("purpose"))
            try:
                check_key(cand.provider)
                await self.limiter.acquire(cand.provider, tokens)
                out = build(cand, body, rec.stream, client_headers, self.signatures)
                response = await self.upstream.open(cand.provider, out.url, headers=out.headers,
                                                    content=out.content,
                                                    on_retry=lambda why: _note(rec, why))
                await _check_kind(response, cand.provider, rec.stream)
            except UpstreamError as exc:
                if exc.retryable and exc.status >= 500:
                    self.router.failure(cand.ref)
                if not exc.retryable or last:
                    rec.usage = _billed(cand.provider.format, exc.answer, rec.profile) or rec.usage
                    if tried:
                        exc.args = (f"{exc} (after {'; '.join(tried)})",)
                    raise
                tried.append(f"{cand.ref}: HTTP {exc.status}")
                continue
            self.router.success(cand.ref)
            rec.http_status = response.status_code
            rec.billable = True  # the provider took the call: from here on it may bill it
            return response, cand, out.strip_usage
        raise AssertionError("a plan always has a candidate")

    def _stream(self, response: httpx.Response, cand: Resolved, body: dict[str, Any],
                rec: CallRecord, strip_usage: bool, call: _Call, shown: str) -> Response:
        headers = {"x-kimi-route": rec.route or "", "cache-control": "no-cache"}
        provider = cand.provider
        inbound = call.inbound
        gen: Any
        if provider.format == "openai" and inbound.native == "openai":
            gen = relay_openai(response, provider, rec, strip_usage, self.finish, rec.profile)
        elif provider.format == "anthropic" and inbound.native == "anthropic":
            rec.answer_format = "anthropic"
            encoder = inbound.encoder(call.call, shown)
            gen = relay_anthropic(response, provider, rec, encoder.error, self.finish)
        else:
            if provider.format == "gemini":
                chunks = gemini.chunks(response, shown, self.signatures)
            elif provider.format == "anthropic":
                chunks = anthropic_chunks(response, shown)
            else:
                chunks = openai_chat.chunks(response, provider.name, rec.profile)
            gen = relay_translated(response, provider, rec, chunks, inbound.encoder(call.call, shown),
                                   self.finish)
        return Relay(gen, response, rec, self.finish, headers=headers)

    async def _whole(self, response: httpx.Response, cand: Resolved, rec: CallRecord,
                     call: _Call, shown: str) -> bytes:
        """The whole answer in the client's format (translated from the provider's)."""
        try:
            raw = await response.aread()
        except httpx.HTTPError as exc:
            raise to_upstream_error(cand.provider, exc=exc) from None
        finally:
            await response.aclose()
        rec.ended_at = time.perf_counter()
        raw = scrub_bytes(cand.provider, raw)  # a provider that echoes the key, as streams are
        fmt = cand.provider.format
        try:
            data = _json_answer(raw, response, cand.provider.name)
        except UpstreamError:
            rec.billable = False  # not the answer asked for: nothing says the provider took it
            self.router.failure(cand.ref)
            raise
        if fmt == "openai" and rec.profile.finish_reasons:
            raw = rec.profile.rewrite_finish(raw)
        if fmt == call.inbound.native:
            rec.raw_answer, rec.answer_format = raw, fmt
            self.finish(rec)
            return raw
        notes: dict[str, Any] = {}
        try:
            completion = _completion(data, fmt, cand.provider.name, shown, rec.profile, notes,
                                     self.signatures)
        finally:
            rec.usage = notes.get("usage", rec.usage)  # a refused answer is billed too
        if fmt == "openai":
            rec.raw_answer = raw
        else:
            rec.usage = completion.get("usage")
            rec.text = [str(c.get("message", {}).get("content") or "") for c in completion["choices"]]
        self.finish(rec)
        return call.inbound.answer(completion, call.call, shown)

    # ---- sessions, accounting, events -------------------------------------------------------------

    async def session_for(self, request: Request, body: dict[str, Any], model_ref: str,
                          client_ref: str | None = None) -> str | None:
        """The session of a call: `x-kimi-session`, `metadata.session`, the client's own
        conversation id (Claude Code, Codex), or the automatic session of `model_ref`."""
        ref = request.headers.get("x-kimi-session")
        if not ref:
            meta = body.get("metadata")
            if isinstance(meta, dict) and isinstance(meta.get("session"), str):
                ref = meta["session"]
        ref = ref or client_ref
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
        if rec.stream and rec.status == "error" and rec.resolved is not None and rec.http_status == 200 \
                and rec.meta.get("error_status", 502) >= 500:
            self.router.failure(rec.resolved.ref)
        self.accountant.submit(rec)

    def _breaker_event(self, ref: str, state: str) -> None:
        self.deps.ledger.bus.publish(Event("provider", {"model": ref, "breaker": state}))


@dataclass
class _Call:
    """The inbound side of one call: its adapter, what the adapter needs back, its session ref."""

    inbound: Inbound
    call: Any
    session: str | None = None


# content types that are never the answer asked for, whatever the body (an HTML error page of a
# gateway, an event stream to a call that did not ask for one)
_NOT_JSON = ("text/html", "application/xhtml+xml", "text/event-stream")


def _content_type(response: httpx.Response) -> str:
    return str(response.headers.get("content-type", "")).partition(";")[0].strip().lower()


def _invalid(provider: str, response: httpx.Response, wanted: str) -> UpstreamError:
    kind = _content_type(response) or "no content type"
    return UpstreamError(f"{provider}: the provider answered {response.status_code} with {kind}, "
                         f"not {wanted}", status=502, code=INVALID,
                         retryable=True)


async def _check_kind(response: httpx.Response, provider: Provider, stream: bool) -> None:
    """`UpstreamError` (502, another candidate may answer) when the headers already say the
    answer is not the kind asked for: an event stream for `stream`, else JSON. A stream with no
    content type is let through (its events are checked as they come)."""
    kind = _content_type(response)
    if stream:
        if not kind or kind == "text/event-stream":
            return
        wanted = "an event stream"
    elif kind not in _NOT_JSON:
        return
    else:
        wanted = "JSON"
    try:
        head = await response.aread()
    except httpx.HTTPError:
        head = b""
    finally:
        await response.aclose()
    log.warning("%s answered %s to a %s call: %r", provider.name, kind or "no content type",
                "streamed" if stream else "non-streamed", scrub_bytes(provider, head[:200]))
    raise _invalid(provider.name, response, wanted)


def _json_answer(raw: bytes, response: httpx.Response, provider: str) -> dict[str, Any]:
    """A whole answer as the JSON object it must be; anything else is a 502 naming what came."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise _invalid(provider, response, "JSON") from None
    if not isinstance(data, dict):
        raise _invalid(provider, response, "a JSON object")
    return data


def _billed(fmt: str, answer: dict[str, Any] | None, profile: Profile) -> dict[str, Any] | None:
    """The usage a provider's error answer reports (it bills the call), in OpenAI's shape."""
    if answer is None:
        return None
    if fmt == "gemini":
        return gemini.usage_of(answer.get("usageMetadata"))
    if fmt == "anthropic":
        usage = answer.get("usage")
        return usage_from_anthropic(usage) if isinstance(usage, dict) else None
    return profile.usage(answer)


def _completion(data: dict[str, Any], fmt: str, provider: str, model: str,
                profile: Profile, notes: dict[str, Any] | None = None,
                signatures: gemini.Signatures | None = None) -> dict[str, Any]:
    """A provider's whole answer as a canonical chat.completion (`notes`: see `from_gemini`)."""
    if fmt == "gemini":
        return gemini.from_gemini(data, model, notes, signatures)
    if fmt == "anthropic":
        return anthropic_answer.to_canonical_answer(data, model)
    message = profile.stream_error(data)
    if message is not None:
        raise UpstreamError(f"{provider} reported an error: {message}")
    if not isinstance(data.get("choices"), list):
        raise UpstreamError(f"{provider} sent an answer without choices")
    usage = profile.usage(data)
    if usage is not None and usage is not data.get("usage"):
        data["usage"] = usage  # the translated answer carries it where clients look
    return data


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
