// initlab lab: one page, no build step. Talks to the JSON API under /api; runs stream as
// server-sent events over a fetch() POST. The whole setup lives in the URL's query string.
"use strict";

const $ = (id) => document.getElementById(id);
const VERDICT_CLASS = { healthy: "ok", symmetry: "bad", dead_units: "bad", vanishing_gradients: "warn",
  exploding_gradients: "warn", saturation: "warn", non_finite: "bad", attention_collapse: "warn" };
const VERDICT_LABEL = { healthy: "healthy", symmetry: "symmetry", dead_units: "dead units",
  vanishing_gradients: "vanishing gradients", exploding_gradients: "exploding gradients", saturation: "saturation",
  non_finite: "not finite", attention_collapse: "attention collapse" };
const DEFAULT_COMPARE = ["zeros", "normal", "he_normal"];

const lab = {
  catalog: {}, colors: {}, options: null, mode: "single", compare: [...DEFAULT_COMPARE], csv: null,
  run: null, data: null, history: null, frame: null, results: null, colorsRun: [],
  stats: { events: 0, frames: 0, started: 0, finished: 0, firstFrame: 0 }, lastBoundary: null, previewGen: 0,
};
window.lab = lab;

// ---------- controls <-> spec <-> URL ----------
function setOptions(select, values, labels) {
  select.innerHTML = "";
  values.forEach((v, i) => { const o = document.createElement("option"); o.value = v; o.textContent = labels ? labels[i] : v; select.appendChild(o); });
}

function paramInputs(container, initName, values, prefix) {
  container.innerHTML = "";
  const defaults = (lab.catalog[initName] || {}).params || {};
  for (const [key, def] of Object.entries(defaults)) {
    const wrap = document.createElement("div");
    const label = document.createElement("label");
    label.textContent = key.replace(/_/g, " ");
    let input;
    if (key === "mode" || key === "distribution") {
      input = document.createElement("select");
      setOptions(input, key === "mode" ? ["fan_in", "fan_out", "fan_avg"] : ["truncated_normal", "normal", "uniform"]);
    } else {
      input = document.createElement("input"); input.type = "number"; input.step = "any";
    }
    input.id = `${prefix}-param-${key}`; input.dataset.testid = input.id; input.dataset.param = key;
    input.value = values && key in values ? values[key] : def;
    input.dataset.default = def;
    input.addEventListener("change", onChange);
    label.htmlFor = input.id;
    wrap.append(label, input); container.appendChild(wrap);
  }
}

function readParams(container) {
  const out = {};
  container.querySelectorAll("[data-param]").forEach((el) => {
    if (String(el.value) === String(el.dataset.default)) return;  // defaults stay implicit (short URLs)
    out[el.dataset.param] = el.tagName === "SELECT" ? el.value : num(el);
  });
  return out;
}

// An empty (or half-typed) number field is sent as null: the server answers "required", never "got 0".
function num(el) { const t = String(el.value).trim(); return t === "" || !isFinite(Number(t)) ? null : Number(t); }
function hiddenSizes() { return [...$("hidden-layers").querySelectorAll("input")].map(num); }
function setHidden(sizes) {
  const box = $("hidden-layers"); box.innerHTML = "";
  sizes.forEach((n, i) => {
    const el = document.createElement("input"); el.type = "number"; el.min = 1; el.max = maxOf("hidden", 64); el.value = n;
    el.id = `hidden-${i}`; el.dataset.testid = el.id; el.title = `units in hidden layer ${i + 1}`;
    el.addEventListener("change", onChange); box.appendChild(el);
  });
}

function spec() {
  const s = {
    dataset: $("dataset").value, n_samples: num($("n-samples")), noise: num($("noise")),
    validation_split: num($("val-split")), activation: $("activation").value, hidden: hiddenSizes(),
    residual: $("residual").checked,
    bias_init: { name: $("bias-init").value, params: readParams($("bias-params")) },
    optimizer: $("optimizer").value, learning_rate: num($("learning-rate")),
    momentum: num($("momentum")), batch_size: num($("batch-size")),
    epochs: num($("epochs")), seed: num($("seed")), data_seed: num($("data-seed")),
  };
  if (lab.options) Object.assign(s, extraValues());
  if (s.dataset === "csv") s.csv = lab.csv || "";
  if (lab.mode === "compare") s.inits = lab.compare.map((name) => ({ name }));
  else s.weight_init = { name: $("weight-init").value, params: readParams($("weight-params")) };
  return s;
}

function toQuery() {
  const s = spec(), q = new URLSearchParams();
  q.set("mode", lab.mode);
  if (lab.mode === "compare") q.set("cmp", lab.compare.join(","));
  else { q.set("w", s.weight_init.name); for (const [k, v] of Object.entries(s.weight_init.params)) q.set(`w_${k}`, v); }
  q.set("b", s.bias_init.name); for (const [k, v] of Object.entries(s.bias_init.params)) q.set(`b_${k}`, v);
  q.set("data", s.dataset); q.set("noise", s.noise); q.set("n", s.n_samples); q.set("split", s.validation_split);
  q.set("act", s.activation); q.set("hidden", s.hidden.join(","));
  if (s.residual) q.set("res", "1");
  q.set("opt", s.optimizer); q.set("lr", s.learning_rate); q.set("mom", s.momentum);
  q.set("bs", s.batch_size); q.set("epochs", s.epochs); q.set("seed", s.seed);
  q.set("dseed", s.data_seed);
  for (const [name, v] of Object.entries(extraValues())) if (v !== lab.options.fields[name].default) q.set(`f_${name}`, v);
  return q;
}

function fromQuery() {
  const q = new URLSearchParams(location.search), d = lab.options.defaults;
  const get = (k, def) => (q.has(k) ? q.get(k) : def);
  const prefixed = (p) => { const o = {}; for (const [k, v] of q.entries()) if (k.startsWith(p)) o[k.slice(p.length)] = v; return o; };
  lab.mode = get("mode", "single") === "compare" ? "compare" : "single";
  if (q.has("cmp")) lab.compare = q.get("cmp").split(",").filter((n) => n in lab.catalog).slice(0, 4);
  $("weight-init").value = get("w", d.weight_init.name) in lab.catalog ? get("w", d.weight_init.name) : d.weight_init.name;
  paramInputs($("weight-params"), $("weight-init").value, prefixed("w_"), "weight");
  $("bias-init").value = get("b", d.bias_init.name) in lab.catalog ? get("b", d.bias_init.name) : "zeros";
  paramInputs($("bias-params"), $("bias-init").value, prefixed("b_"), "bias");
  $("dataset").value = get("data", d.dataset) === "csv" ? d.dataset : get("data", d.dataset);  // an upload is not in the URL
  if (!$("dataset").value) $("dataset").value = d.dataset;
  $("noise").value = get("noise", d.noise); $("n-samples").value = get("n", d.n_samples);
  $("val-split").value = get("split", d.validation_split);
  $("activation").value = get("act", d.activation);
  if (!$("activation").value) $("activation").value = d.activation;
  const hidden = get("hidden", d.hidden.join(",")).split(",").map(Number).filter((n) => n > 0).slice(0, 8);
  setHidden(hidden.length ? hidden : d.hidden);
  $("residual").checked = q.has("res") ? q.get("res") === "1" : !!d.residual;
  $("optimizer").value = get("opt", d.optimizer); if (!$("optimizer").value) $("optimizer").value = d.optimizer;
  $("learning-rate").value = get("lr", d.learning_rate); $("momentum").value = get("mom", d.momentum);
  $("batch-size").value = get("bs", d.batch_size); $("epochs").value = get("epochs", d.epochs);
  $("seed").value = get("seed", d.seed); $("data-seed").value = get("dseed", d.data_seed);
  buildExtraFields(q);
}

// RunSpec fields the page has no hand-made control for get a generated one (a number, a checkbox
// or a text box, with the field's range and help), so a field added to RunSpec reaches the lab.
const KNOWN = new Set(["n_samples", "noise", "data_seed", "validation_split", "activation", "hidden", "residual",
  "optimizer", "learning_rate", "momentum", "epochs", "batch_size", "seed"]);
function extraFields() { return Object.entries(lab.options.fields).filter(([name]) => !KNOWN.has(name)); }
function buildExtraFields(query) {
  const box = $("extra-fields"); box.innerHTML = "";
  for (const [name, f] of extraFields()) {
    const wrap = document.createElement("div"), label = document.createElement("label"), id = `field-${name}`;
    const words = name.replace(/_/g, " ");
    label.textContent = words.charAt(0).toUpperCase() + words.slice(1); label.htmlFor = id; label.title = f.help || "";
    const input = document.createElement(f.choices ? "select" : "input");
    input.id = id; input.dataset.testid = id; input.dataset.field = name; input.title = f.help || "";
    const given = query.get(`f_${name}`);
    if (f.choices) {  // a closed set of names (loss): a select, as the optimizer's
      for (const c of f.choices) { const o = document.createElement("option"); o.value = c; o.textContent = c; input.appendChild(o); }
      input.value = given != null && f.choices.includes(given) ? given : f.default;
    } else if (typeof f.default === "boolean") { input.type = "checkbox"; input.checked = given == null ? f.default : given === "true"; }
    else if (f.kind) { input.type = "number"; input.step = "any"; if (f.min != null) input.min = f.min; if (f.max != null) input.max = f.max; input.value = given ?? (f.default ?? ""); }
    else { input.type = "text"; input.value = given ?? (f.default ?? ""); }
    input.addEventListener("change", onChange);
    wrap.append(label, input); box.appendChild(wrap);
  }
}
function extraValues() {
  const out = {};
  $("extra-fields").querySelectorAll("[data-field]").forEach((el) => {
    out[el.dataset.field] = el.type === "checkbox" ? el.checked : el.type === "number" ? num(el) : el.value;
  });
  return out;
}

function maxOf(field, fallback) { const f = lab.options && lab.options.fields[field]; return f && f.max != null ? f.max : fallback; }

// The number inputs' min/max are the server's effective ranges (RunSpec's, tightened by the lab's limits).
function applyRanges() {
  const ids = { "n-samples": "n_samples", "data-seed": "data_seed", "learning-rate": "learning_rate", "batch-size": "batch_size",
    epochs: "epochs", momentum: "momentum", seed: "seed" };
  for (const [id, field] of Object.entries(ids)) {
    const f = lab.options.fields[field]; if (!f) continue;
    if (f.min != null) $(id).min = f.min; if (f.max != null) $(id).max = f.max;
    if (f.help) $(id).title = f.help;
  }
}

// Presets: the classic notebook's setup (initlab reproduce's: RunSpec's defaults) or the lab's.
function applyPreset(values) {
  const set = (id, v) => { if (v != null) $(id).value = v; };
  set("n-samples", values.n_samples); set("noise", values.noise); set("val-split", values.validation_split);
  set("optimizer", values.optimizer); set("learning-rate", values.learning_rate); set("momentum", values.momentum);
  set("batch-size", values.batch_size); set("epochs", values.epochs); set("data-seed", values.data_seed);
  if (values.hidden) setHidden(values.hidden);
  if (values.residual != null) $("residual").checked = values.residual;
  $("dataset").value = "moons";
  onChange();
}

function tooltips() {
  const t = lab.options.thresholds || {};
  $("th-distinct").title = `distinct units: units that differ in their incoming weights and bias or their outgoing weights `
    + `(by more than ${t.symmetry_tol ?? 1e-6} of the pair's largest weight). Identical units compute the same output and get the same gradient: 10 of them work as 1.`;
  $("th-dead").title = `dead: units whose output and slope are exactly 0 on every training row, so no gradient passes them; `
    + `a layer is flagged when at least ${Math.round(100 * (t.dead_fraction ?? 0.5))}% of its units are dead.`;
  $("th-sat").title = `sat. (saturated): share of a bounded activation's outputs (tanh, sigmoid) where its slope is below `
    + `${Math.round(100 * (t.saturation_slope ?? 0.04))}% of its largest slope (tanh: |a| > 0.98); flagged from ${Math.round(100 * (t.saturated_fraction ?? 0.5))}%.`;
}

function syncUrl() { history.replaceState(null, "", `${location.pathname}?${toQuery()}`); }

// ---------- setup ----------
async function boot() {
  const [cat, opts] = await Promise.all([fetch("/api/initializers").then((r) => r.json()), fetch("/api/options").then((r) => r.json())]);
  cat.initializers.forEach((i) => { lab.catalog[i.name] = i; });
  lab.colors = cat.colors; lab.options = opts;
  const names = cat.initializers.map((i) => i.name);
  setOptions($("weight-init"), names); setOptions($("bias-init"), names);
  setOptions($("dataset"), opts.datasets, opts.datasets.map((d) => (d === "csv" ? "your CSV file..." : d)));
  setOptions($("activation"), opts.activations); setOptions($("optimizer"), opts.optimizers);
  fromQuery();
  applyRanges(); tooltips();
  buildPicks();
  for (const id of ["dataset", "noise", "n-samples", "val-split", "activation", "residual", "optimizer", "learning-rate",
    "momentum", "batch-size", "epochs", "seed", "data-seed"]) $(id).addEventListener("change", onChange);
  $("noise").addEventListener("input", showRangeValues); $("val-split").addEventListener("input", showRangeValues);
  $("weight-init").addEventListener("change", () => { paramInputs($("weight-params"), $("weight-init").value, {}, "weight"); onChange(); });
  $("bias-init").addEventListener("change", () => { paramInputs($("bias-params"), $("bias-init").value, {}, "bias"); onChange(); });
  $("optimizer").addEventListener("change", () => { $("learning-rate").value = opts.default_lr[$("optimizer").value]; onChange(); });
  $("add-layer").onclick = () => { const h = hiddenSizes(); if (h.length < 8) { setHidden([...h, h[h.length - 1] || 4]); onChange(); } };
  $("remove-layer").onclick = () => { const h = hiddenSizes(); if (h.length > 1) { setHidden(h.slice(0, -1)); onChange(); } };
  $("reseed").onclick = () => { $("seed").value = Math.floor(Math.random() * 100000); onChange(); };
  $("mode-single").onclick = () => setMode("single"); $("mode-compare").onclick = () => setMode("compare");
  $("train").onclick = () => train(false); $("stop").onclick = stop; $("reset").onclick = reset;
  $("pause").onclick = togglePause; $("step").onclick = step; $("sweep").onclick = runSweep;
  $("preset-classic").onclick = () => applyPreset(opts.presets.classic);
  $("preset-lab").onclick = () => applyPreset(Object.fromEntries(Object.entries(opts.fields).map(([k, f]) => [k, f.default])));
  $("download-json").onclick = downloadJson; $("download-png").onclick = downloadPng;
  $("copy-link").onclick = () => { syncUrl(); navigator.clipboard?.writeText(location.href).catch(() => {}); status("link copied: the URL reproduces this setup"); };
  $("csv-file").addEventListener("change", uploadCsv);
  document.addEventListener("keydown", (e) => { if (e.key === "Enter" && e.target.tagName !== "BUTTON") train(false); });
  setMode(lab.mode, true);
  document.body.dataset.ready = "1";
}

function showRangeValues() {
  $("noise-out").textContent = Number($("noise").value).toFixed(2);
  $("val-split-out").textContent = `${Math.round(Number($("val-split").value) * 100)}%`;
}

function showInit() {
  const i = lab.catalog[$("weight-init").value];
  $("weight-swatch").style.background = i.color;
  $("init-formula").textContent = i.formula;
  $("init-reference").textContent = i.reference;
}

function buildPicks() {
  const box = $("compare-picks"); box.innerHTML = "";
  for (const [name, i] of Object.entries(lab.catalog)) {
    if (i.kind === "data-dependent") continue;  // LSUV needs data at init: single runs only
    const el = document.createElement("span");
    el.className = "pick" + (lab.compare.includes(name) ? " on" : ""); el.dataset.testid = `pick-${name}`; el.id = `pick-${name}`;
    el.innerHTML = `<span class="swatch" style="background:${i.color}"></span>${name}`;
    el.title = i.formula;
    el.onclick = () => {
      const at = lab.compare.indexOf(name);
      if (at >= 0) { if (lab.compare.length > 2) lab.compare.splice(at, 1); else return status("compare needs at least 2 initializers"); }
      else { if (lab.compare.length >= 4) return status("compare takes at most 4 initializers"); lab.compare.push(name); }
      buildPicks(); onChange();
    };
    box.appendChild(el);
  }
}

function setMode(mode, initial) {
  if (lab.run) stop();
  lab.mode = mode; document.body.dataset.mode = mode;
  $("mode-single").classList.toggle("active", mode === "single"); $("mode-compare").classList.toggle("active", mode === "compare");
  $("single-init").hidden = mode !== "single"; $("compare-init").hidden = mode !== "compare";
  $("single-view").hidden = mode !== "single"; $("compare-view").hidden = mode !== "compare";
  $("theory-section").hidden = mode !== "single"; $("histograms-section").hidden = mode !== "single";
  onChange(initial);
}

let previewTimer = null;
function onChange() {
  showRangeValues(); showInit();
  $("csv-row").hidden = $("dataset").value !== "csv"; $("generated-row").hidden = $("dataset").value === "csv";
  syncUrl();
  if (lab.run) return;  // a change takes effect on the next Train
  // The preview comes 150 ms later; if Train was pressed meanwhile (a typed value's change event
  // fires on that click), it is skipped: a preview never stops a run.
  clearTimeout(previewTimer); previewTimer = setTimeout(() => { if (!lab.run) reset(); }, 150);
}

function status(text) { $("status").textContent = text; }
function showError(text) { const e = $("error"); e.textContent = text; e.hidden = !text; }

// ---------- CSV upload ----------
async function uploadCsv() {
  const file = $("csv-file").files[0]; if (!file) return;
  const body = new FormData(); body.append("file", file);
  const r = await fetch("/api/datasets/csv", { method: "POST", body });
  const json = await readJson(r);
  if (!r.ok) { clearTimeout(previewTimer); lab.csv = null; $("csv-status").textContent = json.detail; showError(json.detail); return; }
  lab.csv = json.csv; showError("");
  $("csv-status").textContent = `${file.name}: ${json.n_samples} rows, classes ${json.class_names.join(", ")}`;
  onChange();
}

// ---------- runs ----------
function newHistory(m) {
  const keys = ["loss", "val_loss", "accuracy", "val_accuracy"];
  return Object.fromEntries(keys.map((k) => [k, m ? Array.from({ length: m }, () => []) : []]));
}

async function readJson(r) {
  const text = await r.text();
  try { return JSON.parse(text); } catch (e) { return { detail: `HTTP ${r.status}: ${text.slice(0, 200)}` }; }
}

// The view of an invalid setup: nothing of the previous network stays on screen.
function clearView() {
  lab.frame = null; lab.history = null;
  $("verdicts").innerHTML = ""; $("layers-table").querySelector("tbody").innerHTML = ""; $("neurons").innerHTML = "";
  $("histograms").innerHTML = ""; $("histograms").dataset.shape = ""; $("neurons").dataset.shape = "";
  for (const id of ["train-loss", "val-loss", "train-acc", "val-acc"]) $(id).textContent = "–";
  $("epoch").textContent = "0"; $("rate").textContent = "";
  const c = $("boundary"), ctx = c.getContext("2d"); ctx.fillStyle = "#f0f2f5"; ctx.fillRect(0, 0, c.width, c.height);
  for (const id of ["loss-chart", "acc-chart"]) { const k = $(id); k.getContext("2d").clearRect(0, 0, k.width, k.height); }
  $("compare-grid").innerHTML = "";
}

async function reset() {
  if (lab.run) stop();
  const gen = ++lab.previewGen;
  const s = spec();
  if (s.dataset === "csv" && !s.csv) { status("choose a CSV file"); return; }  // an upload's error stays
  showError(""); lab.results = null; $("download-json").disabled = true; $("rate").textContent = "";
  const inits = lab.mode === "compare" ? s.inits : [s.weight_init];
  const previews = [];
  for (const w of inits) {  // one after another: previews share the run slots with runs
    const one = { ...s, weight_init: w }; delete one.inits;
    const r = await fetch("/api/preview", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(one) });
    previews.push({ ok: r.ok, json: await readJson(r) });
    if (!r.ok || gen !== lab.previewGen) break;
  }
  if (gen !== lab.previewGen || lab.run) return;  // a newer preview or a run replaced this one
  const bad = previews.find((p) => !p.ok);
  if (bad) { clearView(); showError(bad.json.detail); status("invalid setup: fix the field named above"); document.body.dataset.run = "error"; return; }
  lab.data = previews[0].json.data; lab.colorsRun = previews.map((p) => p.json.color);
  lab.history = newHistory(lab.mode === "compare" ? inits.length : 0);
  if (lab.mode === "compare") {
    buildCards(inits.map((i) => i.name));
    lab.frame = { epoch: 0, runs: previews.map((p) => p.json) };
  } else {
    lab.frame = { epoch: 0, ...previews[0].json };
    lab.theory = previews[0].json.theory;
    drawTheory(lab.theory);
  }
  lab.lastBoundary = lab.mode === "compare" ? lab.frame.runs.map((r) => r.boundary.p) : lab.frame.boundary.p;
  document.body.dataset.run = "reset";
  status(`initial weights (seed ${s.seed}): press Train`);
  render();
}

async function train(paused) {
  if (lab.run) return;
  clearTimeout(previewTimer); lab.previewGen++;  // a pending or in-flight preview must not undo this run
  showError("");
  const s = spec();
  if (s.dataset === "csv" && !s.csv) { showError("choose a CSV file first"); return; }
  const controller = new AbortController();
  lab.run = { controller, id: null, paused: !!paused }; lab.results = null; lab.summaries = null;
  $("train").disabled = true; $("stop").disabled = false; $("pause").disabled = false; $("download-json").disabled = true;
  $("pause").textContent = paused ? "▶ Resume" : "❚❚ Pause";
  document.body.dataset.run = "running"; status("starting..."); $("rate").textContent = "";
  lab.stats = { events: 0, frames: 0, started: performance.now(), finished: 0, firstFrame: 0 };
  try {
    const url = (lab.mode === "compare" ? "/api/compare" : "/api/train") + (paused && lab.mode !== "compare" ? "?paused=true" : "");
    const r = await fetch(url, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(s), signal: controller.signal });
    if (!r.ok) { const j = await readJson(r); if (r.status === 422) clearView(); throw new Error(j.detail || r.statusText); }
    const reader = r.body.getReader(), decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const chunk = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        for (const line of chunk.split("\n")) if (line.startsWith("data: ")) onEvent(JSON.parse(line.slice(6)));
      }
    }
    if (document.body.dataset.run === "running") { document.body.dataset.run = "stopped"; }
  } catch (err) {
    if (err.name === "AbortError") { status("stopped"); document.body.dataset.run = "stopped"; }
    else { showError(err.message); status("failed"); document.body.dataset.run = "error"; }
  } finally {
    lab.run = null; $("train").disabled = false; $("stop").disabled = true; $("pause").disabled = true;
    $("pause").textContent = "❚❚ Pause";
  }
}

function stop() { if (lab.run) lab.run.controller.abort(); }  // the server stops the run when we disconnect

async function control(action) {
  if (!lab.run || lab.run.id == null) return null;
  const r = await fetch(`/api/runs/${lab.run.id}/${action}`, { method: "POST", headers: { "content-length": "0" } });
  return r.ok ? r.json() : null;
}

async function togglePause() {
  if (!lab.run || lab.mode === "compare" && lab.run.id == null) return;
  const answer = await control(lab.run.paused ? "resume" : "pause");
  if (!answer || !lab.run) return;
  lab.run.paused = answer.paused;
  $("pause").textContent = answer.paused ? "▶ Resume" : "❚❚ Pause";
  status(answer.paused ? `paused at epoch ${lab.frame ? lab.frame.epoch : 0}: Step goes one epoch on` : "training...");
}

async function step() {
  if (!lab.run) { train(true); return; }  // a paused run: its first frame is the initial weights
  const answer = await control("step");
  if (answer && lab.run) { lab.run.paused = true; $("pause").textContent = "▶ Resume"; }
}

function append(from, slice, m) {
  for (const [key, values] of Object.entries(slice)) {
    if (!lab.history[key]) continue;
    if (m) values.forEach((row, i) => row.forEach((v, j) => { lab.history[key][i][from + j] = v; }));
    else values.forEach((v, j) => { lab.history[key][from + j] = v; });
  }
}

let renderQueued = false;
function onEvent(ev) {
  lab.stats.events++;
  if (ev.type === "start") {
    lab.data = ev.data; if (lab.run) lab.run.id = ev.run_id;
    const m = ev.mode === "compare" ? ev.colors.length : 0;
    lab.colorsRun = m ? ev.colors : [ev.color];
    lab.history = newHistory(m);
    if (m) buildCards(ev.spec.inits.map((i) => i.name));
  } else if (ev.type === "progress") {
    lab.stats.frames++;
    if (!lab.stats.firstFrame) lab.stats.firstFrame = performance.now();
    append(ev.history_from, ev.history, lab.mode === "compare" ? lab.colorsRun.length : 0);
    lab.frame = ev;
    status(ev.paused ? `paused at epoch ${ev.epoch} of ${ev.epochs}: Step goes one epoch on, Resume goes on`
      : `training: epoch ${ev.epoch} of ${ev.epochs}`);
    if (!renderQueued) { renderQueued = true; requestAnimationFrame(() => { renderQueued = false; render(); }); }
  } else if (ev.type === "done") {
    lab.results = ev.results; lab.summaries = ev.summaries || [ev.summary];
    lab.stats.finished = performance.now();
    const secs = (lab.stats.finished - lab.stats.started) / 1000;
    $("rate").textContent = `${lab.stats.frames} updates in ${secs.toFixed(1)} s (${(lab.stats.frames / secs).toFixed(0)}/s)`;
    $("download-json").disabled = false;
    render();
    status(doneText(lab.summaries));
    document.body.dataset.run = "done";
  } else if (ev.type === "error") {
    showError(ev.detail); document.body.dataset.run = "error";
  }
}

// What the status bar says at the end, from the run's own numbers: a run whose loss turned
// non-finite diverged (its weights froze there); one whose loss ended above where it started blew up.
function doneText(summaries) {
  const parts = summaries.map((s) => {
    const who = summaries.length > 1 ? `${s.initializer}: ` : "";
    if (s.diverged_epoch != null) return `${who}diverged at epoch ${s.diverged_epoch + 1}: the loss became inf/NaN, the weights froze there`;
    if (s.first_loss != null && s.last_loss != null && s.last_loss > s.first_loss)
      return `${who}the loss rose from ${num3(s.first_loss)} to ${num3(s.last_loss)}: training made it worse (learning rate too high?)`;
    return `${who}done: ${s.epochs_run} epochs`;
  });
  document.body.dataset.diverged = summaries.some((s) => s.diverged_epoch != null) ? "1" : "0";
  return parts.join("; ");
}

// Measured q^l (dots) against the mean-field prediction (line), log scale; a layer whose measured
// variance is exactly 0 (zero init) sits on the axis floor.
function drawTheory(t) {
  const canvas = $("theory-chart"), ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
  const pad = { l: 50, r: 12, t: 22, b: 28 };
  ctx.clearRect(0, 0, W, H); ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
  $("theory-section").hidden = lab.mode === "compare" || !t;
  if (!t) return;
  const vals = [...t.measured, ...(t.predicted || [])].filter((v) => v > 0 && isFinite(v));
  const L = t.measured.length;
  let lo = vals.length ? Math.floor(Math.log10(Math.min(...vals)) - 0.2) : -1, hi = vals.length ? Math.ceil(Math.log10(Math.max(...vals)) + 0.2) : 1;
  if (hi - lo < 2) { lo -= 1; hi += 1; }
  const X = (l) => pad.l + (L === 1 ? 0.5 : (l - 1) / (L - 1)) * (W - pad.l - pad.r);
  const Y = (v) => H - pad.b - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * (H - pad.t - pad.b);
  ctx.strokeStyle = "#c9ced6"; ctx.beginPath(); ctx.moveTo(pad.l, pad.t); ctx.lineTo(pad.l, H - pad.b); ctx.lineTo(W - pad.r, H - pad.b); ctx.stroke();
  ctx.fillStyle = "#6b7585"; ctx.font = "11px system-ui, sans-serif"; ctx.textAlign = "right";
  for (const e of [lo, Math.round((lo + hi) / 2), hi]) ctx.fillText(tick(10 ** e), pad.l - 5, Y(10 ** e) + 4);
  ctx.textAlign = "center";
  for (let l = 1; l <= L; l++) ctx.fillText(String(l), X(l), H - pad.b + 13);
  ctx.fillText("hidden layer", (W + pad.l) / 2, H - 2);
  ctx.save(); ctx.translate(10, pad.t + (H - pad.t - pad.b) / 2); ctx.rotate(-Math.PI / 2); ctx.fillText("q (log)", 0, 0); ctx.restore();
  if (t.predicted) {
    ctx.strokeStyle = "#1d2430"; ctx.lineWidth = 1.5; ctx.beginPath();
    t.predicted.forEach((v, i) => { const x = X(i + 1), y = Y(v); if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y); });
    ctx.stroke();
  }
  ctx.fillStyle = lab.colorsRun[0] || "#2f6fde";
  t.measured.forEach((v, i) => { ctx.beginPath(); ctx.arc(X(i + 1), Y(v), 4, 0, 2 * Math.PI); ctx.fill(); });
  ctx.textAlign = "left"; ctx.fillStyle = "#1d2430";
  ctx.fillText(t.predicted ? "● measured (this network)   — predicted (mean field)" : "● measured (this network)", pad.l + 6, 12);
  const ratio = t.predicted ? t.measured.map((m, i) => (t.predicted[i] > 0 ? m / t.predicted[i] : null)) : [];
  $("theory-note").textContent = t.unavailable ? `No prediction: ${t.unavailable}.`
    : `q0 = ${num3(t.q0)}; measured / predicted per layer: ${ratio.map((r) => (r == null ? "–" : r.toFixed(2))).join(", ")} `
      + "(one narrow network scatters around the wide-network prediction).";
}

// ---------- an in-page sweep: inits x seeds, accuracy per init with its spread ----------
async function runSweep() {
  if (lab.run || lab.sweeping) return;
  const s = spec(); delete s.weight_init; s.inits = lab.compare.map((name) => ({ name })); s.seeds = 10;
  lab.sweeping = true; $("sweep").disabled = true; showError("");
  status(`sweep: ${s.inits.length} initializers x ${s.seeds} seeds, trained at once...`);
  document.body.dataset.sweep = "running";
  try {
    const r = await fetch("/api/sweep", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(s) });
    const j = await readJson(r);
    if (!r.ok) { showError(j.detail); status("sweep failed"); document.body.dataset.sweep = "error"; return; }
    renderSweep(j);
    status(`sweep done: ${s.inits.length * s.seeds} networks, ${j.epochs} epochs each`);
    document.body.dataset.sweep = "done";
  } finally { lab.sweeping = false; $("sweep").disabled = false; }
}

function renderSweep(j) {
  const box = $("sweep-result"), label = j.metric === "val_accuracy" ? "validation accuracy" : "train accuracy";
  const x = (v) => `${(100 * v).toFixed(1)}%`;
  box.innerHTML = `<h2>Sweep: final ${label}, ${j.seeds} seeds each <span class="hint">dots: one seed each; bar: the mean; grey: chance (${x(j.chance_accuracy)})</span></h2>` +
    j.inits.map((r, i) => `<div class="sweep-row" data-testid="sweep-row-${i}" data-init="${r.name}">
      <span><span class="swatch" style="background:${r.color}"></span> ${r.name}</span>
      <span class="sweep-strip"><b class="chance" style="left:${100 * j.chance_accuracy}%"></b>${r.accuracy.map((v) =>
        `<i style="left:${100 * v}%;background:${r.color}" title="${x(v)}"></i>`).join("")}<b style="left:${100 * r.mean}%"></b></span>
      <span data-testid="sweep-summary-${i}">${x(r.mean)} &plusmn; ${x(r.std)}${r.diverged ? `, ${r.diverged} diverged` : ""}</span></div>`).join("") +
    `<div class="sweep-axis"><span>0%</span><span>50%</span><span>100%</span></div>`;
  box.hidden = false;
}

// ---------- drawing ----------
function hexToRgb(hex) { const n = parseInt(hex.slice(1), 16); return [(n >> 16) & 255, (n >> 8) & 255, n & 255]; }

function drawBoundary(canvas, boundary, data, small) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
  const n = boundary.n, classes = data.class_colors.map(hexToRgb), K = classes.length;
  const img = new ImageData(n, n);
  for (let i = 0; i < n * n; i++) {
    const p = boundary.p[i] ?? 0.5;
    let c, t;
    if (boundary.c) { c = boundary.c[i]; t = (p - 1 / K) / (1 - 1 / K); }
    else { c = p >= 0.5 ? 1 : 0; t = Math.abs(p - 0.5) * 2; }
    const rgb = classes[c] || [128, 128, 128], a = 0.15 + 0.6 * Math.max(0, Math.min(1, t));
    img.data[4 * i] = 255 + (rgb[0] - 255) * a; img.data[4 * i + 1] = 255 + (rgb[1] - 255) * a;
    img.data[4 * i + 2] = 255 + (rgb[2] - 255) * a; img.data[4 * i + 3] = 255;
  }
  const off = document.createElement("canvas"); off.width = n; off.height = n; off.getContext("2d").putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = true; ctx.imageSmoothingQuality = "high";
  ctx.drawImage(off, 0, 0, W, H);
  const [x0, x1, y0, y1] = data.extent, sx = (x) => ((x - x0) / (x1 - x0)) * W, sy = (y) => ((y1 - y) / (y1 - y0)) * H;
  const r = small ? 2.6 : 4;
  const dots = (X, y, stroke) => X.forEach((pt, i) => {
    ctx.beginPath(); ctx.arc(sx(pt[0]), sy(pt[1]), r, 0, 2 * Math.PI);
    ctx.fillStyle = data.class_colors[y[i]]; ctx.fill(); ctx.lineWidth = stroke === "#fff" ? 1 : 1.6; ctx.strokeStyle = stroke; ctx.stroke();
  });
  dots(data.X, data.y, "#fff"); dots(data.X_val, data.y_val, "#1d2430");
}

// Tick labels that stay short whatever the scale (6e+23, not 600000000000000000000000.00).
function tick(v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-2) return v.toExponential(0).replace("e+", "e");
  return a >= 100 ? v.toFixed(0) : a >= 1 ? Number(v.toPrecision(3)).toString() : Number(v.toPrecision(2)).toString();
}

// A line chart of per-epoch series; the y axis turns logarithmic when the values span over 1000x
// (a blown-up run), and is fixed to [0, 1] for accuracies.
function drawChart(canvas, series, epochs, ylabel, fixed) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, pad = { l: 50, r: 10, t: 24, b: 30 };
  ctx.clearRect(0, 0, W, H); ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
  const all = series.flatMap((s) => s.values.filter((v) => v != null && isFinite(v)));
  let lo = 0, hi = fixed ? 1 : Math.max(0.1, ...all.slice(-5000)) * 1.05;
  const positive = all.filter((v) => v > 0), log = !fixed && positive.length > 0 && hi / Math.min(...positive) > 1e3;
  if (log) { lo = Math.log10(Math.min(...positive)); hi = Math.log10(Math.max(...positive)) + 0.05; if (hi - lo < 1) lo = hi - 1; }
  const tf = (v) => (log ? Math.log10(Math.max(v, 10 ** lo)) : v);
  const xmax = Math.max(epochs, 1);
  const X = (e) => pad.l + (e / xmax) * (W - pad.l - pad.r), Y = (v) => H - pad.b - ((tf(v) - lo) / (hi - lo)) * (H - pad.t - pad.b);
  ctx.strokeStyle = "#c9ced6"; ctx.lineWidth = 1; ctx.beginPath(); ctx.moveTo(pad.l, pad.t); ctx.lineTo(pad.l, H - pad.b); ctx.lineTo(W - pad.r, H - pad.b); ctx.stroke();
  ctx.fillStyle = "#6b7585"; ctx.font = "11px system-ui, sans-serif"; ctx.textAlign = "right";
  const ticks = log ? [lo, (lo + hi) / 2, hi].map((e) => 10 ** e) : [lo, (lo + hi) / 2, hi];
  for (const v of ticks) ctx.fillText(fixed ? `${Math.round(100 * v)}%` : tick(v), pad.l - 5, Y(v) + 4);
  ctx.textAlign = "center"; ctx.fillText("epoch", (W + pad.l) / 2, H - 4);
  ctx.fillText("0", X(0), H - pad.b + 13); ctx.fillText(String(xmax), X(xmax) - 8, H - pad.b + 13);
  ctx.save(); ctx.translate(10, pad.t + (H - pad.t - pad.b) / 2); ctx.rotate(-Math.PI / 2);
  ctx.fillText(log ? `${ylabel} (log)` : ylabel, 0, 0); ctx.restore();
  ctx.save(); ctx.beginPath(); ctx.rect(pad.l, pad.t - 2, W - pad.l - pad.r, H - pad.t - pad.b + 4); ctx.clip();
  for (const s of series) {
    ctx.strokeStyle = s.color; ctx.lineWidth = s.dash ? 1.5 : 2; ctx.setLineDash(s.dash ? [5, 4] : []);
    ctx.beginPath(); let started = false;
    s.values.forEach((v, i) => { if (v == null || !isFinite(v)) return; const x = X(i + 1), y = Y(v); if (!started) { ctx.moveTo(x, y); started = true; } else ctx.lineTo(x, y); });
    ctx.stroke();
  }
  ctx.restore(); ctx.setLineDash([]);
  let lx = pad.l + 8; ctx.textAlign = "left";
  for (const s of series.filter((s) => s.label)) {
    const w = 28 + ctx.measureText(s.label).width; if (lx + w > W) break;
    ctx.strokeStyle = s.color; ctx.setLineDash(s.dash ? [5, 4] : []); ctx.beginPath(); ctx.moveTo(lx, 10); ctx.lineTo(lx + 16, 10); ctx.stroke();
    ctx.setLineDash([]); ctx.fillStyle = "#1d2430"; ctx.fillText(s.label, lx + 20, 14); lx += w;
  }
}
function drawLoss(canvas, series, epochs) { drawChart(canvas, series, epochs, "loss", false); }

// Numbers as a learner can read them at any scale: 0.693, 1.45e+18, 1.44e-11; exactly 0 stays "0".
function num3(v, d = 3) {
  if (v == null || !isFinite(v)) return "–";
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a >= 1e4 || a < 10 ** -d ? v.toExponential(2) : v.toFixed(d);
}

const fmt = (v, d = 3) => num3(v == null ? v : Number(v), d);
const pct = (v) => (v == null || !isFinite(v) ? "–" : `${(100 * v).toFixed(1)}%`);
const last = (a) => (a && a.length ? a[a.length - 1] : null);

function badge(code, message) {
  return `<span class="badge ${VERDICT_CLASS[code] || ""}" data-testid="badge-${code}" title="${(message || "").replace(/"/g, "&quot;")}">${VERDICT_LABEL[code] || code}</span>`;
}

function renderDiagnosis(frame) {
  $("verdicts").innerHTML = frame.verdicts.map((v) =>
    `<div class="verdict ${v.code}" data-testid="verdict-${v.code}">${badge(v.code, v.message)} ${v.message}${v.fix ? `<div class="fix">Fix: ${v.fix}</div>` : ""}</div>`).join("");
  const maxStd = Math.max(1e-9, ...frame.layers.map((l) => l.activation_std || 0));
  $("layers-table").querySelector("tbody").innerHTML = frame.layers.map((l) => {
    const hidden = l.name !== "output";
    const sym = l.distinct_units < l.units, dead = l.dead_units > 0;
    return `<tr data-testid="layer-${l.name}"><td>${l.name}</td>
      <td><span class="badge ${hidden ? (sym ? "bad" : "ok") : ""}" data-testid="distinct-${l.name}">${l.distinct_units} of ${l.units}</span></td>
      <td><span class="badge ${hidden ? (dead ? "bad" : "ok") : ""}" data-testid="dead-${l.name}">${hidden ? l.dead_units : "–"}</span></td>
      <td title="mean ${l.activation_mean}, std ${l.activation_std}" data-testid="activation-${l.name}">${fmt(l.activation_mean, 2)} &plusmn; ${fmt(l.activation_std, 2)}<span class="bar" style="width:${Math.round(40 * (l.activation_std || 0) / maxStd)}px"></span></td>
      <td>${l.activation === "tanh" || l.activation === "sigmoid" ? pct(l.saturated_fraction) : "–"}</td>
      <td data-testid="grad-${l.name}" title="${l.grad_norm}">${l.grad_norm == null ? "–" : l.grad_norm === 0 ? "0" : Number(l.grad_norm).toExponential(2)}</td></tr>`;
  }).join("");
}

function buildCards(names) {
  const grid = $("compare-grid"); grid.innerHTML = "";
  const size = names.length === 3 ? 206 : 290;  // three in a row, or two by two
  grid.style.setProperty("--cols", names.length === 3 ? 3 : 2);
  names.forEach((name, i) => {
    const color = lab.catalog[name] ? lab.catalog[name].color : "#7f7f7f";
    const card = document.createElement("div"); card.className = "card"; card.dataset.testid = `compare-card-${i}`;
    card.innerHTML = `<h3 style="background:${color}"><span>${name}</span><span id="card-epoch-${i}"></span></h3>
      <canvas width="${size}" height="${size}" class="compare-boundary" id="compare-boundary-${i}" data-testid="compare-boundary-${i}"></canvas>
      <div class="summary" id="compare-summary-${i}" data-testid="compare-summary-${i}"></div>`;
    grid.appendChild(card);
  });
}

function render() {
  const f = lab.frame; if (!f || !lab.data) return;
  const epochs = Number($("epochs").value);
  if (lab.mode === "compare") {
    const names = [...document.querySelectorAll(".card h3 span:first-child")].map((e) => e.textContent);
    f.runs.forEach((run, i) => {
      const canvas = $(`compare-boundary-${i}`); if (!canvas) return;
      drawBoundary(canvas, run.boundary, lab.data, true);
      $(`card-epoch-${i}`).textContent = `epoch ${f.epoch}`;
      const h1 = run.layers[0], s = lab.summaries && lab.results ? lab.summaries[i] : null;
      const va = last(lab.history.val_accuracy[i]), ta = last(lab.history.accuracy[i]), vl = last(lab.history.val_loss[i]);
      const codes = s ? s.verdicts.map((c) => ({ code: c })) : run.verdicts;
      $(`compare-summary-${i}`).innerHTML = `<span>val acc <b data-testid="compare-val-acc-${i}">${pct(va ?? ta)}</b></span>
        <span>val loss <b>${fmt(vl)}</b></span><span>distinct <b data-testid="compare-distinct-${i}">${h1.distinct_units} of ${h1.units}</b></span>
        <span>dead <b>${h1.dead_units}</b></span> ${codes.map((v) => badge(v.code, v.message)).join(" ")}`;
    });
    const series = [];
    lab.colorsRun.forEach((c, i) => {
      series.push({ values: lab.history.loss[i], color: c, label: names[i] });
      series.push({ values: lab.history.val_loss[i], color: c, dash: true });
    });
    drawLoss($("loss-chart"), series, epochs);
    drawChart($("acc-chart"), lab.colorsRun.map((c, i) => ({ values: lab.history.val_accuracy[i].length ? lab.history.val_accuracy[i] : lab.history.accuracy[i], color: c, label: names[i] })), epochs, "val acc", true);
    renderDiagnosis(f.runs[f.runs.length - 1]);
    $("diagnosis-section").querySelector("h2").innerHTML = `Diagnosis <span class="hint">of ${names[names.length - 1] || ""} (each card shows its own badges)</span>`;
  } else {
    drawBoundary($("boundary"), f.boundary, lab.data, false);
    renderLegend();
    $("epoch").textContent = f.epoch;
    const h = lab.history;
    $("train-loss").textContent = fmt(last(h.loss)); $("val-loss").textContent = fmt(last(h.val_loss));
    $("train-acc").textContent = pct(last(h.accuracy)); $("val-acc").textContent = pct(last(h.val_accuracy));
    const color = lab.colorsRun[0] || "#2f6fde";
    drawLoss($("loss-chart"), [{ values: h.loss, color, label: "train" }, { values: h.val_loss, color, dash: true, label: "validation" }], epochs);
    drawChart($("acc-chart"), [{ values: h.accuracy, color, label: "train" }, { values: h.val_accuracy, color, dash: true, label: "validation" }], epochs, "accuracy", true);
    renderDiagnosis(f);
    if (f.neurons) renderNeurons(f.neurons);
    if (f.histograms) renderHistograms(f.histograms);
    if (f.theory && f.theory !== lab.theory) { lab.theory = f.theory; drawTheory(f.theory); }
    // The catalog's text speaks of the scheme; what this run measured goes beside it.
    const split = f.symmetry_split || [];
    $("init-note").hidden = !split.length;
    $("init-note").textContent = split.length ? `Measured in this run: ${split.map((x) => `${x.layer} went from ${x.initial} to ${x.distinct} distinct units`).join(", ")}, split by float rounding, not by the init (see Diagnosis).` : "";
    $("diagnosis-section").querySelector("h2").innerHTML = `Diagnosis <span class="hint">initlab.diagnose on the current weights</span>`;
  }
}

// One small picture per hidden unit (its output over the input plane), as the Playground draws:
// a fixed colour scale for every unit, so identical pictures are symmetric units and blank ones flat.
const NEG = [47, 111, 222], POS = [245, 147, 34];
function renderNeurons(layers) {
  const box = $("neurons");
  const shape = layers.map((l) => l.units).join(",");
  if (box.dataset.shape !== shape) {
    box.innerHTML = layers.map((l) => `<div class="neuron-row"><span class="neuron-layer">hidden${l.layer}</span>` +
      Array.from({ length: l.units }, (_, u) => `<canvas class="neuron" width="${l.n}" height="${l.n}" data-layer="${l.layer}" data-unit="${u}" data-testid="neuron-${l.layer}-${u}"></canvas>`).join("") + "</div>").join("");
    box.dataset.shape = shape;
  }
  for (const l of layers) {
    const bytes = Uint8Array.from(atob(l.q), (c) => c.charCodeAt(0)), n2 = l.n * l.n;
    box.querySelectorAll(`canvas[data-layer="${l.layer}"]`).forEach((cv) => {
      const u = Number(cv.dataset.unit), img = new ImageData(l.n, l.n);
      for (let i = 0; i < n2; i++) {
        const q = bytes[u * n2 + i];
        const t = q === 255 && !isFinite(l.max[u]) ? 1 : (q - 127) / 127, rgb = t >= 0 ? POS : NEG, a = Math.min(1, Math.abs(t));
        img.data[4 * i] = 255 + (rgb[0] - 255) * a; img.data[4 * i + 1] = 255 + (rgb[1] - 255) * a;
        img.data[4 * i + 2] = 255 + (rgb[2] - 255) * a; img.data[4 * i + 3] = 255;
      }
      cv.getContext("2d").putImageData(img, 0, 0);
      cv.dataset.flat = l.flat[u] ? "1" : "0";
      cv.title = `hidden${l.layer}, unit ${u + 1}: output from ${num3(l.min[u])} to ${num3(l.max[u])}${l.flat[u] ? " (flat: varies by less than one colour step)" : ""}`;
    });
  }
}

function drawHist(canvas, h, color) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
  ctx.clearRect(0, 0, W, H);
  if (!h || !h.counts.length) return;
  const top = Math.max(...h.counts), bw = W / h.counts.length;
  ctx.fillStyle = color;
  h.counts.forEach((c, i) => { const bh = top ? (c / top) * (H - 2) : 0; ctx.fillRect(i * bw + 0.5, H - bh, bw - 1, bh); });
}

function renderHistograms(layers) {
  const box = $("histograms"), shape = layers.map((l) => l.layer).join(",");
  if (box.dataset.shape !== shape) {
    box.innerHTML = `<div class="hist-row"><span></span><span>weights</span><span>outputs</span></div>` + layers.map((l) =>
      `<div class="hist-row" data-layer="${l.layer}"><span>${l.layer}</span>
        <div><canvas width="160" height="34" data-testid="hist-w-${l.layer}"></canvas><div class="range" data-testid="hist-w-range-${l.layer}"></div></div>
        <div>${l.activations ? `<canvas width="160" height="34" data-testid="hist-a-${l.layer}"></canvas><div class="range" data-testid="hist-a-range-${l.layer}"></div>` : ""}</div></div>`).join("");
    box.dataset.shape = shape;
  }
  const color = lab.colorsRun[0] || "#2f6fde";
  const range = (h) => (h && h.lo != null ? `<span>${num3(h.lo, 2)}</span><span>${num3(h.hi, 2)}</span>` : "<span>–</span>");
  for (const l of layers) {
    const row = box.querySelector(`.hist-row[data-layer="${l.layer}"]`);
    drawHist(row.querySelector(`[data-testid="hist-w-${l.layer}"]`), l.weights, color);
    row.querySelector(`[data-testid="hist-w-range-${l.layer}"]`).innerHTML = range(l.weights);
    if (l.activations) {
      drawHist(row.querySelector(`[data-testid="hist-a-${l.layer}"]`), l.activations, "#7f8b9c");
      row.querySelector(`[data-testid="hist-a-range-${l.layer}"]`).innerHTML = range(l.activations);
    }
  }
}

function renderLegend() {
  const d = lab.data;
  $("class-legend").innerHTML = d.class_names.map((c, i) => `<span><i style="background:${d.class_colors[i]}"></i>class ${c}</span>`).join("")
    + `<span><i style="background:#fff;border:1px solid #999"></i>train</span><span><i style="background:#fff;border:2px solid #1d2430"></i>validation</span>`;
}

// ---------- downloads ----------
function save(href, name) { const a = document.createElement("a"); a.href = href; a.download = name; document.body.appendChild(a); a.click(); a.remove(); }

function downloadJson() {
  if (!lab.results) return;
  const blob = new Blob([JSON.stringify(lab.results, null, 2)], { type: "application/json" });
  const url = URL.createObjectURL(blob); save(url, "results.json"); setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function viewCanvas() {
  const s = spec(), boards = lab.mode === "compare" ? [...document.querySelectorAll(".compare-boundary")] : [$("boundary")];
  const loss = $("loss-chart"), gap = 16, title = 44;
  const bw = boards.reduce((w, c) => w + c.width + gap, 0), h = Math.max(...boards.map((c) => c.height), loss.height);
  const out = document.createElement("canvas"); out.width = bw + loss.width + gap; out.height = h + title + gap;
  const ctx = out.getContext("2d"); ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, out.width, out.height);
  ctx.fillStyle = "#1d2430"; ctx.font = "bold 16px system-ui, sans-serif";
  const inits = lab.mode === "compare" ? lab.compare.join(" vs ") : s.weight_init.name;
  ctx.fillText(`initlab: ${inits} + ${s.activation}, hidden ${s.hidden.join("-")}, ${s.dataset}, seed ${s.seed}`, gap, 24);
  ctx.font = "12px system-ui, sans-serif"; ctx.fillStyle = "#6b7585";
  ctx.fillText(`epoch ${lab.frame ? lab.frame.epoch : 0} of ${s.epochs}, ${s.optimizer} lr ${s.learning_rate}, batch ${s.batch_size}`, gap, 40);
  let x = gap / 2;
  boards.forEach((c) => { ctx.drawImage(c, x, title); x += c.width + gap; });
  ctx.drawImage(loss, x, title);
  return out;
}

function downloadPng() { save(viewCanvas().toDataURL("image/png"), "initlab-view.png"); }

boot().catch((err) => { showError(`could not load the lab: ${err.message}`); });
