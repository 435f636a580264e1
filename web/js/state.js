// What the panels share: settings, the provider catalog, sessions and the selected session.

const listeners = new Map();

export const state = {
  settings: { alert_thresholds: [0.5, 0.8, 0.95], compress_at: 0.85, context: {} },
  providers: [],
  sessions: [],
  selected: null, // session id
  follow: true, // until the user picks a session, follow the session of the newest request
  range: "24h",
};

export function onChange(key, fn) {
  if (!listeners.has(key)) listeners.set(key, []);
  listeners.get(key).push(fn);
}

export function set(key, value) {
  state[key] = value;
  for (const fn of listeners.get(key) || []) fn(value);
}

export function selectedSession() {
  return state.sessions.find((s) => s.id === state.selected) || null;
}

// the context window of a model: the request's own figure, else the catalog's
export function contextWindow(provider, model, fromRow) {
  if (fromRow) return fromRow;
  const p = state.providers.find((x) => x.name === provider);
  const m = p && p.models.find((x) => x.id === model);
  if (m) return m.context_window;
  for (const q of state.providers) {
    const hit = q.models.find((x) => x.id === model || `${q.name}/${x.id}` === model);
    if (hit) return hit.context_window;
  }
  return null;
}
