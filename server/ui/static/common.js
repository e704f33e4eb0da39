// Shared by every dashboard page: DOM building (text only, never HTML from data), the API
// client with the session's admin token, error banners, polling and formatting.

const TOKEN_KEY = "morphml-admin-token";

export class ApiError extends Error {
  constructor(status, detail, path) {
    super(status ? `${path}: ${status} ${detail}` : `${path}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

// el("a", {href: "/x", class: "c"}, "text", child): strings become text nodes, so a hostile
// name or error message is shown as it is and never parsed as markup.
export function el(tag, attrs = {}, ...children) {
  return build(document.createElement(tag), attrs, children);
}

export function svg(tag, attrs = {}, ...children) {
  return build(document.createElementNS("http://www.w3.org/2000/svg", tag), attrs, children);
}

function build(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function replace(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  return node;
}

// --- the admin token, asked once per browser session -----------------------------------------

let asking = null;

function askToken(reason) {
  if (asking) return asking;
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  document.getElementById("token-reason").textContent = reason;
  input.value = "";
  asking = new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      asking = null;
      const token = input.value.trim();
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      resolve(Boolean(token));
    }, { once: true });
  });
  if (!dialog.open) dialog.showModal();
  return asking;
}

function setupTokenButton() {
  document.getElementById("token-button")?.addEventListener("click", () => {
    askToken("Enter the admin token to use in this browser session.");
  });
  document.getElementById("token-forget")?.addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    document.getElementById("token-input").value = "";
    document.getElementById("token-dialog").close();
  });
}

// --- the API ---------------------------------------------------------------------------------

export async function api(path, { method = "GET", retried = false } = {}) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, { method, headers, cache: "no-store" });
  } catch (error) {
    throw new ApiError(0, "cannot reach the server (is morphml-server running?)", path);
  }
  if (response.status === 401 && !retried) {
    if (token) sessionStorage.removeItem(TOKEN_KEY);
    const reason = token ? "The server refused that token; enter the admin token." :
      "This server needs its admin token (MORPHML_ADMIN_TOKEN). It is kept for this browser session only.";
    if (await askToken(reason)) return api(path, { method, retried: true });
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, detailOf(body, response), path);
  return body;
}

function detailOf(body, response) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
  }
  return response.statusText || "error";
}

// --- errors and live updates -----------------------------------------------------------------

export function showError(error) {
  const banner = document.getElementById("banner");
  banner.textContent = error instanceof ApiError ? error.message : `Error: ${error}`;
  banner.hidden = false;
  setLive(false);
}

export function clearError() {
  document.getElementById("banner").hidden = true;
}

function setLive(ok) {
  const live = document.getElementById("live");
  live.className = ok ? "live ok" : "live down";
  live.textContent = ok ? `live · ${new Date().toLocaleTimeString()}` : "retrying…";
}

// Polling, not server-sent events: EventSource cannot send the Authorization header (the token
// would have to ride in the URL, into access logs), and a plain GET every few seconds works
// through every proxy and against any replica. Paused while the tab is hidden.
export function poll(refresh, intervalMs = () => 3000) {
  let timer = null;
  const run = async () => {
    clearTimeout(timer);
    try {
      await refresh();
      clearError();
      setLive(true);
    } catch (error) {
      // Gone or never there (404), or an id the server refuses (422): nothing to poll for.
      if (error.status === 404 || error.status === 422) return fatal(error);
      showError(error);
    }
    timer = setTimeout(tick, intervalMs());
  };
  const tick = () => (document.hidden ? (timer = setTimeout(tick, 1000)) : run());
  run();
  return run; // call to refresh now (after an action)
}

// A page whose main resource failed (a 404, a bad id) shows the error in its body.
export function fatal(error) {
  showError(error);
  replace(document.getElementById("main"),
    el("section", { class: "card error-card" }, el("h1", {}, "Cannot show this page"),
      el("p", { class: "error-text" }, error.message || String(error))));
}

// --- formatting ------------------------------------------------------------------------------

export function fmt(value, digits = 4) {
  if (value === null || value === undefined) return "—";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return value.toExponential(2);
  return value.toFixed(digits).replace(/\.?0+$/, "");
}

export function fmtCount(value) {
  if (value === null || value === undefined) return "—";
  if (value >= 1e9) return `${(value / 1e9).toFixed(2)} G`;
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)} M`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)} k`;
  return String(value);
}

export function age(from, now) {
  if (!from) return "—";
  const seconds = Math.max(0, (Date.parse(now || new Date().toISOString()) - Date.parse(from)) / 1000);
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

export function time(value) {
  return value ? new Date(value).toLocaleString() : "—";
}

export function badge(state) {
  return el("span", { class: `badge s-${String(state).replace(/[^a-z_]/g, "")}` }, state);
}

export function link(href, text) {
  return el("a", { href }, text);
}

export function section(title, ...children) {
  return el("section", { class: "card" }, el("h2", {}, title), ...children);
}

export function pageId() {
  const id = Number(location.pathname.split("/").pop());
  return Number.isInteger(id) && id > 0 ? id : null;
}

export function setActiveNav(name) {
  document.querySelector(`[data-nav="${name}"]`)?.classList.add("active");
}

setupTokenButton();
