// The /ws event stream: typed events after each ledger commit; reconnects with backoff.

import { token } from "./api.js";

const handlers = new Map();
const statusListeners = [];
let socket = null;
let delay = 250;
let everConnected = false;

export function on(type, fn) {
  if (!handlers.has(type)) handlers.set(type, []);
  handlers.get(type).push(fn);
}

export function onStatus(fn) {
  statusListeners.push(fn);
}

function setStatus(online, reconnected) {
  for (const fn of statusListeners) fn(online, reconnected);
}

function url() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const t = token();
  return `${proto}//${location.host}/ws${t ? `?token=${encodeURIComponent(t)}` : ""}`;
}

export function connect() {
  let opened = false;
  try {
    socket = new WebSocket(url());
  } catch {
    scheduleReconnect();
    return;
  }
  socket.addEventListener("open", () => {
    opened = true;
    delay = 250;
    const reconnected = everConnected;
    everConnected = true;
    setStatus(true, reconnected);
  });
  socket.addEventListener("message", (msg) => {
    let event;
    try {
      event = JSON.parse(msg.data);
    } catch {
      return;
    }
    for (const fn of handlers.get(event.type) || []) fn(event.data, event);
    for (const fn of handlers.get("*") || []) fn(event.data, event);
  });
  socket.addEventListener("close", (ev) => {
    setStatus(false, false);
    if (ev.code === 4401) {
      for (const fn of handlers.get("unauthorized") || []) fn();
    }
    scheduleReconnect(opened);
  });
}

function scheduleReconnect(wasOpen) {
  if (wasOpen) delay = 250;
  setTimeout(connect, delay);
  delay = Math.min(delay * 2, 5000);
}

export function reconnectNow() {
  if (socket) socket.close();
}
