// Sessions: create, select, rename, delete; per-session totals; compression and stage switches.

import { del, get, patch, post } from "./api.js";
import { selectedSession, set, state } from "./state.js";
import { $, clear, confirmDialog, el, num, reportError, toast, usd } from "./ui.js";

const SWITCHES = [
  ["sanitize", "Mask verbose tool output"],
  ["memory_tags", "Memory tags"],
  ["compression", "Compression"],
];

export async function loadSessions() {
  state.sessions = await get("/api/sessions");
  if (state.selected && !state.sessions.some((s) => s.id === state.selected)) state.selected = null;
  if (!state.selected) {
    const active = state.sessions.find((s) => s.active) || state.sessions[0];
    state.selected = active ? active.id : null;
  }
  renderSessions();
}

export function select(id, byUser = true) {
  if (byUser) state.follow = false;
  if (id === state.selected) return;
  set("selected", id);
  renderSessions();
}

function sessionItem(s) {
  const chosen = s.id === state.selected;
  const t = s.totals;
  return el("li", {
    class: `session-item rounded-lg border p-2 ${chosen ? "border-sky-500 bg-sky-50 dark:bg-sky-950" : "border-slate-200 dark:border-slate-700"}`,
    dataset: { id: s.id },
  },
  el("div", { class: "flex items-center gap-2" },
    el("button", {
      class: "session-select flex-1 text-left font-medium truncate focus:outline-none focus-visible:ring-2 focus-visible:ring-sky-500 rounded",
      type: "button", "aria-pressed": String(chosen), title: s.id,
      onclick: () => select(s.id),
    }, s.name, s.active ? el("span", { class: "ml-1 text-xs text-sky-600", text: "· active" }) : null),
    el("button", { class: "btn-icon session-rename", type: "button", "aria-label": `Rename ${s.name}`, text: "rename", onclick: () => rename(s) }),
    el("button", { class: "btn-icon session-delete", type: "button", "aria-label": `Delete ${s.name}`, text: "delete", onclick: () => remove(s) })),
  el("div", { class: "mt-1 text-xs text-slate-500 flex flex-wrap gap-x-3" },
    el("span", { text: s.model ? `${s.provider ? `${s.provider}/` : ""}${s.model}` : "any model" }),
    el("span", { text: `${num(t.requests)} req` }),
    el("span", { text: `${num(t.prompt_tokens + t.completion_tokens)} tok` }),
    el("span", { text: usd(t.cost_usd) }),
    el("span", { class: "text-emerald-600 dark:text-emerald-400", text: `saved ${num(t.saved_tokens)}` }),
    el("span", { text: `${num(t.tool_calls)} tool calls` })));
}

export function renderSessions() {
  clear($("#session-list"), state.sessions.map(sessionItem));
  $("#sessions-empty").hidden = state.sessions.length > 0;
  renderControls();
}

function renderControls() {
  const s = selectedSession();
  $("#controls-session").textContent = s ? s.name : "no session selected";
  $("#compress-btn").disabled = !s;
  $("#compress-state").textContent = s && s.compress_requested ? "compression requested: runs on the next request" : "";
  const box = $("#stage-switches");
  clear(box, SWITCHES.map(([key, labelText]) => {
    const value = s && key in (s.context || {}) ? s.context[key] : state.settings.context[key] !== false;
    return el("label", { class: "flex items-center gap-2 text-sm" },
      el("input", {
        type: "checkbox", class: "stage-switch h-4 w-4 accent-sky-600", dataset: { key },
        checked: value, disabled: !s,
        onchange: (ev) => toggleStage(key, ev.target.checked),
      }), labelText);
  }));
}

async function toggleStage(key, on) {
  try {
    const updated = await patch(`/api/sessions/${state.selected}`, { context: { [key]: on } });
    merge(updated);
    toast(`${key} ${on ? "on" : "off"} for ${updated.name}`, { kind: "ok" });
  } catch (err) {
    reportError(err);
    renderControls();
  }
}

export function merge(session) {
  const i = state.sessions.findIndex((s) => s.id === session.id);
  if (i >= 0) state.sessions[i] = { ...state.sessions[i], ...session };
  renderSessions();
}

async function rename(s) {
  const name = prompt("New name for the session", s.name);
  if (!name || name.trim() === s.name) return;
  try {
    merge(await patch(`/api/sessions/${s.id}`, { name: name.trim() }));
  } catch (err) {
    reportError(err);
  }
}

async function remove(s) {
  const ok = await confirmDialog(`Delete session “${s.name}” with its ${s.totals.requests} requests and ${s.totals.tool_calls} tool calls? This cannot be undone.`);
  if (!ok) return;
  try {
    await del(`/api/sessions/${s.id}`);
    state.sessions = state.sessions.filter((x) => x.id !== s.id);
    if (state.selected === s.id) set("selected", state.sessions[0] ? state.sessions[0].id : null);
    renderSessions();
    toast(`Deleted ${s.name}`, { kind: "ok" });
  } catch (err) {
    reportError(err);
  }
}

function fillModels() {
  const provider = state.providers.find((p) => p.name === $("#new-provider").value);
  const models = provider ? provider.models : [];
  clear($("#new-model"), el("option", { value: "", text: "any model" }),
    models.map((m) => el("option", { value: m.id, text: m.id })));
}

export function fillProviders() {
  const current = $("#new-provider").value;
  clear($("#new-provider"), el("option", { value: "", text: "any provider" }),
    state.providers.map((p) => el("option", { value: p.name, text: `${p.name}${p.has_key || !p.key_required ? "" : " (no key)"}` })));
  $("#new-provider").value = current;
  fillModels();
}

async function create(ev) {
  ev.preventDefault();
  const name = $("#new-name").value.trim();
  if (!name) return;
  try {
    const s = await post("/api/sessions", {
      name, provider: $("#new-provider").value || null, model: $("#new-model").value || null,
    });
    $("#new-name").value = "";
    await loadSessions();
    select(s.id);
    toast(`Created ${s.name}`, { kind: "ok" });
  } catch (err) {
    reportError(err);
  }
}

async function compress() {
  try {
    merge(await post(`/api/sessions/${state.selected}/compress`));
    toast("Compression requested for the next request", { kind: "ok" });
  } catch (err) {
    reportError(err);
  }
}

export function initSessions() {
  $("#new-session").addEventListener("submit", create);
  $("#new-provider").addEventListener("change", fillModels);
  $("#compress-btn").addEventListener("click", compress);
}
