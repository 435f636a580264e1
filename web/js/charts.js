// Chart.js charts over /api/stats/timeseries (aggregated in SQL; the page only draws).

import { get, qs } from "./api.js";
import { renderTotals } from "./panels.js";
import { state } from "./state.js";
import { $ } from "./ui.js";

const charts = {};
const PALETTE = ["#0ea5e9", "#f97316", "#10b981", "#a855f7", "#ef4444", "#eab308", "#14b8a6", "#6366f1"];

function themed() {
  const dark = matchMedia("(prefers-color-scheme: dark)").matches;
  Chart.defaults.color = dark ? "#cbd5e1" : "#334155";
  Chart.defaults.borderColor = dark ? "rgba(148,163,184,0.2)" : "rgba(100,116,139,0.2)";
}

function label(t, bucket) {
  const d = new Date(t * 1000);
  if (bucket >= 86400) return d.toLocaleDateString("en-GB");
  if (bucket >= 3600) return d.toLocaleString("en-GB", { day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit" });
  return d.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", hour12: false });
}

function upsert(id, config) {
  if (charts[id]) {
    charts[id].data = config.data;
    charts[id].update("none");
    return;
  }
  charts[id] = new Chart($(`#${id}`), config);
}

const base = {
  responsive: true,
  maintainAspectRatio: false,
  animation: false,
  interaction: { mode: "index", intersect: false },
  plugins: { legend: { labels: { boxWidth: 12 } } },
};

function line(labels, sets, stacked = false) {
  return {
    type: "line",
    data: {
      labels,
      datasets: sets.map(([name, data], i) => ({
        label: name, data, borderColor: PALETTE[i], backgroundColor: `${PALETTE[i]}33`,
        fill: stacked, pointRadius: 0, tension: 0.25, borderWidth: 2,
      })),
    },
    options: { ...base, scales: { y: { beginAtZero: true, stacked } } },
  };
}

function bars(labels, sets, horizontal = false) {
  return {
    type: "bar",
    data: {
      labels,
      datasets: sets.map(([name, data], i) => ({ label: name, data, backgroundColor: PALETTE[i] })),
    },
    options: { ...base, indexAxis: horizontal ? "y" : "x", scales: { x: { beginAtZero: true } } },
  };
}

function doughnut(items, value) {
  return {
    type: "doughnut",
    data: {
      labels: items.map((i) => i.key),
      datasets: [{ data: items.map(value), backgroundColor: items.map((_, i) => PALETTE[i % PALETTE.length]) }],
    },
    options: { ...base, interaction: undefined, plugins: { legend: { position: "right", labels: { boxWidth: 12 } } } },
  };
}

export async function loadCharts() {
  const data = await get(`/api/stats/timeseries${qs({ range: state.range })}`);
  renderTotals(data);
  if (typeof Chart === "undefined") return;
  themed();
  const labels = data.points.map((p) => label(p.t, data.bucket_s));
  const P = data.points;
  upsert("chart-tokens", line(labels, [
    ["input", P.map((p) => p.prompt_tokens)],
    ["output", P.map((p) => p.completion_tokens)],
    ["saved", P.map((p) => p.saved_mask_tokens + p.saved_compress_tokens)],
    ["MCP tools", P.map((p) => p.tool_tokens)],
  ]));
  upsert("chart-cost", bars(labels, [["cost (USD)", P.map((p) => Number(p.cost_usd.toFixed(6)))]]));
  const tokens = (i) => i.prompt_tokens + i.completion_tokens;
  upsert("chart-source", doughnut(data.by_source, tokens));
  upsert("chart-provider", bars(data.by_provider.map((i) => i.key), [
    ["input", data.by_provider.map((i) => i.prompt_tokens)],
    ["output", data.by_provider.map((i) => i.completion_tokens)],
  ], true));
  upsert("chart-model", bars(data.by_model.map((i) => i.key), [
    ["input", data.by_model.map((i) => i.prompt_tokens)],
    ["output", data.by_model.map((i) => i.completion_tokens)],
  ], true));
  const L = data.latency;
  upsert("chart-latency", bars(L.map((l) => l.provider), [
    ["p50", L.map((l) => l.latency_p50 ?? null)],
    ["p90", L.map((l) => l.latency_p90 ?? null)],
    ["p99", L.map((l) => l.latency_p99 ?? null)],
    ["TTFT p50", L.map((l) => l.ttft_p50 ?? null)],
  ]));
  $("#charts").dataset.points = String(P.length);
}

export function initCharts(reload) {
  for (const button of document.querySelectorAll("[data-range]")) {
    button.addEventListener("click", () => {
      state.range = button.dataset.range;
      for (const b of document.querySelectorAll("[data-range]")) {
        b.setAttribute("aria-pressed", String(b === button));
      }
      reload();
    });
  }
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    for (const c of Object.values(charts)) c.destroy();
    for (const k of Object.keys(charts)) delete charts[k];
    reload();
  });
}

export function exportHref(fmt) {
  return `/api/export${qs({ format: fmt, session: $("#export-scope").value === "session" ? state.selected : "" ,
    since: $("#export-scope").value === "range" ? rangeSince() : "" })}`;
}

function rangeSince() {
  const spans = { "15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800, "30d": 2592000 };
  return Math.floor(Date.now() / 1000 - spans[state.range]);
}
