// The JSON API: one fetch wrapper that adds the bearer token and turns errors into messages.

const TOKEN_KEY = "kimi-mcp-token";
const authWaiters = [];
let askToken = null;

export function token() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

// ui.js registers the dialog that asks for a token; calls wait here until one is given
export function onAuthNeeded(fn) {
  askToken = fn;
}

async function waitForToken() {
  if (!askToken) throw new ApiError(401, "unauthorized: set a token");
  const first = authWaiters.length === 0;
  const done = new Promise((resolve) => authWaiters.push(resolve));
  if (first) {
    const value = await askToken();
    setToken(value);
    authWaiters.splice(0).forEach((resolve) => resolve());
  }
  return done;
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(path, { method = "GET", body, retryAuth = true } = {}) {
  const headers = { accept: "application/json" };
  const t = token();
  if (t) headers.authorization = `Bearer ${t}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const resp = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (resp.status === 401 && retryAuth) {
    setToken("");
    await waitForToken();
    return api(path, { method, body, retryAuth: true });
  }
  if (resp.status === 204) return null;
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { error: { message: text } };
  }
  if (!resp.ok) {
    const msg = (data && data.error && data.error.message) || `${resp.status} ${resp.statusText}`;
    throw new ApiError(resp.status, msg);
  }
  return data;
}

// export links cannot send headers: the page downloads through fetch when a token is set
export async function download(path, filename) {
  const headers = {};
  const t = token();
  if (t) headers.authorization = `Bearer ${t}`;
  const resp = await fetch(path, { headers });
  if (!resp.ok) throw new ApiError(resp.status, `export failed: ${resp.status}`);
  const blob = await resp.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export const get = (path) => api(path);
export const post = (path, body) => api(path, { method: "POST", body });
export const patch = (path, body) => api(path, { method: "PATCH", body });
export const del = (path) => api(path, { method: "DELETE" });

export function qs(params) {
  const out = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") out.set(k, String(v));
  }
  const s = out.toString();
  return s ? `?${s}` : "";
}
