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
  stats: { events: 0, frames: 0, started: 0, finished: 0 }, lastBoundary: null,
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
    out[el.dataset.param] = el.tagName === "SELECT" ? el.value : Number(el.value);
  });
  return out;
}

function hiddenSizes() { return [...$("hidden-layers").querySelectorAll("input")].map((el) => Number(el.value)); }
function setHidden(sizes) {
  const box = $("hidden-layers"); box.innerHTML = "";
  sizes.forEach((n, i) => {
    const el = document.createElement("input"); el.type = "number"; el.min = 1; el.max = 64; el.value = n;
    el.id = `hidden-${i}`; el.dataset.testid = el.id; el.title = `units in hidden layer ${i + 1}`;
    el.addEventListener("change", onChange); box.appendChild(el);
  });
}

function spec() {
  const s = {
    dataset: $("dataset").value, n_samples: Number($("n-samples").value), noise: Number($("noise").value),
    validation_split: Number($("val-split").value), activation: $("activation").value, hidden: hiddenSizes(),
    bias_init: { name: $("bias-init").value, params: readParams($("bias-params")) },
    optimizer: $("optimizer").value, learning_rate: Number($("learning-rate").value),
    momentum: Number($("momentum").value), batch_size: Number($("batch-size").value),
    epochs: Number($("epochs").value), seed: Number($("seed").value), data_seed: Number($("data-seed").value),
  };
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
  q.set("opt", s.optimizer); q.set("lr", s.learning_rate); q.set("mom", s.momentum);
  q.set("bs", s.batch_size); q.set("epochs", s.epochs); q.set("seed", s.seed);
  q.set("dseed", s.data_seed);
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
  $("optimizer").value = get("opt", d.optimizer); if (!$("optimizer").value) $("optimizer").value = d.optimizer;
  $("learning-rate").value = get("lr", d.learning_rate); $("momentum").value = get("mom", d.momentum);
  $("batch-size").value = get("bs", d.batch_size); $("epochs").value = get("epochs", d.epochs);
  $("seed").value = get("seed", d.seed); $("data-seed").value = get("dseed", d.data_seed);
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
  buildPicks();
  for (const id of ["dataset", "noise", "n-samples", "val-split", "activation", "optimizer", "learning-rate",
    "momentum", "batch-size", "epochs", "seed", "data-seed"]) $(id).addEventListener("change", onChange);
  $("noise").addEventListener("input", showRangeValues); $("val-split").addEventListener("input", showRangeValues);
  $("weight-init").addEventListener("change", () => { paramInputs($("weight-params"), $("weight-init").value, {}, "weight"); onChange(); });
  $("bias-init").addEventListener("change", () => { paramInputs($("bias-params"), $("bias-init").value, {}, "bias"); onChange(); });
  $("optimizer").addEventListener("change", () => { $("learning-rate").value = opts.default_lr[$("optimizer").value]; onChange(); });
  $("add-layer").onclick = () => { const h = hiddenSizes(); if (h.length < 8) { setHidden([...h, h[h.length - 1] || 4]); onChange(); } };
  $("remove-layer").onclick = () => { const h = hiddenSizes(); if (h.length > 1) { setHidden(h.slice(0, -1)); onChange(); } };
  $("reseed").onclick = () => { $("seed").value = Math.floor(Math.random() * 100000); onChange(); };
  $("mode-single").onclick = () => setMode("single"); $("mode-compare").onclick = () => setMode("compare");
  $("train").onclick = train; $("stop").onclick = stop; $("reset").onclick = reset;
  $("download-json").onclick = downloadJson; $("download-png").onclick = downloadPng;
  $("copy-link").onclick = () => { syncUrl(); navigator.clipboard?.writeText(location.href).catch(() => {}); status("link copied: the URL reproduces this setup"); };
  $("csv-file").addEventListener("change", uploadCsv);
  document.addEventListener("keydown", (e) => { if (e.key === "Enter" && e.target.tagName !== "BUTTON") train(); });
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
  onChange(initial);
}

let previewTimer = null;
function onChange() {
  showRangeValues(); showInit();
  $("csv-row").hidden = $("dataset").value !== "csv"; $("generated-row").hidden = $("dataset").value === "csv";
  syncUrl();
  if (lab.run) return;  // a change takes effect on the next Train
  clearTimeout(previewTimer); previewTimer = setTimeout(reset, 150);
}

function status(text) { $("status").textContent = text; }
function showError(text) { const e = $("error"); e.textContent = text; e.hidden = !text; }

// ---------- CSV upload ----------
async function uploadCsv() {
  const file = $("csv-file").files[0]; if (!file) return;
  const body = new FormData(); body.append("file", file);
  const r = await fetch("/api/datasets/csv", { method: "POST", body });
  const json = await r.json();
  if (!r.ok) { lab.csv = null; $("csv-status").textContent = json.detail; showError(json.detail); return; }
  lab.csv = json.csv; showError("");
  $("csv-status").textContent = `${file.name}: ${json.n_samples} rows, classes ${json.class_names.join(", ")}`;
  onChange();
}

// ---------- runs ----------
function newHistory(m) {
  const keys = ["loss", "val_loss", "accuracy", "val_accuracy"];
  return Object.fromEntries(keys.map((k) => [k, m ? Array.from({ length: m }, () => []) : []]));
}

async function reset() {
  if (lab.run) stop();
  showError(""); lab.results = null; $("download-json").disabled = true;
  const s = spec();
  if (s.dataset === "csv" && !s.csv) { status("choose a CSV file"); return; }
  const inits = lab.mode === "compare" ? s.inits : [s.weight_init];
  const previews = await Promise.all(inits.map((w) => {
    const one = { ...s, weight_init: w }; delete one.inits;
    return fetch("/api/preview", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(one) })
      .then(async (r) => ({ ok: r.ok, json: await r.json() }));
  }));
  const bad = previews.find((p) => !p.ok);
  if (bad) { showError(bad.json.detail); status("invalid setup"); return; }
  lab.data = previews[0].json.data; lab.colorsRun = previews.map((p) => p.json.color);
  lab.history = newHistory(lab.mode === "compare" ? inits.length : 0);
  if (lab.mode === "compare") {
    buildCards(inits.map((i) => i.name));
    lab.frame = { epoch: 0, runs: previews.map((p) => p.json) };
  } else {
    lab.frame = { epoch: 0, ...previews[0].json };
  }
  lab.lastBoundary = lab.mode === "compare" ? lab.frame.runs.map((r) => r.boundary.p) : lab.frame.boundary.p;
  document.body.dataset.run = "reset";
  status(`initial weights (seed ${s.seed}): press Train`);
  render();
}

async function train() {
  if (lab.run) return;
  showError("");
  const s = spec();
  if (s.dataset === "csv" && !s.csv) { showError("choose a CSV file first"); return; }
  const controller = new AbortController();
  lab.run = { controller }; lab.results = null;
  $("train").disabled = true; $("stop").disabled = false; $("download-json").disabled = true;
  document.body.dataset.run = "running"; status("starting...");
  lab.stats = { events: 0, frames: 0, started: performance.now(), finished: 0 };
  try {
    const r = await fetch(lab.mode === "compare" ? "/api/compare" : "/api/train", {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(s), signal: controller.signal });
    if (!r.ok) { const j = await r.json(); throw new Error(j.detail || r.statusText); }
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
    lab.run = null; $("train").disabled = false; $("stop").disabled = true;
  }
}

function stop() { if (lab.run) lab.run.controller.abort(); }  // the server stops the run when we disconnect

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
    lab.data = ev.data;
    const m = ev.mode === "compare" ? ev.colors.length : 0;
    lab.colorsRun = m ? ev.colors : [ev.color];
    lab.history = newHistory(m);
    if (m) buildCards(ev.spec.inits.map((i) => i.name));
  } else if (ev.type === "progress") {
    lab.stats.frames++;
    append(ev.history_from, ev.history, lab.mode === "compare" ? lab.colorsRun.length : 0);
    lab.frame = ev;
    status(`training: epoch ${ev.epoch} of ${ev.epochs}`);
    if (!renderQueued) { renderQueued = true; requestAnimationFrame(() => { renderQueued = false; render(); }); }
  } else if (ev.type === "done") {
    lab.results = ev.results; lab.summaries = ev.summaries || [ev.summary];
    lab.stats.finished = performance.now();
    const secs = (lab.stats.finished - lab.stats.started) / 1000;
    $("rate").textContent = `${lab.stats.frames} updates in ${secs.toFixed(1)} s (${(lab.stats.frames / secs).toFixed(0)}/s)`;
    $("download-json").disabled = false;
    render();
    status(`done: ${lab.results.experiments[0].epochs_run} epochs`);
    document.body.dataset.run = "done";
  } else if (ev.type === "error") {
    showError(ev.detail); document.body.dataset.run = "error";
  }
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

function drawLoss(canvas, series, epochs) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, pad = { l: 42, r: 10, t: 26, b: 30 };
  ctx.clearRect(0, 0, W, H); ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
  const all = series.flatMap((s) => s.values.filter((v) => v != null && isFinite(v)));
  const ymax = Math.max(0.1, ...all.slice(0, 5000)) * 1.05, xmax = Math.max(epochs, 1);
  const X = (e) => pad.l + ((e) / xmax) * (W - pad.l - pad.r), Y = (v) => H - pad.b - (v / ymax) * (H - pad.t - pad.b);
  ctx.strokeStyle = "#c9ced6"; ctx.lineWidth = 1; ctx.beginPath(); ctx.moveTo(pad.l, pad.t); ctx.lineTo(pad.l, H - pad.b); ctx.lineTo(W - pad.r, H - pad.b); ctx.stroke();
  ctx.fillStyle = "#6b7585"; ctx.font = "11px system-ui, sans-serif"; ctx.textAlign = "right";
  for (const f of [0, 0.5, 1]) { ctx.fillText((ymax * f).toFixed(2), pad.l - 4, Y(ymax * f) + 4); }
  ctx.textAlign = "center"; ctx.fillText("epoch", (W + pad.l) / 2, H - 6);
  ctx.fillText("0", X(0), H - pad.b + 13); ctx.fillText(String(xmax), X(xmax), H - pad.b + 13);
  ctx.save(); ctx.translate(11, (H - pad.b) / 2); ctx.rotate(-Math.PI / 2); ctx.fillText("loss", 0, 0); ctx.restore();
  for (const s of series) {
    ctx.strokeStyle = s.color; ctx.lineWidth = s.dash ? 1.5 : 2; ctx.setLineDash(s.dash ? [5, 4] : []);
    ctx.beginPath(); let started = false;
    s.values.forEach((v, i) => { if (v == null || !isFinite(v)) return; const x = X(i + 1), y = Y(Math.min(v, ymax)); if (!started) { ctx.moveTo(x, y); started = true; } else ctx.lineTo(x, y); });
    ctx.stroke();
  }
  ctx.setLineDash([]);
  let lx = pad.l + 8; ctx.textAlign = "left";
  for (const s of series.filter((s) => s.label)) {
    ctx.strokeStyle = s.color; ctx.setLineDash(s.dash ? [5, 4] : []); ctx.beginPath(); ctx.moveTo(lx, 10); ctx.lineTo(lx + 16, 10); ctx.stroke();
    ctx.setLineDash([]); ctx.fillStyle = "#1d2430"; ctx.fillText(s.label, lx + 20, 14); lx += 28 + ctx.measureText(s.label).width;
  }
}

const fmt = (v, d = 3) => (v == null || !isFinite(v) ? "–" : Number(v).toFixed(d));
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
      <td title="mean ${fmt(l.activation_mean)}, std ${fmt(l.activation_std)}">${fmt(l.activation_mean, 2)} &plusmn; ${fmt(l.activation_std, 2)}<span class="bar" style="width:${Math.round(40 * (l.activation_std || 0) / maxStd)}px"></span></td>
      <td>${l.activation === "tanh" || l.activation === "sigmoid" ? pct(l.saturated_fraction) : "–"}</td>
      <td>${l.grad_norm == null ? "–" : Number(l.grad_norm).toExponential(1)}</td></tr>`;
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
    renderDiagnosis(f);
    $("diagnosis-section").querySelector("h2").innerHTML = `Diagnosis <span class="hint">initlab.diagnose on the current weights</span>`;
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
