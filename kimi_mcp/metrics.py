"""`/metrics` in Prometheus text format, read from the ledger's rollups at scrape time.

A scrape reads the hourly rollups (a few rows per hour of traffic), never the raw rows, and
counts what every process and worker on the ledger recorded. The writer's own health — its queue,
rows dropped, rows waiting in the spool — is this process's.
"""

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

from kimi_mcp.deps import Deps
from kimi_mcp.ledger import queries, reads
from kimi_mcp.ledger.models import LATENCY_BUCKETS_MS


class LedgerCollector(Collector):
    def __init__(self, deps: Deps, shared: bool | None = None) -> None:
        self.deps = deps
        self.shared = shared

    def collect(self) -> Iterator[Metric]:
        with self.deps.ledger.read() as db:
            groups = queries.request_totals(db, by=("provider", "model", "source", "status"))
            tools = queries.tool_totals(db, by=("tool", "family"))
            sessions = reads.session_count(db)
        yield from _requests(groups)
        yield from _tools(tools)
        yield GaugeMetricFamily("kimi_sessions", "Sessions in the ledger", value=sessions)
        yield from _writer(self.deps)
        if self.shared is not None:
            yield GaugeMetricFamily(
                "kimi_cluster_shared", "1 while this worker shares rate limits and circuit "
                "breakers through Redis; 0 without [cluster] redis_url or while Redis is "
                "unreachable", value=int(self.shared))


def _requests(groups: dict[tuple[object, ...], queries.Totals]) -> Iterator[Metric]:
    labels = ["provider", "model", "source", "status"]
    requests = CounterMetricFamily("kimi_requests", "Chat requests recorded in the ledger",
                                   labels=labels)
    toks = CounterMetricFamily("kimi_tokens", "Tokens by kind", labels=[*labels[:3], "kind"])
    cost = CounterMetricFamily("kimi_cost_usd", "Cost in USD", labels=labels[:3])
    tokens: dict[tuple[str, ...], int] = {}
    costs: dict[tuple[str, ...], float] = {}
    by_provider: dict[str, list[float]] = {}
    for key, t in groups.items():
        provider, model, source, status = (str(k or "") for k in key)
        name: tuple[str, ...]
        requests.add_metric([provider, model, source, status], t.requests)
        for kind, value in (("prompt", t.prompt_tokens), ("completion", t.completion_tokens),
                            ("cached", t.cached_tokens), ("saved_mask", t.saved_mask_tokens),
                            ("saved_compress", t.saved_compress_tokens)):
            name = (provider, model, source, kind)
            tokens[name] = tokens.get(name, 0) + value
        if t.cost_usd is not None:
            costs[(provider, model, source)] = costs.get((provider, model, source), 0.0) + t.cost_usd
        hist = by_provider.setdefault(provider, [0.0] * (len(LATENCY_BUCKETS_MS) + 2))
        for i, n in enumerate(t.latency_histogram):
            hist[i] += n
        hist[-1] += t.latency_sum_ms
    for labels_, value in tokens.items():
        toks.add_metric(list(labels_), value)
    for labels_, usd in costs.items():
        cost.add_metric(list(labels_), usd)
    yield from (requests, toks, cost)
    latency = HistogramMetricFamily(
        "kimi_request_latency_seconds", "Total latency of chat requests", labels=["provider"])
    for provider, hist in by_provider.items():
        counts = hist[:-1]
        if not sum(counts):
            continue
        running, buckets = 0, []
        for bound, in_bucket in zip((*LATENCY_BUCKETS_MS, None), counts, strict=True):
            running += int(in_bucket)
            buckets.append(("+Inf" if bound is None else str(bound / 1000), int(running)))
        latency.add_metric([provider], buckets, sum_value=hist[-1] / 1000)
    yield latency


def _tools(tools: dict[tuple[object, ...], queries.ToolTotals]) -> Iterator[Metric]:
    calls = CounterMetricFamily("kimi_tool_calls", "MCP tool calls",
                                labels=["tool", "family", "outcome"])
    tool_latency = CounterMetricFamily("kimi_tool_latency_seconds", "Summed tool latency",
                                       labels=["tool"])
    tool_tokens = CounterMetricFamily("kimi_tool_result_tokens", "Tokens in tool results",
                                      labels=["tool"])
    for (tool, family), t in tools.items():
        calls.add_metric([str(tool), str(family), "error"], t.errors)
        calls.add_metric([str(tool), str(family), "ok"], t.calls - t.errors)
        tool_latency.add_metric([str(tool)], t.latency_sum_ms / 1000)
        tool_tokens.add_metric([str(tool)], t.result_tokens)
    yield from (calls, tool_latency, tool_tokens)


def _writer(deps: Deps) -> Iterator[Metric]:
    stats = deps.ledger.stats()
    yield GaugeMetricFamily("kimi_ledger_queue_depth",
                            "Rows and writes waiting for this process's ledger writer",
                            value=stats.queue_depth)
    yield GaugeMetricFamily("kimi_ledger_spool_pending",
                            "Rows in this process's spool not yet committed", value=stats.spool_pending)
    yield CounterMetricFamily("kimi_ledger_committed_rows",
                              "Rows this process's writer committed", value=stats.committed_rows)
    yield CounterMetricFamily("kimi_ledger_dropped_rows",
                              "Rows the database refused for good (never retried)",
                              value=stats.dropped_rows)
    yield CounterMetricFamily("kimi_ledger_replayed_rows",
                              "Rows replayed from the spool of a process that had crashed",
                              value=stats.replayed_rows)
    yield CounterMetricFamily("kimi_ledger_busy_retries",
                              "Commits retried because the database was busy", value=stats.retries)


def render(deps: Deps, shared: bool | None = None) -> bytes:
    """The scrape; `shared` is whether limits and breakers go through Redis right now (None:
    a process without a proxy)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(deps, shared))
    return generate_latest(registry)
