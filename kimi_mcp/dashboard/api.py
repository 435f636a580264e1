"""The JSON API under /api: sessions, stats, export. The dashboard page and scripts use it."""

from __future__ import annotations

import logging
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from kimi_mcp import stats
from kimi_mcp.dashboard import feed, panels, savings, timeseries
from kimi_mcp.dashboard.export import stream_export
from kimi_mcp.deps import Deps
from kimi_mcp.errors import RequestError, SessionNotFound
from kimi_mcp.httputil import attachment, json_error, query_float, read_json
from kimi_mcp.runtime import Runtime

log = logging.getLogger(__name__)


def routes(rt: Runtime) -> list[BaseRoute]:
    deps = rt.deps

    async def list_sessions(request: Request) -> Response:
        return JSONResponse(await anyio.to_thread.run_sync(deps.sessions.list))

    async def create_session(request: Request) -> Response:
        body = await _object(request)
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise RequestError("'name' is required: a non-empty string")
        provider, model = _opt_str(body, "provider"), _opt_str(body, "model")
        warnings = _check_choice(provider, model)
        session = await deps.sessions.create(name.strip(), provider, model,
                                             activate=body.get("activate", True))
        return JSONResponse({**session, **({"warnings": warnings} if warnings else {})},
                            status_code=201)

    def _check_choice(provider: str | None, model: str | None) -> list[str]:
        """An unknown provider or model is a 400 listing the configured ones, as in the CLI."""
        return deps.catalog.check_choice(provider, model, deps.settings.routing.aliases)

    async def get_session(request: Request) -> Response:
        return JSONResponse(await anyio.to_thread.run_sync(stats.session, deps,
                                                           request.path_params["id"]))

    async def update_session(request: Request) -> Response:
        body = await _object(request)
        allowed = {"name", "active", "context", "provider", "model", "compress_requested"}
        unknown = set(body) - allowed
        if unknown:
            raise RequestError(f"unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        if "context" in body and not isinstance(body["context"], dict):
            raise RequestError("'context' must be an object of switches, e.g. {\"sanitize\": false}")
        for key in ("active", "compress_requested"):
            if key in body and not isinstance(body[key], bool):
                raise RequestError(f"'{key}' must be true or false")
        if "provider" in body or "model" in body:
            _check_choice(_opt_str(body, "provider"), _opt_str(body, "model"))
        return JSONResponse(await deps.sessions.update(request.path_params["id"], **body))

    async def delete_session(request: Request) -> Response:
        await deps.sessions.delete(request.path_params["id"])
        return Response(status_code=204)

    async def get_stats(request: Request) -> Response:
        since, until = query_float(request, "since"), query_float(request, "until")
        session = await session_filter(deps, request.query_params.get("session"))
        data = await anyio.to_thread.run_sync(stats.summary, deps, since, until, session)
        return JSONResponse(data)

    async def export(request: Request) -> Response:
        fmt = request.query_params.get("format", "csv")
        if fmt not in ("csv", "json"):
            raise RequestError(f"'format' must be csv or json, got {fmt!r}")
        since, until = query_float(request, "since"), query_float(request, "until")
        session = await session_filter(deps, request.query_params.get("session"))
        media = "text/csv" if fmt == "csv" else "application/json"
        name = f"kimi-mcp-export{'-' + session if session else ''}.{fmt}"
        return StreamingResponse(
            stream_export(deps, fmt, session, since, until), media_type=media,
            headers={"content-disposition": attachment(name)},
        )

    return [
        *live_routes(rt),
        Route("/api/sessions", list_sessions, methods=["GET"]),
        Route("/api/sessions", create_session, methods=["POST"]),
        Route("/api/sessions/{id}", get_session, methods=["GET"]),
        Route("/api/sessions/{id}", update_session, methods=["PATCH"]),
        Route("/api/sessions/{id}", delete_session, methods=["DELETE"]),
        Route("/api/stats", get_stats, methods=["GET"]),
        Route("/api/export", export, methods=["GET"]),
    ]


async def session_filter(deps: Deps, ref: str | None) -> str | None:
    """The session a `session=` filter names, by id or by name (the resolver the CLI uses);
    an unknown one is a 404, never an empty answer that looks like "no calls"."""
    if not ref:
        return None
    found = await anyio.to_thread.run_sync(deps.sessions.resolve, ref)
    if found is None:
        raise SessionNotFound(f"no session with id or name {ref!r} (GET /api/sessions lists them)")
    return found


def live_routes(rt: Runtime) -> list[BaseRoute]:
    """What the dashboard page reads beyond sessions and totals."""
    deps = rt.deps

    async def get_settings(request: Request) -> Response:
        ctx = deps.settings.context
        return JSONResponse({
            "alert_thresholds": sorted(ctx.alert_thresholds), "compress_at": ctx.compress_at,
            "context": {"sanitize": ctx.sanitize, "memory_tags": ctx.memory_tags,
                        "compression": ctx.compression},
            "default_model": deps.settings.routing.default_model,
            "auth": bool(deps.settings.server.auth_tokens),
        })

    async def get_timeseries(request: Request) -> Response:
        q = request.query_params
        since, until, bucket = timeseries.window(q.get("range") or None, query_float(request, "since"),
                                         query_float(request, "until"),
                                         query_float(request, "bucket"))
        data = await anyio.to_thread.run_sync(timeseries.timeseries, deps, since, until, bucket,
                                              await session_filter(deps, q.get("session")))
        data["range"] = q.get("range") or None
        return JSONResponse(data)

    async def get_context_savings(request: Request) -> Response:
        q = request.query_params
        since, until, _ = timeseries.window(q.get("range") or None, query_float(request, "since"),
                                            query_float(request, "until"), None)
        data = await anyio.to_thread.run_sync(savings.context_savings, deps, since, until,
                                              await session_filter(deps, q.get("session")))
        return JSONResponse(data)

    async def list_requests(request: Request) -> Response:
        q = request.query_params
        session = await session_filter(deps, request.path_params.get("id") or q.get("session"))
        page = await anyio.to_thread.run_sync(
            feed.requests_page, deps, session, feed.parse_cursor(q.get("cursor")),
            feed.parse_limit(q.get("limit")), q.get("status") or None)
        return JSONResponse(page)

    async def get_request(request: Request) -> Response:
        row = await anyio.to_thread.run_sync(feed.request_detail, deps, request.path_params["id"])
        if row is None:
            return json_error(404, f"no request with id {request.path_params['id']!r}",
                              "request_not_found")
        return JSONResponse(row)

    async def list_tool_calls(request: Request) -> Response:
        q = request.query_params
        page = await anyio.to_thread.run_sync(
            feed.tool_calls_page, deps, await session_filter(deps, q.get("session")),
            feed.parse_cursor(q.get("cursor")), feed.parse_limit(q.get("limit")),
            q.get("tool") or None)
        return JSONResponse(page)

    async def get_providers(request: Request) -> Response:
        return JSONResponse(await anyio.to_thread.run_sync(panels.providers, rt))

    async def get_mcp(request: Request) -> Response:
        return JSONResponse(await panels.mcp_panel(rt))

    async def get_masked(request: Request) -> Response:
        mid = request.path_params["id"]
        if deps.memory is None:
            return json_error(404, "the memory engine is not part of this build", "no_memory")
        items = await deps.memory.get([mid])
        if not items:
            return json_error(404, f"no masked original with id {mid!r}", "masked_not_found")
        item = items[0]
        if request.query_params.get("raw"):
            return Response(item.content.encode("utf-8", "surrogatepass"),
                            media_type="text/plain; charset=utf-8")
        return JSONResponse({"id": item.id, "content": item.content, "tokens": item.tokens,
                             "source": item.source, "tags": item.tags, "metadata": item.metadata,
                             "created_at": item.created_at})

    async def compress(request: Request) -> Response:
        session = await deps.sessions.update(request.path_params["id"], compress_requested=True)
        return JSONResponse(session, status_code=202)

    return [
        Route("/api/settings", get_settings, methods=["GET"]),
        Route("/api/stats/timeseries", get_timeseries, methods=["GET"]),
        Route("/api/stats/context", get_context_savings, methods=["GET"]),
        Route("/api/requests", list_requests, methods=["GET"]),
        Route("/api/requests/{id}", get_request, methods=["GET"]),
        Route("/api/sessions/{id}/requests", list_requests, methods=["GET"]),
        Route("/api/sessions/{id}/compress", compress, methods=["POST"]),
        Route("/api/tool-calls", list_tool_calls, methods=["GET"]),
        Route("/api/providers", get_providers, methods=["GET"]),
        Route("/api/mcp", get_mcp, methods=["GET"]),
        Route("/api/masked/{id}", get_masked, methods=["GET"]),
    ]


async def _object(request: Request) -> dict[str, Any]:
    body = await read_json(request, 1_000_000)
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    return body


def _opt_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise RequestError(f"'{key}' must be a string")
    return value or None
