// Shared helpers of the built-in pages. Everything is rendered with textContent (never
// innerHTML with data), so node names and user input cannot inject markup.
const API = "/latest";

function token() { return localStorage.getItem("kci-token") || ""; }
function setToken(t) { localStorage.setItem("kci-token", t.trim()); }

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token()) headers["Authorization"] = "Bearer " + token();
  if (options.body && typeof options.body !== "string") {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(options.body);
  }
  const resp = await fetch(API + path, Object.assign({}, options, { headers }));
  const text = await resp.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = text; }
  if (!resp.ok) {
    const detail = body && body.detail !== undefined ? body.detail : body;
    throw new Error(resp.status + ": " + (typeof detail === "string" ? detail : JSON.stringify(detail)));
  }
  return body;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}

function table(columns, rows, onClick) {
  const t = el("table", {}, el("tr", {}, ...columns.map(c => el("th", {}, c.title))));
  for (const row of rows) {
    const tr = el("tr", onClick ? { class: "clickable", onclick: () => onClick(row) } : {},
      ...columns.map(c => {
        const v = c.value(row);
        return el("td", { class: c.cls ? c.cls(row) : "" }, v);
      }));
    t.append(tr);
  }
  return t;
}

function show(target, ...nodes) {
  const t = typeof target === "string" ? document.getElementById(target) : target;
  t.replaceChildren(...nodes);
}

function fail(target, err) { show(target, el("p", { class: "error" }, String(err.message || err))); }

function tokenBar(onChange) {
  const input = el("input", { type: "password", placeholder: "API token", size: 40 });
  input.value = token();
  return el("form", { class: "bar", onsubmit: e => { e.preventDefault(); setToken(input.value); onChange && onChange(); } },
    input, el("button", {}, "Use token"));
}
