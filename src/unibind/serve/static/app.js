// unibind search page: plain JS, no build step, talks to /api only.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { file: null, similar: null, info: null, seq: 0, controller: null };
const DEBOUNCE_MS = 250;
const MOD_NAMES = { text: "text", image: "images", audio: "sounds" };

function token() { return sessionStorage.getItem("unibind-token") || ""; }

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token()) headers.Authorization = "Bearer " + token();
  const response = await fetch(path, Object.assign({}, options, { headers }));
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (response.status === 401) { $("#token-box").hidden = false; $("#token").focus(); }
  if (!response.ok) {
    const message = (body && (body.error || body.detail)) || response.statusText;
    throw new Error(typeof message === "string" ? message : JSON.stringify(message));
  }
  return body;
}

function itemUrl(id, tail) { return "/api/items/" + encodeURIComponent(id) + tail; }

function options() {
  const modality = [...document.querySelectorAll("#modalities input:checked")].map((x) => x.value);
  return { k: Number($("#k").value), modality, balance: $("#balance").value || null };
}

function setStatus(text, error = false) {
  $("#status").textContent = text;
  $("#status").classList.toggle("error", error);
}

async function search() {
  const text = $("#q").value.trim();
  const opts = options();
  if (!opts.modality.length) { setStatus("Pick at least one modality to show."); return; }
  let path, init;
  if (state.similar) {
    path = itemUrl(state.similar.id, "/similar");
    init = { method: "POST", headers: { "Content-Type": "application/json" },
             body: JSON.stringify(opts) };
  } else if (state.file) {
    const form = new FormData();
    form.append("file", state.file, state.file.name);
    if (text) form.append("text", text);
    form.append("k", String(opts.k));
    form.append("modality", opts.modality.join(","));
    if (opts.balance) form.append("balance", opts.balance);
    path = "/api/search";
    init = { method: "POST", body: form };
  } else if (text) {
    path = "/api/search";
    init = { method: "POST", headers: { "Content-Type": "application/json" },
             body: JSON.stringify(Object.assign({ text }, opts)) };
  } else {
    $("#results").replaceChildren();
    setStatus("Type something, drop an image or a sound, or pick a file.");
    return;
  }
  if (state.controller) state.controller.abort();
  state.controller = new AbortController();
  init.signal = state.controller.signal;
  const seq = ++state.seq;
  const started = performance.now();
  setStatus("Searching…");
  try {
    const result = await api(path, init);
    if (seq !== state.seq) return;
    render(result, performance.now() - started);
  } catch (err) {
    if (err.name === "AbortError" || seq !== state.seq) return;
    setStatus("Error: " + err.message, true);
  }
}

let timer = null;
function searchSoon() { clearTimeout(timer); timer = setTimeout(search, DEBOUNCE_MS); }

function grouped(results) {
  // one heading per modality, in the order each first appears (rank order kept inside)
  const order = [...new Set(results.map((r) => r.modality))];
  return order.flatMap((m) => {
    const mine = results.filter((r) => r.modality === m);
    return [el("li", { class: "group-head", role: "presentation", "data-modality": m },
               (MOD_NAMES[m] || m) + " ", el("span", { class: "muted" }, `(${mine.length})`)),
            ...mine.map(card)];
  });
}

function showWithheld(result) {
  // targets a mixed search gave no slots: unreachable, or their scores at the noise floor
  const entries = Object.entries(result.withheld || {});
  const box = $("#withheld");
  const lines = entries.map(([m, why]) => `No ${MOD_NAMES[m] || m}: ${why}.`);
  if (result.note) lines.push(result.note.charAt(0).toUpperCase() + result.note.slice(1) + ".");
  box.hidden = !lines.length;
  box.textContent = lines.join(" ");
}

function render(result, ms) {
  const list = $("#results");
  list.replaceChildren(...($("#group").checked ? grouped(result.results)
                                              : result.results.map(card)));
  list.classList.toggle("grouped", $("#group").checked);
  showWithheld(result);
  document.body.dataset.results = String(result.results.length);
  setStatus(`${result.results.length} results in ${Math.round(ms)} ms · mode ${result.mode}`
            + (state.similar ? ` · similar to ${shortName(state.similar)}` : ""));
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function shortName(r) { return (r.path || r.id).split("/").pop(); }

function card(r) {
  let media;
  const preview = (state.info.previews || {})[r.modality];
  if ("text" in r) {
    media = el("div", { class: "media text" }, r.text || "");
  } else if (preview === "image") {
    media = el("div", { class: "media image" },
               el("img", { src: itemUrl(r.id, "/media?size=256"), alt: r.label || r.id,
                           loading: "lazy" }));
  } else if (preview === "audio") {
    const player = el("audio", { controls: "", preload: "none",
                                 src: itemUrl(r.id, "/media"),
                                 "aria-label": "play " + (r.label || r.id) });
    player.addEventListener("click", (e) => e.stopPropagation());
    player.addEventListener("keydown", (e) => e.stopPropagation());
    media = el("div", { class: "media audio" }, el("span", { class: "wave" }, "♪"), player);
  } else {
    media = el("div", { class: "media text" }, shortName(r));
  }
  const name = shortName(r);
  const item = el("li", { class: "result", tabindex: "0", role: "button",
                          "data-id": r.id, "data-modality": r.modality,
                          "aria-label": `${r.rank}. ${r.modality} ${r.label}: search by it` },
    media,
    el("div", { class: "meta" },
       el("span", { class: "badge " + r.modality }, r.modality),
       el("span", { class: "label-name" }, String(r.label ?? "")),
       el("span", { class: "score", title: "score" }, r.score.toFixed(3))),
    el("div", { class: "id", title: r.id }, `#${r.rank} · ${name}`));
  const go = () => searchBy(r);
  item.addEventListener("click", go);
  item.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); go(); }
  });
  return item;
}

function searchBy(r) {
  state.similar = r;
  state.file = null;
  $("#q").value = "";
  chips();
  search();
  window.scrollTo({ top: 0, behavior: "smooth" });
}

function chips() {
  const box = $("#chips");
  box.replaceChildren();
  const clear = () => { state.file = null; state.similar = null; chips(); search(); };
  if (state.file) {
    const preview = state.file.type.startsWith("image/")
      ? el("img", { src: URL.createObjectURL(state.file), alt: "" }) : el("span", {}, "♪");
    const remove = el("button", { type: "button", "aria-label": "remove the file" }, "×");
    remove.addEventListener("click", clear);
    box.append(el("span", { class: "chip" }, preview, state.file.name, remove));
  }
  if (state.similar) {
    const remove = el("button", { type: "button", "aria-label": "stop searching by this item" },
                      "×");
    remove.addEventListener("click", clear);
    box.append(el("span", { class: "chip" },
                  `similar to ${state.similar.modality} ${shortName(state.similar)}`
                  + ` (${state.similar.label})`, remove));
  }
}

function useFile(file) {
  if (!file) return;
  state.file = file;
  state.similar = null;
  chips();
  search();
}

function setup(info) {
  state.info = info;
  const counts = Object.entries(info.items).map(([m, n]) => `${n} ${MOD_NAMES[m] || m}`);
  $("#run-info").textContent = `${info.name} · ${counts.join(", ")}`
    + (info.metrics.cross_modal ? ` · held-out cross-modal R@10 `
       + info.metrics.cross_modal["R@10"].toFixed(2) : "");
  const mods = $("#modalities");
  mods.replaceChildren(...Object.keys(info.items).map((m) => {
    const box = el("input", { type: "checkbox", value: m, checked: "" });
    box.addEventListener("change", search);
    return el("label", {}, box, " " + (MOD_NAMES[m] || m));
  }));
  const balance = $("#balance");
  balance.replaceChildren(...info.balance.modes.map((m) =>
    el("option", m === info.balance.default ? { value: m, selected: "" } : { value: m },
       m + (m === info.balance.default ? " (run default)" : ""))));
  setStatus("Type something, drop an image or a sound, or pick a file.");
}

function wire() {
  const q = $("#q");
  q.addEventListener("input", () => { state.similar = null; chips(); searchSoon(); });
  q.addEventListener("keydown", (e) => {
    if (e.key === "Enter") { clearTimeout(timer); search(); }
    if (e.key === "Escape") { q.value = ""; state.file = null; state.similar = null; chips();
                              search(); }
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "/" && document.activeElement !== q) { e.preventDefault(); q.focus(); }
  });
  $("#balance").addEventListener("change", search);
  const group = $("#group");
  group.checked = localStorage.getItem("unibind-group") === "1";
  group.addEventListener("change", () => {
    localStorage.setItem("unibind-group", group.checked ? "1" : "0");
    search();
  });
  $("#k").addEventListener("change", search);
  const file = $("#file");
  $("#pick").addEventListener("click", () => file.click());
  file.addEventListener("change", () => { useFile(file.files[0]); file.value = ""; });
  const drop = $("#drop");
  drop.addEventListener("click", () => file.click());
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); file.click(); }
  });
  for (const type of ["dragenter", "dragover"]) {
    document.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "dragend"]) {
    document.addEventListener(type, () => drop.classList.remove("over"));
  }
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer && e.dataTransfer.files.length) useFile(e.dataTransfer.files[0]);
  });
  $("#token-save").addEventListener("click", () => {
    sessionStorage.setItem("unibind-token", $("#token").value);
    $("#token-box").hidden = true;
    start();
  });
}

async function start() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) { sessionStorage.setItem("unibind-token", fromHash); history.replaceState(
    null, "", location.pathname); }
  try {
    setup(await api("/api/info"));
    document.body.dataset.ready = "1";
    if ($("#q").value.trim()) search();
  } catch (err) {
    setStatus("Cannot load the run: " + err.message, true);
  }
}

wire();
start();
