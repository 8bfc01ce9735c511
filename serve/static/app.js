// codevec search page: renders the JSON API's answers (the page knows no SQL).
//
// The address bar holds the state: ?q=&mode=&lang=&path_like=&k=&exclude_tests=
// for a search, ?similar=ID for the code similar to a snippet; back and
// forward replay them.  Code is highlighted by Debian's highlight.js,
// served by codevec-serve from /hljs/ (nothing is fetched from elsewhere).

const $ = (sel) => document.querySelector(sel);
const form = $("#search");
const resultsEl = $("#results");
const statusEl = $("#status");
const timingsEl = $("#timings");
const FIELDS = ["q", "mode", "lang", "path_like", "k", "exclude_tests"];
const HLJS_NAMES = { tsx: "typescript", cpp: "cpp", c: "c", python: "python", javascript: "javascript",
  typescript: "typescript", go: "go", rust: "rust", java: "java" };
let selected = -1;

// fetch JSON from the API; a token (asked for once on 401) goes in sessionStorage
async function api(path) {
  const headers = {};
  const token = sessionStorage.getItem("codevec-token");
  if (token) headers.Authorization = "Bearer " + token;
  const t0 = performance.now();
  let resp = await fetch(path, { headers });
  if (resp.status === 401) {
    const t = prompt("This server needs a token:");
    if (t) {
      sessionStorage.setItem("codevec-token", t);
      return api(path);
    }
  }
  const body = await resp.json().catch(() => ({ error: { message: "the server's answer is not JSON" } }));
  body.roundTripMs = performance.now() - t0;
  if (!resp.ok) {
    const e = body.error || {};
    throw new Error((e.message || resp.statusText) + (e.sqlstate ? " (SQLSTATE " + e.sqlstate + ")" : ""));
  }
  return body;
}

function highlight(codeEl, text, language) {
  codeEl.textContent = text;
  const hljs = window.hljs;
  const name = HLJS_NAMES[language];
  if (!hljs || !name || !hljs.getLanguage(name)) return;
  // highlight.js 9 and 10 (Debian 12 ships 9.18) take (language, code);
  // 11 takes (code, {language}); 9 has no versionString
  const major = parseInt(hljs.versionString || "9", 10);
  const r = major < 11
    ? hljs.highlight(name, text, true) : hljs.highlight(text, { language: name, ignoreIllegals: true });
  codeEl.innerHTML = r.value;	// highlight.js escapes the code it marks up
  codeEl.classList.add("hljs");
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function fmt(x, digits = 3) {
  return x === null || x === undefined ? "–" : Number(x).toFixed(digits);
}

function renderRow(r, i) {
  const li = el("li", "result");
  li.dataset.id = r.id;
  li.dataset.index = i;
  const head = el("div", "head");
  head.append(el("span", "repo", r.repo),
    el("span", "path", `${r.path}:${r.start_line}-${r.end_line}`),
    el("span", "symbol", r.qualified_name || r.symbol || ""),
    el("span", "kind", [r.kind, r.language].filter(Boolean).join(" · ")));
  const scores = el("span", "scores",
    `score ${fmt(r.score, 4)} · vector #${r.vector_rank ?? "–"} (d ${fmt(r.distance)}) · keyword #${r.keyword_rank ?? "–"}`);
  head.append(scores);
  const pre = el("pre");
  const code = el("code");
  pre.append(code);
  highlight(code, r.code ?? r.preview ?? "", r.language);
  li.append(head, pre);
  if (r.code_truncated) li.append(el("div", "more", `… ${r.end_line - r.start_line + 1} lines in all`));
  const links = el("div", "links");
  const similar = el("a", "similar", "similar code");
  similar.href = "?similar=" + encodeURIComponent(r.id);
  similar.addEventListener("click", (ev) => { ev.preventDefault(); go({ similar: String(r.id) }); });
  const inFile = el("a", "in-file", "show in file");
  inFile.href = "#";
  inFile.addEventListener("click", (ev) => { ev.preventDefault(); showInFile(li, r); });
  links.append(similar, inFile);
  li.append(links);
  li.addEventListener("click", () => select(i, false));
  return li;
}

async function showInFile(li, r) {
  const old = li.querySelector("pre.context, .context-note");
  if (old) { old.remove(); return; }
  try {
    const s = await api(`api/snippet/${encodeURIComponent(r.id)}?context=10`);
    if (!s.context) {
      li.querySelector(".links").before(el("div", "more context-note", "file not available: " + s.context_unavailable));
      return;
    }
    const pre = el("pre", "context");
    const code = el("code");
    pre.append(code);
    highlight(code, s.context.text, s.language);
    pre.title = `${s.path} lines ${s.context.start_line}-${s.context.end_line}`;
    li.querySelector(".links").before(pre);
  } catch (e) {
    setStatus(e.message, true);
  }
}

function setStatus(text, error = false) {
  statusEl.textContent = text;
  statusEl.classList.toggle("error", error);
}

function render(body, what) {
  resultsEl.replaceChildren(...body.results.map(renderRow));
  selected = -1;
  const t = body.timings || {};
  setStatus(`${body.results.length} result${body.results.length === 1 ? "" : "s"} ${what}`);
  timingsEl.textContent = `database ${fmt(t.db_ms, 1)} ms · server ${fmt(t.total_ms, 1)} ms · ` +
    `round trip ${fmt(body.roundTripMs, 1)} ms`;
  document.body.dataset.state = "done";
}

// runs what the address bar says
async function run() {
  const params = new URLSearchParams(location.search);
  for (const f of FIELDS) {
    const input = form.elements[f];
    if (!input) continue;
    if (input.type === "checkbox") input.checked = params.get(f) === "true";
    else if (params.has(f)) input.value = params.get(f);
  }
  document.body.dataset.state = "loading";
  try {
    if (params.has("similar")) {
      setStatus("looking for similar code…");
      const body = await api(`api/similar/${encodeURIComponent(params.get("similar"))}?k=${form.elements.k.value}`);
      render(body, `similar to snippet ${params.get("similar")}`);
    } else if (params.get("q")) {
      setStatus("searching…");
      const q = new URLSearchParams();
      for (const f of FIELDS) if (params.get(f)) q.set(f, params.get(f));
      const body = await api("api/search?" + q);
      render(body, `for “${params.get("q")}” (${body.mode})`);
    } else {
      resultsEl.replaceChildren();
      setStatus("");
      timingsEl.textContent = "";
      document.body.dataset.state = "idle";
    }
  } catch (e) {
    resultsEl.replaceChildren();
    timingsEl.textContent = "";
    setStatus(e.message, true);
    document.body.dataset.state = "error";
  }
}

function go(params) {
  history.pushState(null, "", "?" + new URLSearchParams(params));
  run();
}

function select(i, scroll = true) {
  const items = resultsEl.children;
  if (!items.length) return;
  i = Math.max(0, Math.min(items.length - 1, i));
  if (selected >= 0 && items[selected]) items[selected].classList.remove("selected");
  selected = i;
  items[i].classList.add("selected");
  if (scroll) items[i].scrollIntoView({ block: "nearest" });
}

form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const p = {};
  for (const f of FIELDS) {
    const input = form.elements[f];
    if (input.type === "checkbox") { if (input.checked) p[f] = "true"; }
    else if (input.value && !(f === "mode" && input.value === "hybrid") && !(f === "k" && input.value === "10"))
      p[f] = input.value;
  }
  go(p);
  $("#q").blur();
});

document.addEventListener("keydown", (ev) => {
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
  if (ev.key === "Escape") { $("#q").focus(); $("#q").select(); return; }
  if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const item = resultsEl.children[selected];
  if (ev.key === "/") { ev.preventDefault(); $("#q").focus(); $("#q").select(); }
  else if (ev.key === "j" || ev.key === "ArrowDown") { ev.preventDefault(); select(selected + 1); }
  else if (ev.key === "k" || ev.key === "ArrowUp") { ev.preventDefault(); select(selected - 1); }
  else if ((ev.key === "o" || ev.key === "Enter") && item) item.querySelector("a.in-file").click();
  else if (ev.key === "s" && item) item.querySelector("a.similar").click();
});

window.addEventListener("popstate", run);

// the languages in the database, for the filter
api("api/repos").then((body) => {
  const sel = form.elements.lang;
  const want = new URLSearchParams(location.search).get("lang");
  for (const l of body.languages) sel.append(new Option(`${l.language} (${l.files})`, l.language));
  if (want) sel.value = want;
}).catch(() => {});

run();
