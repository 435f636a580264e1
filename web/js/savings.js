// What the context stages saved, by transformation and by tool kind (GET /api/stats/context).

import { get } from "./api.js";
import { state } from "./state.js";
import { $, clear, el, num, usd } from "./ui.js";

const NAMES = { first_sight: "first sight", repeat: "repeats", mask: "masks", compress: "compression" };

function rows(figures, names = {}) {
  const entries = Object.entries(figures || {}).sort((a, b) => b[1].tokens - a[1].tokens);
  if (!entries.length) return [el("tr", {}, el("td", { class: "py-1 text-slate-500", colspan: "3", text: "nothing saved yet" }))];
  return entries.map(([name, f]) => el("tr", {},
    el("td", { class: "py-1", text: names[name] || name }),
    el("td", { class: "py-1 text-right tabular-nums", text: num(f.tokens) }),
    el("td", { class: "py-1 text-right tabular-nums", text: f.cost_usd ? usd(f.cost_usd) : `${num(Math.round(f.cost_tokens))} tok` })));
}

function table(caption, figures, names) {
  return el("table", { class: "w-full text-sm" },
    el("caption", { class: "text-left text-xs text-slate-500", text: caption }),
    el("thead", {}, el("tr", { class: "text-xs text-slate-500" },
      el("th", { class: "text-left font-normal", text: "" }),
      el("th", { class: "text-right font-normal", text: "tokens" }),
      el("th", { class: "text-right font-normal", text: "cost" }))),
    el("tbody", {}, ...rows(figures, names)));
}

export async function loadSavings() {
  const q = new URLSearchParams({ range: state.range || "24h" });
  const data = await get(`/api/stats/context?${q}`);
  const box = $("#savings-kinds");
  if (!box) return;
  clear(box, [table("by transformation", data.by_transform, NAMES), table("by tool kind", data.by_kind)]);
}
