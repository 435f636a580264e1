// Boot: load every panel, then keep them live from /ws events; reload nothing by hand.

import { download, get, onAuthNeeded } from "./api.js";
import { exportHref, initCharts, loadCharts } from "./charts.js";
import { addEvent, initFeed, loadFeed, removeSession, render as renderFeed } from "./feed.js";
import { loadGauge, renderGauge, thresholdTicks } from "./gauge.js";
import { loadMcp, loadProviders } from "./panels.js";
import { loadSavings } from "./savings.js";
import { fillProviders, initSessions, loadSessions, merge, renderSessions, select } from "./sessions.js";
import { onChange, state } from "./state.js";
import { $, askTokenDialog, debounce, reportError, toast } from "./ui.js";
import { connect, on, onStatus, reconnectNow } from "./ws.js";

const safely = (fn) => (...args) => Promise.resolve().then(() => fn(...args)).catch(reportError);

const refreshCharts = debounce(safely(() => Promise.all([loadCharts(), loadSavings()])), 1500);
const refreshSessions = debounce(safely(loadSessions), 700);
const refreshMcp = debounce(safely(loadMcp), 3000);
const refreshProviders = debounce(safely(loadProviders), 3000);

async function loadAll() {
  state.settings = await get("/api/settings");
  thresholdTicks();
  await Promise.all([
    loadProviders().then(fillProviders),
    loadSessions(),
    loadFeed(),
    loadCharts(),
    loadSavings(),
    loadMcp(),
  ]);
  await loadGauge();
  document.body.dataset.ready = "true";
}

function onRequest(row) {
  addEvent("request", row);
  if (row.session_id && state.follow && row.session_id !== state.selected) {
    select(row.session_id, false);
  }
  if (row.session_id && row.session_id === state.selected) {
    const s = state.sessions.find((x) => x.id === row.session_id);
    if (s) s.totals.saved_tokens += (row.saved_mask_tokens || 0) + (row.saved_compress_tokens || 0);
    renderGauge(row);
  }
  refreshSessions();
  refreshCharts();
  refreshProviders();
}

function onSession(data) {
  if (data.action === "deleted") {
    state.sessions = state.sessions.filter((s) => s.id !== data.session.id);
    removeSession(data.session.id);
    if (state.selected === data.session.id) state.selected = state.sessions[0] ? state.sessions[0].id : null;
    renderSessions();
    safely(loadGauge)();
  } else if (state.sessions.some((s) => s.id === data.session.id)) {
    merge(data.session);
  } else {
    refreshSessions();
  }
}

function wire() {
  on("request", onRequest);
  on("tool_call", (row) => {
    addEvent("tool_call", row);
    refreshCharts();
    refreshMcp();
  });
  on("session", onSession);
  on("provider", () => refreshProviders()); // a circuit breaker opened or closed
  on("alert", (a) => {
    const pct = Math.round((a.threshold || 0) * 100);
    toast(a.message || `Context usage crossed ${pct}%`, {
      kind: a.threshold >= 0.8 ? "error" : "warn",
      key: `threshold:${a.session_id}:${a.threshold}`,
    });
  });
  on("masked", (m) => toast(`Masked ${m.tokens ? `${m.tokens} tokens` : "a block"}${m.tool ? ` from ${m.tool}` : ""}`, { key: `masked:${m.id}` }));
  on("compression", (c) => {
    toast(`Compressed: saved ${c.saved_tokens ?? "?"} tokens`, { kind: "ok" });
    refreshSessions();
  });
  on("unauthorized", async () => {
    const { setToken } = await import("./api.js");
    setToken(await askTokenDialog());
    reconnectNow();
  });
  onStatus((online, reconnected) => {
    const pill = $("#conn");
    pill.textContent = online ? "live" : "offline";
    pill.dataset.state = online ? "online" : "offline";
    pill.className = `rounded-full px-2 py-0.5 text-xs font-semibold ${online ? "bg-emerald-100 text-emerald-800 dark:bg-emerald-900 dark:text-emerald-200" : "bg-red-100 text-red-800 dark:bg-red-900 dark:text-red-200"}`;
    if (reconnected) safely(loadAll)(); // catch up on what happened while offline
  });
  onChange("selected", () => {
    safely(loadGauge)();
    renderFeed();
  });
  for (const fmt of ["csv", "json"]) {
    $(`#export-${fmt}`).addEventListener("click", safely(async (ev) => {
      ev.preventDefault();
      const href = exportHref(fmt);
      $(`#export-${fmt}`).setAttribute("href", href);
      await download(href, `kimi-mcp-export.${fmt}`);
    }));
  }
}

onAuthNeeded(askTokenDialog);
initFeed();
initSessions();
initCharts(() => refreshCharts());
wire();
safely(loadAll)();
connect();
