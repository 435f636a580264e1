"""`/metrics` in Prometheus text format, computed from the ledger at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import text

from kimi_mcp.deps import Deps
from kimi_mcp.ledger.queries import COMPLETION, PROMPT

LATENCY_BUCKETS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)


class LedgerCollector(Collector):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def collect(self) -> Iterator[Metric]:
        with self.deps.ledger.read() as db:
            rows = db.execute(text(
                f"""SELECT provider, model, source, status, COUNT(*), SUM({PROMPT}), SUM({COMPLETION}),
                SUM(COALESCE(cached_tokens, 0)), SUM(cost_usd), SUM(saved_mask_tokens),
                SUM(saved_compress_tokens) FROM request GROUP BY provider, model, source, status"""
            )).all()
            cases = ", ".join(
                f"SUM(CASE WHEN latency_ms <= {b} THEN 1 ELSE 0 END)" for b in LATENCY_BUCKETS_MS
            )
            hist = db.execute(text(
                f"SELECT provider, {cases}, COUNT(*), SUM(latency_ms) FROM request "
                "WHERE latency_ms IS NOT NULL GROUP BY provider"
            )).all()
            tools = db.execute(text(
                "SELECT tool, family, SUM(is_error), COUNT(*), SUM(latency_ms), SUM(result_tokens) "
                "FROM tool_call GROUP BY tool, family"
            )).all()
            sessions = db.execute(text("SELECT COUNT(*) FROM session")).scalar() or 0

        labels = ["provider", "model", "source", "status"]
        requests = CounterMetricFamily("kimi_requests", "Chat requests recorded in the ledger", labels=labels)
        toks = CounterMetricFamily("kimi_tokens", "Tokens by kind", labels=[*labels[:3], "kind"])
        cost = CounterMetricFamily("kimi_cost_usd", "Cost in USD", labels=labels[:3])
        for provider, model, source, status, n, prompt, completion, cached, usd, mask, comp in rows:
            requests.add_metric([provider, model, source, status], n)
            for kind, value in (("prompt", prompt), ("completion", completion), ("cached", cached),
                                ("saved_mask", mask), ("saved_compress", comp)):
                toks.add_metric([provider, model, source, kind], int(value or 0))
            if usd is not None:
                cost.add_metric([provider, model, source], float(usd))
        yield from (requests, toks, cost)

        latency = HistogramMetricFamily(
            "kimi_request_latency_seconds", "Total latency of chat requests", labels=["provider"]
        )
        for row in hist:
            counts = row[1:1 + len(LATENCY_BUCKETS_MS)]
            buckets = [(str(b / 1000), int(c or 0)) for b, c in zip(LATENCY_BUCKETS_MS, counts, strict=True)]
            buckets.append(("+Inf", int(row[-2])))
            latency.add_metric([row[0]], buckets, sum_value=float(row[-1] or 0) / 1000)
        yield latency

        calls = CounterMetricFamily("kimi_tool_calls", "MCP tool calls", labels=["tool", "family", "outcome"])
        tool_latency = CounterMetricFamily("kimi_tool_latency_seconds", "Summed tool latency", labels=["tool"])
        tool_tokens = CounterMetricFamily("kimi_tool_result_tokens", "Tokens in tool results", labels=["tool"])
        for tool, family, errors, n, lat, result_tokens in tools:
            calls.add_metric([tool, family, "error"], int(errors or 0))
            calls.add_metric([tool, family, "ok"], n - int(errors or 0))
            tool_latency.add_metric([tool], float(lat or 0) / 1000)
            tool_tokens.add_metric([tool], int(result_tokens or 0))
        yield from (calls, tool_latency, tool_tokens)
        yield GaugeMetricFamily("kimi_sessions", "Sessions in the ledger", value=sessions)


def render(deps: Deps) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(deps))
    return generate_latest(registry)
