// The providers and MCP panels, and the totals strip.

import { get } from "./api.js";
import { state } from "./state.js";
import { $, badge, clear, el, ms, num, usd } from "./ui.js";

const HEALTH = { ok: "ok", idle: "muted", degraded: "warn", failing: "error", down: "error", "no key": "muted" };

export async function loadProviders() {
  state.providers = await get("/api/providers");
  renderProviders();
}

function headroom(rl) {
  if (!rl) return "–";
  if (typeof rl !== "object") return String(rl);
  return Object.entries(rl).map(([k, v]) => `${k} ${typeof v === "number" ? num(v) : v}`).join(" · ");
}

export function renderProviders() {
  const rows = state.providers.map((p) => {
    const r = p.recent || {};
    return el("tr", { class: "border-t border-slate-200 dark:border-slate-700", dataset: { provider: p.name } },
      el("td", { class: "px-2 py-1 font-medium", text: p.name }),
      el("td", { class: "px-2 py-1" }, badge(p.has_key ? "key set" : p.key_required ? "no key" : "no key needed", p.has_key || !p.key_required ? "ok" : "muted")),
      el("td", { class: "px-2 py-1" }, badge(p.health, HEALTH[p.health] || "muted")),
      el("td", { class: "px-2 py-1 hidden md:table-cell", text: p.breaker }),
      el("td", { class: "px-2 py-1 hidden lg:table-cell text-xs", text: headroom(p.rate_limit) }),
      el("td", { class: "px-2 py-1 text-right tabular-nums", text: ms(r.avg_latency_ms) }),
      el("td", { class: "px-2 py-1 text-right tabular-nums hidden sm:table-cell", text: ms(r.avg_ttft_ms) }),
      el("td", { class: "px-2 py-1 text-right tabular-nums hidden md:table-cell", text: r.tokens_per_s ? `${r.tokens_per_s}/s` : "–" }),
      el("td", { class: "px-2 py-1 text-right tabular-nums", text: r.requests ? `${(r.error_rate * 100).toFixed(0)}%` : "–" }),
      el("td", { class: "px-2 py-1 text-right tabular-nums hidden sm:table-cell", text: String(p.models.length) }));
  });
  clear($("#providers-body"), rows);
}

export async function loadMcp() {
  const data = await get("/api/mcp");
  const fams = data.families.map((f) => el("details", { class: "mcp-family rounded border border-slate-200 dark:border-slate-700 p-2" },
    el("summary", { class: "cursor-pointer font-medium" },
      `${f.name} `, el("span", { class: "text-xs text-slate-500", text: `${f.tools.length} tools · ${num(f.calls)} calls · ${num(f.errors)} errors` })),
    el("table", { class: "mt-2 w-full text-xs" },
      el("thead", {}, el("tr", { class: "text-left text-slate-500" },
        ["tool", "calls", "errors", "avg", "max", "result tok"].map((h) => el("th", { class: "px-1 font-normal", text: h })))),
      el("tbody", {}, f.tools.map((t) => el("tr", {},
        el("td", { class: "px-1 font-mono", text: t.tool }),
        el("td", { class: "px-1 tabular-nums", text: num(t.calls) }),
        el("td", { class: "px-1 tabular-nums", text: t.calls ? `${(t.error_rate * 100).toFixed(0)}%` : "–" }),
        el("td", { class: "px-1 tabular-nums", text: ms(t.avg_latency_ms) }),
        el("td", { class: "px-1 tabular-nums", text: ms(t.max_latency_ms) }),
        el("td", { class: "px-1 tabular-nums", text: num(t.result_tokens) })))))));
  clear($("#mcp-families"), fams.length ? fams : el("p", { class: "text-sm text-slate-500", text: "no families mounted" }));
  const mem = data.memory;
  $("#mcp-memory").textContent = mem ? `${num(mem.memories)} memories in ${mem.project} (${num(mem.all_projects)} in all)` : "memory engine not available";
  const tasks = data.tasks;
  const board = $("#mcp-tasks");
  if (!tasks || !tasks.tags) {
    board.textContent = tasks && tasks.error ? tasks.error : "no task board in this workspace";
    return;
  }
  clear(board, Object.entries(tasks.tags).map(([tag, t]) => el("div", { class: "text-sm" },
    el("div", { class: "flex justify-between" }, el("span", { text: tag }),
      el("span", { class: "tabular-nums", text: `${t.by_status.done || 0}/${t.total} done` })),
    el("progress", { class: "w-full", max: "1", value: String(t.done_ratio), "aria-label": `${tag} progress` }))));
}

// the totals strip folds the timeseries the charts already asked for: no extra scan
export function renderTotals(data) {
  const sum = (k) => data.points.reduce((a, p) => a + p[k], 0);
  const mcp = data.by_source.find((s) => s.key === "mcp") || { requests: 0, prompt_tokens: 0 };
  const mask = sum("saved_mask_tokens");
  const compress = sum("saved_compress_tokens");
  const errors = sum("errors");
  const cached = sum("cached_tokens");
  const items = [
    ["Requests", num(sum("requests")), errors ? `${num(errors)} errors` : ""],
    ["Input tokens", num(sum("prompt_tokens")), cached ? `${num(cached)} cached` : ""],
    ["Output tokens", num(sum("completion_tokens")), ""],
    ["Cost", usd(sum("cost_usd")), ""],
    ["Saved tokens", num(mask + compress), `mask ${num(mask)} · compress ${num(compress)}`],
    ["Tool calls", num(mcp.requests), `${num(mcp.prompt_tokens)} result tokens`],
  ];
  clear($("#totals"), items.map(([k, v, sub]) => el("div", { class: "card py-2" },
    el("div", { class: "text-xs text-slate-500", text: k }),
    el("div", { class: "text-lg font-semibold tabular-nums", text: v }),
    el("div", { class: "text-xs text-slate-500 truncate", text: sub }))));
}
