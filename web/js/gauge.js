// The context gauge: the last request's prompt tokens against the model's context window.

import { get, qs } from "./api.js";
import { contextWindow, selectedSession, state } from "./state.js";
import { $, num, toast } from "./ui.js";

const ARC = 251.3; // length of the semicircle path below (π · 80)
let current = { ratio: null, session: null };

export function colorFor(ratio) {
  const t = [...state.settings.alert_thresholds].sort((a, b) => a - b);
  if (ratio === null) return "#94a3b8";
  if (t.length >= 2 && ratio >= t[1]) return "#dc2626"; // red from the second threshold
  if (t.length >= 1 && ratio >= t[0]) return "#eab308"; // yellow from the first
  return "#16a34a";
}

export function renderGauge(row) {
  const session = selectedSession();
  const prompt = row ? row.prompt_tokens ?? row.est_prompt_tokens ?? 0 : null;
  const win = row ? contextWindow(row.provider, row.model, row.context_window) : null;
  const ratio = prompt !== null && win ? Math.min(prompt / win, 1.5) : null;
  const arc = $("#gauge-arc");
  arc.setAttribute("stroke-dasharray", `${ratio === null ? 0 : Math.min(ratio, 1) * ARC} ${ARC}`);
  arc.setAttribute("stroke", colorFor(ratio));
  const meter = $("#gauge");
  meter.setAttribute("aria-valuenow", ratio === null ? "0" : String(Math.round(ratio * 100)));
  meter.dataset.ratio = ratio === null ? "" : ratio.toFixed(4);
  meter.dataset.prompt = prompt === null ? "" : String(prompt);
  $("#gauge-pct").textContent = ratio === null ? "–" : `${Math.round(ratio * 100)}%`;
  $("#gauge-tokens").textContent =
    prompt === null ? "no request yet" : `${num(prompt)} / ${win ? num(win) : "?"} tokens`;
  $("#gauge-model").textContent = row ? `${row.provider}/${row.model}` : session ? session.name : "";
  const saved = session ? session.totals.saved_tokens : 0;
  $("#gauge-saved").textContent = num(saved);
  const sessionId = session ? session.id : null;
  if (ratio !== null && current.session === sessionId && current.ratio !== null) {
    for (const t of state.settings.alert_thresholds) {
      if (current.ratio < t && ratio >= t) {
        toast(`Context ${Math.round(ratio * 100)}% full: crossed ${Math.round(t * 100)}%`, {
          kind: t >= 0.8 ? "error" : "warn",
          key: `threshold:${sessionId}:${t}`,
        });
      }
    }
  }
  current = { ratio, session: sessionId };
}

export async function loadGauge() {
  if (!state.selected) {
    renderGauge(null);
    return;
  }
  const page = await get(`/api/sessions/${state.selected}/requests${qs({ limit: 1 })}`);
  renderGauge(page.items[0] || null);
}

export function thresholdTicks() {
  const group = $("#gauge-ticks");
  group.replaceChildren();
  for (const t of state.settings.alert_thresholds) {
    const angle = Math.PI * (1 - t);
    const x1 = 100 + 70 * Math.cos(angle);
    const y1 = 100 - 70 * Math.sin(angle);
    const x2 = 100 + 92 * Math.cos(angle);
    const y2 = 100 - 92 * Math.sin(angle);
    const line = document.createElementNS("http://www.w3.org/2000/svg", "line");
    for (const [k, v] of Object.entries({ x1, y1, x2, y2 })) line.setAttribute(k, v.toFixed(1));
    line.setAttribute("class", "stroke-slate-400 dark:stroke-slate-500");
    line.setAttribute("stroke-width", "2");
    group.append(line);
  }
}
