// papersys search page: reads the query from the URL, calls the JSON API, renders with textContent only
// (never innerHTML with data). A search is a page load of /?q=…, so it can be bookmarked and reloaded.
"use strict";

const TOKEN_KEY = "papersys-token";
const FIELDS = ["q", "mode", "since", "until", "k"];

function $(id) { return document.getElementById(id); }

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function headers() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: "Bearer " + token } : {};
}

async function getJson(path) {
  const response = await fetch(path, { headers: headers() });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const error = new Error((body && body.error) || response.status + " " + response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

// The state of the page is the URL: q or similar, plus the filters.
function readUrl() {
  const params = new URLSearchParams(location.search);
  const state = {};
  for (const name of FIELDS) state[name] = params.get(name) || "";
  state.similar = params.get("similar") || "";
  state.categories = params.getAll("category").flatMap((c) => c.split(/[\s,]+/)).filter(Boolean);
  return state;
}

function fillForm(state) {
  for (const name of FIELDS) if (state[name]) $(name).value = state[name];
  $("category").value = state.categories.join(" ");
}

function pageUrl(form) {
  const params = new URLSearchParams();
  for (const name of FIELDS) {
    const value = $(name).value.trim();
    if (value && !(name === "k" && value === "10")) params.set(name, value);
  }
  for (const cat of $("category").value.split(/[\s,]+/).filter(Boolean)) params.append("category", cat);
  return form.action.split("?")[0] + "?" + params.toString();
}

function apiUrl(state) {
  const params = new URLSearchParams();
  if (!state.similar) params.set("q", state.q);
  for (const name of ["mode", "since", "until", "k"]) {
    if (state[name] && !(state.similar && name === "mode")) params.set(name, state[name]);
  }
  for (const cat of state.categories) params.append("category", cat);
  const base = state.similar ? "/api/similar/" + encodeURIComponent(state.similar).replace(/%2F/g, "/") : "/api/search";
  return base + "?" + params.toString();
}

function authorsLine(authors) {
  if (authors.length <= 6) return authors.join(", ");
  return authors.slice(0, 5).join(", ") + " et al. (" + authors.length + " authors)";
}

function renderHit(hit) {
  const item = el("li");
  item.dataset.id = hit.id;
  const title = el("p", "title");
  const link = el("a", null, hit.title);
  link.href = hit.url;
  link.rel = "noopener";
  title.append(link);
  const meta = el("p", "meta");
  meta.append(el("span", "authors", authorsLine(hit.authors)));
  meta.append(document.createTextNode(" · " + (hit.created || "no date") + " · " + hit.id + " · "));
  meta.append(el("span", "score", "score " + Number(hit.score).toFixed(4)));
  const cats = el("p", "meta cats");
  for (const cat of hit.categories) cats.append(el("span", null, cat));
  const actions = el("div", "actions");
  const abstract = el("details", "abstract");
  abstract.append(el("summary", null, "Abstract"), el("p", null, hit.abstract));
  const similar = el("a", "similar", "Similar papers");
  similar.href = "/?similar=" + encodeURIComponent(hit.id);
  actions.append(abstract, similar);
  item.append(title, meta, cats, actions);
  return item;
}

function showMessage(text, isError) {
  const message = $("message");
  message.textContent = text;
  message.className = isError ? "error" : "";
}

async function run(state) {
  if (!state.q && !state.similar) return;
  $("heading").textContent = state.similar ? "Papers similar to " + state.similar : "Results for " + state.q;
  document.title = (state.similar || state.q) + " – papersys";
  showMessage("Searching…", false);
  try {
    const result = await getJson(apiUrl(state));
    const list = $("results");
    list.replaceChildren(...result.results.map(renderHit));
    const filters = result.filters.categories.length ? " in " + result.filters.categories.join(", ") : "";
    showMessage(result.results.length + " papers" + filters + " · " + result.mode + " (" + result.model + ") · "
      + Math.round(result.took_ms) + " ms", false);
  } catch (error) {
    $("results").replaceChildren();
    showMessage(error.message, true);
    if (error.status === 401) $("auth").open = true;
  }
}

const STATUS_KEY = "papersys-status";
const STATUS_TTL_MS = 5 * 60 * 1000;  // every search is a page load: ask for the status once in a while

async function corpusStatus() {
  try {
    const cached = JSON.parse(sessionStorage.getItem(STATUS_KEY) || "null");
    if (cached && Date.now() - cached.at < STATUS_TTL_MS) return cached.status;
  } catch (_) { /* a damaged entry: ask again */ }
  const status = await getJson("/api/status");
  sessionStorage.setItem(STATUS_KEY, JSON.stringify({ at: Date.now(), status: status }));
  return status;
}

async function footer() {
  try {
    const status = await corpusStatus();
    const parts = [status.total_papers.toLocaleString("en") + " papers"];
    for (const model of status.models) {
      if (model.enabled) parts.push(model.alias + " coverage " + (100 * model.coverage).toFixed(1) + "%");
    }
    const harvests = Object.values(status.watermarks || {}).map((w) => w.updated_at).sort();
    parts.push("last harvest " + (harvests.length ? harvests[harvests.length - 1] : "never"));
    $("footer").textContent = parts.join(" · ");
  } catch (error) {
    $("footer").textContent = error.status === 401 ? "Corpus status needs the access token." : "";
  }
}

function main() {
  const state = readUrl();
  fillForm(state);
  $("token").value = sessionStorage.getItem(TOKEN_KEY) || "";
  $("search").addEventListener("submit", (event) => {
    event.preventDefault();  // the same page load as the plain form, without empty parameters in the URL
    location.assign(pageUrl(event.target));
  });
  $("save-token").addEventListener("click", () => {
    const token = $("token").value.trim();
    if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(STATUS_KEY);
    location.reload();
  });
  if (!state.q && !state.similar) $("q").focus();
  run(state);
  footer();
}

main();
