// Small DOM helpers shared by the panels: elements, number formats, toasts, dialogs.

export const $ = (sel, root = document) => root.querySelector(sel);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function clear(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

export function num(n) {
  if (n === null || n === undefined) return "–";
  const v = Number(n);
  if (Math.abs(v) >= 1e9) return `${(v / 1e9).toFixed(2)}B`;
  if (Math.abs(v) >= 1e6) return `${(v / 1e6).toFixed(2)}M`;
  if (Math.abs(v) >= 1e4) return `${(v / 1e3).toFixed(1)}k`;
  return v.toLocaleString("en-US");
}

export function usd(n) {
  if (n === null || n === undefined) return "–";
  const v = Number(n);
  if (v === 0) return "$0";
  if (v < 0.01) return `$${v.toFixed(5)}`;
  return `$${v.toFixed(v < 10 ? 3 : 2)}`;
}

export function ms(n) {
  if (n === null || n === undefined) return "–";
  const v = Number(n);
  return v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} ms`;
}

export function time(t) {
  if (!t) return "–";
  const d = new Date(t * 1000);
  return d.toLocaleTimeString("en-GB", { hour12: false });
}

export function when(t) {
  if (!t) return "–";
  return new Date(t * 1000).toLocaleString("en-GB", { hour12: false });
}

const recentToasts = new Map();

// toasts with the same key within 5 s are shown once (an alert event and the gauge agree)
export function toast(message, { kind = "info", key = message, ms: life = 5000 } = {}) {
  const now = Date.now();
  if (recentToasts.has(key) && now - recentToasts.get(key) < 5000) return;
  recentToasts.set(key, now);
  const colors = {
    info: "bg-slate-800 text-white dark:bg-slate-200 dark:text-slate-900",
    warn: "bg-amber-500 text-black",
    error: "bg-red-600 text-white",
    ok: "bg-emerald-600 text-white",
  };
  const node = el("div", {
    class: `toast pointer-events-auto rounded-lg px-4 py-2 shadow-lg text-sm ${colors[kind] || colors.info}`,
    role: kind === "error" ? "alert" : "status",
    text: message,
  });
  $("#toasts").append(node);
  setTimeout(() => node.remove(), life);
}

// a modal dialog that resolves with true/false; Escape cancels
export function confirmDialog(message, okLabel = "Delete") {
  const dlg = $("#confirm");
  $("#confirm-text", dlg).textContent = message;
  $("#confirm-ok", dlg).textContent = okLabel;
  dlg.showModal();
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok"), { once: true });
  });
}

export function askTokenDialog() {
  const dlg = $("#token-dialog");
  const input = $("#token-input", dlg);
  input.value = "";
  dlg.showModal();
  input.focus();
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => resolve(input.value.trim()), { once: true });
  });
}

export function badge(text, kind) {
  const colors = {
    ok: "bg-emerald-100 text-emerald-800 dark:bg-emerald-900 dark:text-emerald-200",
    warn: "bg-amber-100 text-amber-800 dark:bg-amber-900 dark:text-amber-200",
    error: "bg-red-100 text-red-800 dark:bg-red-900 dark:text-red-200",
    muted: "bg-slate-100 text-slate-700 dark:bg-slate-800 dark:text-slate-300",
  };
  return el("span", {
    class: `inline-block rounded px-1.5 py-0.5 text-xs font-medium ${colors[kind] || colors.muted}`,
    text,
  });
}

export function debounce(fn, wait) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), wait);
  };
}

export function reportError(err) {
  toast(err && err.message ? err.message : String(err), { kind: "error" });
}
