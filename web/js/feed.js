// The live feed: requests and tool calls, newest first, filterable, with a detail drawer.

import { get, qs } from "./api.js";
import { state } from "./state.js";
import { $, badge, clear, el, ms, num, reportError, time, usd, when } from "./ui.js";

const MAX_ROWS = 300;
let rows = []; // {kind, id, created_at, ...}
let lastFocus = null;

function key(r) {
  return `${r.kind}:${r.id}`;
}

export async function loadFeed() {
  const [reqs, tools] = await Promise.all([
    get(`/api/requests${qs({ limit: 100 })}`),
    get(`/api/tool-calls${qs({ limit: 100 })}`),
  ]);
  rows = [
    ...reqs.items.map((r) => ({ ...r, kind: "request" })),
    ...tools.items.map((r) => ({ ...r, kind: "tool_call" })),
  ];
  render();
}

export function addEvent(kind, data) {
  const row = { ...data, kind };
  if (rows.some((r) => key(r) === key(row))) return;
  rows.unshift(row);
  render();
}

export function removeSession(id) {
  rows = rows.filter((r) => r.session_id !== id);
  render();
}

function sorted() {
  rows.sort((a, b) => b.created_at - a.created_at || b.id - a.id);
  rows = rows.slice(0, MAX_ROWS);
  return rows;
}

function matches(r) {
  const kind = $("#feed-kind").value;
  if (kind === "request" && r.kind !== "request") return false;
  if (kind === "tool_call" && r.kind !== "tool_call") return false;
  if (kind === "error" && !(r.status && r.status !== "ok") && !r.is_error) return false;
  if ($("#feed-mine").checked && r.session_id !== state.selected) return false;
  const q = $("#feed-filter").value.trim().toLowerCase();
  if (!q) return true;
  const hay = [r.model, r.provider, r.tool, r.family, r.status, r.source, r.error, inboundOf(r)]
    .filter(Boolean).join(" ").toLowerCase();
  return hay.includes(q);
}

// the client's API format of a proxied call: page rows carry `inbound`, live events `meta.inbound`
const FORMATS = { openai_chat: "chat", anthropic_messages: "messages", openai_responses: "responses" };

function inboundOf(r) {
  const found = r.inbound || (r.meta && r.meta.inbound);
  return found ? FORMATS[found] || found : null;
}

function sourceCell(r) {
  if (r.kind !== "request") return badge("mcp", "muted");
  const format = inboundOf(r);
  return el("span", { class: "inline-flex gap-1" }, badge(r.source || "proxy", "muted"),
    format ? badge(format, "muted") : null);
}

function statusBadge(r) {
  if (r.kind === "tool_call") return badge(r.is_error ? "error" : "ok", r.is_error ? "error" : "ok");
  if (r.status === "ok") return badge(String(r.http_status || "ok"), "ok");
  const label = `${r.status || "?"}${r.http_status ? ` ${r.http_status}` : ""}`;
  return badge(label, r.status === "cancelled" ? "warn" : "error");
}

function rowFor(r) {
  const isReq = r.kind === "request";
  const saved = (r.saved_mask_tokens || 0) + (r.saved_compress_tokens || 0);
  const tin = isReq ? r.prompt_tokens ?? r.est_prompt_tokens : r.args_tokens;
  const tout = isReq ? r.completion_tokens ?? r.est_completion_tokens : r.result_tokens;
  return el(
    "tr",
    {
      class: "feed-row cursor-pointer hover:bg-slate-100 dark:hover:bg-slate-800 focus:bg-sky-50 dark:focus:bg-sky-950 outline-none",
      tabindex: "0",
      dataset: { kind: r.kind, id: String(r.id) },
      onclick: () => openDrawer(r),
      onkeydown: (ev) => {
        if (ev.key === "Enter" || ev.key === " ") {
          ev.preventDefault();
          openDrawer(r);
        }
      },
    },
    el("td", { class: "px-2 py-1 tabular-nums text-slate-500", text: time(r.created_at) }),
    el("td", { class: "px-2 py-1", title: isReq ? inboundOf(r) || "" : "" }, sourceCell(r)),
    el("td", { class: "px-2 py-1 font-medium truncate max-w-[16rem]", title: isReq ? `${r.provider}/${r.model}` : r.tool,
      text: isReq ? r.model : r.tool }),
    el("td", { class: "px-2 py-1 text-right tabular-nums", text: num(tin) }),
    el("td", { class: "px-2 py-1 text-right tabular-nums", text: num(tout) }),
    el("td", { class: "px-2 py-1 text-right tabular-nums hidden md:table-cell", text: isReq ? usd(r.cost_usd) : "" }),
    el("td", { class: "px-2 py-1 text-right tabular-nums hidden lg:table-cell", text: isReq ? ms(r.ttft_ms) : "" }),
    el("td", { class: "px-2 py-1 text-right tabular-nums hidden sm:table-cell", text: ms(r.latency_ms) }),
    el("td", { class: "px-2 py-1 text-right tabular-nums text-emerald-600 dark:text-emerald-400", text: saved ? num(saved) : "" }),
    el("td", { class: "px-2 py-1" }, statusBadge(r)),
  );
}

export function render() {
  const body = $("#feed-body");
  const shown = sorted().filter(matches);
  clear(body, shown.map(rowFor));
  $("#feed-empty").hidden = shown.length > 0;
  $("#feed-count").textContent = `${shown.length} shown`;
}

function field(label, value) {
  return [el("dt", { class: "text-slate-500", text: label }), el("dd", { class: "font-mono break-all", text: value ?? "–" })];
}

async function openDrawer(r) {
  lastFocus = document.activeElement;
  const drawer = $("#drawer");
  const body = $("#drawer-body");
  $("#drawer-title").textContent = r.kind === "request" ? `Request #${r.id}` : `Tool call #${r.id}`;
  clear(body, el("p", { class: "text-slate-500", text: "Loading…" }));
  drawer.hidden = false;
  $("#drawer-close").focus();
  try {
    const d = r.kind === "request" ? await get(`/api/requests/${r.id}`) : r;
    clear(body, r.kind === "request" ? requestDetail(d) : toolDetail(d));
  } catch (err) {
    clear(body, el("p", { class: "text-red-600", text: err.message }));
  }
}

export function closeDrawer() {
  $("#drawer").hidden = true;
  if (lastFocus) lastFocus.focus();
}

function errorBlock(error) {
  if (!error) return null;
  return el("div", {},
    el("h3", { class: "mt-4 font-semibold text-red-600", text: "Error" }),
    el("pre", { class: "drawer-error mt-1 whitespace-pre-wrap rounded bg-red-50 dark:bg-red-950 p-2 text-xs", text: error }));
}

function requestDetail(d) {
  const dl = el("dl", { class: "grid grid-cols-[10rem_1fr] gap-x-3 gap-y-1 text-sm" },
    field("time", when(d.created_at)), field("session", d.session_id), field("source", d.source),
    field("client format", (d.meta && d.meta.inbound) || "–"),
    field("provider / model", `${d.provider} / ${d.model}`), field("route", d.route),
    field("status", `${d.status} ${d.http_status ?? ""}`), field("stream", String(d.stream)),
    field("prompt tokens", `${num(d.prompt_tokens)} reported · ${num(d.est_prompt_tokens)} estimated`),
    field("completion tokens", `${num(d.completion_tokens)} reported · ${num(d.est_completion_tokens)} estimated`),
    field("cached / reasoning", `${num(d.cached_tokens)} / ${num(d.reasoning_tokens)}`),
    field("usage from", d.usage_source), field("cost", usd(d.cost_usd)),
    field("TTFT / latency", `${ms(d.ttft_ms)} / ${ms(d.latency_ms)}`),
    field("saved (mask / compress)", `${num(d.saved_mask_tokens)} / ${num(d.saved_compress_tokens)}`),
    field("context window", num(d.context_window)));
  const headers = Object.entries(d.headers || {});
  return [
    dl,
    errorBlock(d.error),
    el("h3", { class: "mt-4 font-semibold", text: "Headers" }),
    headers.length
      ? el("dl", { class: "grid grid-cols-[10rem_1fr] gap-x-3 gap-y-1 text-xs" }, headers.map(([k, v]) => field(k, v)))
      : el("p", { class: "text-sm text-slate-500", text: "none recorded" }),
    el("h3", { class: "mt-4 font-semibold", text: "Masked blocks" }),
    (d.masked || []).length
      ? el("ul", { class: "space-y-2" }, d.masked.map(maskedItem))
      : el("p", { class: "text-sm text-slate-500", text: "nothing was masked" }),
  ];
}

function maskedItem(block) {
  const out = el("pre", { class: "masked-original mt-1 max-h-80 overflow-auto whitespace-pre-wrap rounded bg-slate-100 dark:bg-slate-800 p-2 text-xs", hidden: true });
  const button = el("button", {
    class: "btn-secondary", type: "button", text: "Show original",
    onclick: async () => {
      try {
        const m = await get(`/api/masked/${encodeURIComponent(block.id)}`);
        out.textContent = m.content;
        out.hidden = false;
        button.hidden = true;
      } catch (err) {
        reportError(err);
      }
    },
  });
  const label = `${block.id}${block.tokens ? ` · ${num(block.tokens)} tokens` : ""}${block.preview ? ` · ${block.preview}` : ""}`;
  return el("li", { class: "text-sm" }, el("span", { class: "font-mono text-xs", text: label }), " ", button, out);
}

function toolDetail(d) {
  return [
    el("dl", { class: "grid grid-cols-[10rem_1fr] gap-x-3 gap-y-1 text-sm" },
      field("time", when(d.created_at)), field("session", d.session_id), field("tool", d.tool),
      field("family", d.family), field("args tokens", num(d.args_tokens)),
      field("result tokens", num(d.result_tokens)), field("latency", ms(d.latency_ms)),
      field("status", d.is_error ? "error" : "ok")),
    errorBlock(d.error),
  ];
}

export function initFeed() {
  for (const id of ["#feed-filter", "#feed-kind", "#feed-mine"]) {
    $(id).addEventListener("input", render);
  }
  $("#drawer-close").addEventListener("click", closeDrawer);
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && !$("#drawer").hidden) closeDrawer();
  });
}
