/* Linebridge console pages: everything they show comes from /api/v1; no framework, no CDN. */
"use strict";

const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const ROLE = document.querySelector('meta[name="role"]').content;
const USER = (document.querySelector('meta[name="user"]') || {}).content;


async function api(method, path, body) {
  const opts = { method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
  if (method !== "GET") opts.headers["X-CSRF-Token"] = CSRF;
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  const resp = await fetch("/api/v1" + path, opts);
  if (resp.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); throw new Error("log in"); }
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) { const e = new Error(data.error || resp.statusText); e.problems = data.problems || []; e.status = resp.status; throw e; }
  return data;
}

function el(tag, attrs, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else if (k === "class") n.className = v;
    else n.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) n.append(c instanceof Node ? c : document.createTextNode(c === undefined || c === null ? "" : String(c)));
  return n;
}

/* a save's result or error: at the top of the page, or beside `near` (the form or table that was used)
   and scrolled into view, so a failed save never looks like nothing happened */
function noticeBox(near) {
  if (!near) return document.getElementById("flash");
  if (near.parentElement && near.parentElement.classList.contains("table-wrap")) near = near.parentElement;
  let box = near.nextElementSibling;
  if (!box || !box.classList.contains("notice")) {
    box = el("div", { class: "notice", role: "status", "aria-live": "polite" });
    near.after(box);
  }
  return box;
}
function flash(text, kind = "ok", problems = [], near = null) {
  const box = noticeBox(near);
  box.replaceChildren(el("div", { class: kind }, text, problems.length ? el("ul", {}, problems.map(p => el("li", {}, p))) : ""));
  if (near) box.scrollIntoView({ block: "nearest" });
  if (kind === "ok") setTimeout(() => { if (box.firstChild && box.firstChild.textContent.startsWith(text)) box.replaceChildren(); }, 6000);
}

function fail(e, near = null) { flash(e.message, "error", e.problems || [], near); }
/* JSON typed by a person: its syntax error said as such */
function parseJSON(text, what) {
  try { return JSON.parse(text); } catch (e) { throw new Error(`${what} is not valid JSON: ${e.message}`); }
}
function pad(n) { return String(n).padStart(2, "0"); }
/* every time on every page in one zone, the browser's (the plant's), with the zone shown:
   2026-11-28 14:03:27 CET */
const ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
function zoneName(d) {
  const part = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" }).formatToParts(d).find(p => p.type === "timeZoneName");
  return part ? part.value : ZONE;
}
function when(ts) {
  if (!ts) return "—";
  const d = new Date(ts * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${zoneName(d)}`;
}
function duration(s) {
  s = Math.max(0, Math.round(s));
  if (s < 90) return s + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  if (s < 172800) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}
function size(bytes) {
  if (bytes == null) return "—";
  const units = ["bytes", "KiB", "MiB", "GiB"]; let i = 0;
  while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
  return (i ? bytes.toFixed(bytes < 10 ? 1 : 0) : bytes) + " " + units[i];
}
/* an error with the time it happened (cleared by the gateway when the thing recovers) */
function errorAt(msg, ts) { return msg ? msg + (ts ? ` (since ${when(ts)})` : "") : ""; }
function age(ts) { return ts ? duration(Date.now() / 1000 - ts) + " ago" : "never"; }
/* a table body's rows, or one row saying there is nothing (so an empty table does not look broken) */
function fill(tbody, rows, empty) {
  const cols = tbody.closest("table").querySelectorAll("thead th").length || 1;
  tbody.replaceChildren(...(rows.length || !empty ? rows : [el("tr", {}, el("td", { class: "empty", colspan: cols }, empty))]));
}
function stateClass(s) { return ["idle", "running", "connected", "ok"].includes(s) ? "state-ok" : ["paused", "stopped", "error", "dead-lettering"].includes(s) ? "state-bad" : "state-warn"; }
function canChange() { return ROLE !== "viewer"; }
function applied(r) {
  const a = r.applied || {}; const parts = [];
  for (const key of ["restarted", "started", "stopped"]) for (const [what, names] of Object.entries(a[key] || {})) if (names.length) parts.push(`${key} ${what}: ${names.join(", ")}`);
  if ((a.restart_required || []).length) parts.push("needs a gateway restart: " + a.restart_required.join("; "));
  return `Saved as change #${r.saved.id}` + (parts.length ? " — " + parts.join("; ") : " — applied");
}
/* a waiting connection: its countdown to the next try, and "Retry now" for those who may */
function retryBox(name, st, after) {
  if (!st || !st.next_retry_at) return "";
  const left = Math.max(0, st.next_retry_at - Date.now() / 1000);
  return el("span", { class: "retry" }, ` next try in ${duration(left)} `, canChange() ? el("button", { type: "button", class: "secondary small", id: "retry-" + name,
    onclick: async () => { try { await api("POST", `/connections/${encodeURIComponent(name)}/retry`); flash(`Retrying ${name} now`); if (after) await after(); } catch (e) { fail(e); } } }, "Retry now") : "");
}
function every(ms, fn) { fn(); return setInterval(() => { if (!document.hidden) fn(); }, ms); }

/* ---------- overview ---------- */
/* the supervised tasks' restarts: red once one has kept failing past its window (the watchdog stops) */
function restartsCard(st) {
  const tasks = Object.entries(st.tasks || {});
  const total = tasks.reduce((n, [, t]) => n + (t.restarts || 0), 0);
  const failing = tasks.filter(([, t]) => t.restarts).map(([n, t]) => `${n}: ${t.restarts} restart(s), ${t.state}` + (t.last_error ? ` — ${t.last_error}` : ""));
  const cls = st.healthy === false ? "state-bad" : total ? "state-warn" : "state-ok";
  return el("div", { class: "card", id: "card-restarts", title: failing.join("\n") || "every task has run since the start without dying" },
    el("div", { class: "label" }, "Task restarts"), el("div", { class: "value " + cls }, total));
}
/* one card per machine: its work order, this shift's good parts and scrap, its rate, its last deliveries */
function num(v) { return v == null ? "—" : Number.isInteger(v) ? String(v) : v.toFixed(1); }
function machineCard(m) {
  const s = m.since_start, sh = m.shift;
  const orders = m.work_orders.length ? m.work_orders.map(o => o.name ? `${o.name}` + (o.production ? ` (${o.production})` : "") + (m.work_orders.length > 1 ? ` via ${o.sink}` : "")
    : "no open work order" + (m.work_orders.length > 1 ? ` (${o.sink})` : "")).join("; ") : (m.work_center ? "not looked up yet" : "no work center mapped");
  const shift = sh ? `${num(sh.good)} good, ${num(sh.scrap)} scrap` : (m.shifts_configured ? "between shifts" : "no shift calendar");
  const deliveries = m.deliveries.length ? m.deliveries.map(d => `${d.sink}: ${d.at ? age(d.at) : "none yet"}`).join("; ") : "no connection";
  const fact = (k, v, cls, title) => [el("dt", {}, k), el("dd", { class: cls, title }, v)];
  return el("div", { class: "machine", id: "machine-" + m.machine },
    el("h3", {}, m.machine, el("span", { class: "hint" }, m.work_center ? ` work center ${m.work_center}` : "")),
    el("dl", {},
      fact("Work order", orders, "m-order"),
      fact(sh ? `Shift ${sh.name}` : "This shift", shift, "m-shift", sh ? `${when(sh.start)} to ${when(sh.end)}` : undefined),
      fact("Since the start", `${num(s.good)} good, ${num(s.scrap)} scrap`, "m-since", `since ${when(m.started)}`),
      fact("Rate", s.rate_per_min == null ? "no part yet" : `${num(s.rate_per_min)} parts/min`, "m-rate"),
      fact("Last delivery", deliveries, "m-delivery", m.deliveries.filter(d => d.at).map(d => `${d.sink}: ${when(d.at)}`).join("\n") || undefined)));
}
async function machines() {
  const p = await api("GET", "/production");
  const list = document.getElementById("machine-list");
  list.replaceChildren(...(p.machines.length ? p.machines.map(machineCard) : [el("p", { class: "hint" }, "No machines yet: add a device on the Devices page.")]));
}
async function overview() {
  machines().catch(fail);
  const st = await api("GET", "/status");
  showLight(st.light);
  const sinks = Object.entries(st.sinks || {});
  const backlog = sinks.reduce((n, [, s]) => n + (s.backlog || 0), 0);
  const devices = Object.entries(st.devices || {});
  const card = (label, value, cls, id) => el("div", { class: "card", id }, el("div", { class: "label" }, label), el("div", { class: "value " + (cls || "") }, value));
  document.getElementById("cards").replaceChildren(
    card("Uptime", duration(st.uptime)),
    card("Devices connected", `${devices.filter(([, d]) => d.connected).length} / ${devices.length}`, "", "card-devices"),
    card("Events stored", st.stored, "", "card-stored"),
    card("Backlog", backlog, backlog ? "state-warn" : "state-ok", "card-backlog"),
    card("Dead letters", st.dead_letters, st.dead_letters ? "state-bad" : "state-ok", "card-dead"),
    card("Refused (store full)", st.refused, st.refused ? "state-bad" : ""),
    restartsCard(st));
  fill(document.querySelector("#devices-table tbody"), devices.map(([n, d]) => el("tr", {},
    el("td", {}, n), el("td", { class: d.connected ? "state-ok" : "state-bad" }, d.connected ? "connected" : "disconnected"),
    el("td", {}, d.reads), el("td", {}, d.errors), el("td", {}, d.poll_latency_ms == null ? "—" : d.poll_latency_ms.toFixed(1) + " ms"),
    el("td", { class: "error" }, errorAt(d.last_error, d.last_error_at)))), "No devices yet: add one on the Devices page.");
  fill(document.querySelector("#sinks-table tbody"), sinks.map(([n, s]) => el("tr", { id: "sink-" + n },
    el("td", {}, n), el("td", {}, s.type), el("td", { class: stateClass(s.state), title: s.held ? `${s.held} event(s) wait for an open work order` : undefined },
      s.state + (s.held ? ` (${s.held} held)` : ""), retryBox(n, s, overview)), el("td", {}, s.backlog),
    el("td", {}, s.delivered), el("td", { class: "dead-now", title: `${s.dead_lettered} dead-lettered since the gateway started (replayed or discarded ones included)` }, s.dead_letters ?? 0), el("td", { class: "error" }, errorAt(s.last_error, s.last_error_at)))), "No connections configured.");
  const secs = v => v == null ? "—" : v.toFixed(1) + " s";
  const levels = sinks.flatMap(([n, s]) => Object.entries(s.service_levels || {}).map(([k, l]) => el("tr", { id: `level-${n}-${k}` },
    el("td", {}, n), el("td", {}, k), el("td", {}, l.acknowledged), el("td", {}, secs(l.p50_s)), el("td", {}, secs(l.p95_s)),
    el("td", {}, secs(l.max_s)), el("td", {}, secs(l.target_s)),
    el("td", { class: l.within_target == null || l.within_target >= 0.95 ? "state-ok" : "state-bad" },
      l.within_target == null ? "—" : (100 * l.within_target).toFixed(1) + " %"))));
  fill(document.querySelector("#levels-table tbody"), levels, "Nothing acknowledged yet.");
  const hb = st.heartbeat;
  document.getElementById("heartbeat").textContent = hb ? `every ${hb.interval} s through ${hb.sink}: ${hb.sent} sent` + (hb.last_error ? ` — last error: ${hb.last_error}` : "") : "no heartbeat configured";
}

/* ---------- devices ---------- */
let devicesVersion = null;
let editing = null;
const MODBUS = ["modbus_tcp", "modbus_rtu", "modbus_rtu_over_tcp"];

async function devices() {
  const data = await api("GET", "/devices");
  devicesVersion = data.version;
  const list = document.getElementById("device-list");
  if (!data.devices.length) { list.replaceChildren(el("p", { class: "hint" }, "No devices yet.")); return; }
  list.replaceChildren(...data.devices.map(d => {
    const h = d.health || {};
    return el("div", { class: "device", id: "device-" + d.name },
      el("h2", {}, d.name, el("span", { class: "hint" }, d.type + (d.machine ? " · machine " + d.machine : "")),
        el("span", { class: h.connected ? "state-ok" : "state-bad" }, h.connected ? "connected" : "not connected")),
      h.last_error ? el("p", { class: "error" }, errorAt(h.last_error, h.last_error_at)) : "",
      el("div", { class: "values" }, d.values.map(v => el("span", { class: "v", "data-tag": v.tag, title: `${v.quality}, read ${when(v.ts)}` + (v.error ? ": " + v.error : "") },
        v.tag + " = ", el("strong", { class: "q-" + v.quality }, v.value === null ? v.quality : v.value),
        (typeof v.value === "number" || typeof v.value === "boolean") ? el("button", { type: "button", class: "link trend-open", "aria-label": `Trend of ${d.name} ${v.tag}`, title: "the last hour", onclick: () => openTrend(d.name, v.tag) }, "trend") : "")),
        d.values.length ? el("span", { class: "hint age" }, "read " + age(Math.max(...d.values.map(v => v.ts || 0)))) : el("span", { class: "hint" }, "no reading yet")),
      el("div", { class: "changes actions" },
        el("button", { type: "button", class: "secondary", onclick: () => openDevice(d) }, "Edit"),
        el("label", { class: "button secondary file-button" }, "Import tags (CSV)",
          el("input", { type: "file", accept: ".csv,text/csv,text/plain", class: "visually-hidden", "aria-label": `Import tags of ${d.name} from CSV`,
            onchange: ev => importTags(d.name, ev.target) })),
        el("button", { type: "button", class: "danger", onclick: () => deleteDevice(d.name) }, "Delete")));
  }));
}

/* ---------- a tag's last hour (served from the gateway's memory; drawn here as SVG, no library) ---------- */
let trendTimer = null;
function openTrend(device, tag) {
  const dlg = document.getElementById("trend-dialog");
  document.getElementById("trend-title").textContent = `${device} · ${tag}: the last hour`;
  const draw = () => api("GET", `/devices/${encodeURIComponent(device)}/trend/${encodeURIComponent(tag)}`).then(drawTrend).catch(e => {
    document.getElementById("trend-chart").replaceChildren(el("p", { class: "error" }, e.message)); });
  draw();
  clearInterval(trendTimer);
  trendTimer = setInterval(() => { if (dlg.open) draw(); else clearInterval(trendTimer); }, 10000);
  dlg.showModal();
}
function drawTrend(t) {
  const box = document.getElementById("trend-chart"), pts = t.points;
  const hint = document.getElementById("trend-hint");
  if (!pts.length) { box.replaceChildren(el("p", { class: "hint" }, "No good value in the last hour.")); hint.textContent = ""; return; }
  const W = 640, H = 240, L = 56, R = 8, T = 8, B = 24, NS = "http://www.w3.org/2000/svg";
  const t1 = Date.now() / 1000, t0 = t1 - t.window_s;
  let lo = Math.min(...pts.map(p => p[1])), hi = Math.max(...pts.map(p => p[2]));
  if (hi === lo) { hi += 1; lo -= 1; }
  const x = ts => L + (W - L - R) * (ts - t0) / (t1 - t0), y = v => T + (H - T - B) * (hi - v) / (hi - lo);
  const svg = document.createElementNS(NS, "svg");
  const node = (tag, attrs, text) => { const n = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); if (text !== undefined) n.textContent = text; return n; };
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`); svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${t.tag} from ${lo} to ${hi} over the last hour, ${pts.length} points of ${t.step_s} s`);
  svg.append(node("rect", { x: L, y: T, width: W - L - R, height: H - T - B, class: "trend-frame" }));
  /* gaps (no good value for more than two steps) split the drawing */
  const runs = []; let run = [];
  for (const p of pts) { if (run.length && p[0] - run[run.length - 1][0] > 2.5 * t.step_s) { runs.push(run); run = []; } run.push(p); }
  runs.push(run);
  for (const r of runs) {
    const band = r.map(p => `${x(p[0]).toFixed(1)},${y(p[2]).toFixed(1)}`).concat(r.slice().reverse().map(p => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`));
    svg.append(node("polygon", { points: band.join(" "), class: "trend-band" }));
    svg.append(node("polyline", { points: r.map(p => `${x(p[0]).toFixed(1)},${y(p[3]).toFixed(1)}`).join(" "), class: "trend-line" }));
  }
  const fmt = v => Math.abs(v) >= 1000 || Number.isInteger(v) ? String(Math.round(v * 100) / 100) : v.toPrecision(4);
  svg.append(node("text", { x: L - 4, y: T + 10, "text-anchor": "end", class: "trend-axis" }, fmt(hi)));
  svg.append(node("text", { x: L - 4, y: H - B, "text-anchor": "end", class: "trend-axis" }, fmt(lo)));
  svg.append(node("text", { x: L, y: H - 6, class: "trend-axis" }, when(t0).slice(11)));
  svg.append(node("text", { x: W - R, y: H - 6, "text-anchor": "end", class: "trend-axis" }, when(t1).slice(11)));
  box.replaceChildren(svg);
  const last = pts[pts.length - 1];
  hint.textContent = `Last ${fmt(last[3])} at ${when(last[0])}; lowest ${fmt(lo)}, highest ${fmt(hi)}; the band is each ${t.step_s} s step's lowest to highest value. Kept in memory only: it starts empty after a restart.`;
}

async function importTags(device, input) {
  const file = input.files[0];
  input.value = "";
  if (!file) return;
  const replace = confirm(`Import the tags of ${file.name} into ${device}.\n\nOK: replace every tag of ${device} with the file's.\nCancel: add them and update the tags of the same name.`);
  try {
    const r = await api("POST", `/devices/${encodeURIComponent(device)}/tags/import`, { csv: await file.text(), mode: replace ? "replace" : "merge", version: devicesVersion });
    flash(`Imported ${r.imported.length} tag(s) into ${device}: ` + applied(r)); await devices();
  } catch (e) { fail(e); }
}

function tagRow(name = "", t = {}) {
  const n = document.querySelectorAll("#tag-rows tbody tr").length + 1;
  const fn = el("select", { class: "t-fn", "aria-label": `Register table of tag ${n}` }, ["holding", "input", "coil", "discrete"].map(f => el("option", { selected: t.function === f }, f)));
  const ty = el("select", { class: "t-type", "aria-label": `Format of tag ${n}` }, ["uint16", "int16", "uint32", "int32", "float32", "uint64", "int64", "float64", "bool"].map(f => el("option", { selected: (t.type || "uint16") === f }, f)));
  const tr = el("tr", {}, el("td", {}, el("input", { class: "t-name", value: name, required: true, "aria-label": `Tag ${n}` })), el("td", {}, fn),
    el("td", {}, el("input", { class: "t-addr", type: "number", min: 0, max: 65535, value: t.address ?? 0, "aria-label": `Address of tag ${n}` })), el("td", {}, ty),
    el("td", {}, el("button", { type: "button", class: "link", onclick: () => tr.remove() }, "remove")));
  tr.dataset.extra = JSON.stringify(Object.fromEntries(Object.entries(t).filter(([k]) => !["function", "address", "type"].includes(k))));
  return tr;
}

function openDevice(d) {
  editing = d ? d.name : null;
  const s = d ? d.section : { type: "modbus_tcp", port: 502, unit_id: 1, poll_interval: 1, tags: {} };
  document.getElementById("device-form-title").textContent = d ? "Edit " + d.name : "Add a device";
  const name = document.getElementById("dev-name"); name.value = d ? d.name : ""; name.readOnly = !!d;
  document.getElementById("dev-type").value = s.type;
  document.getElementById("dev-machine").value = s.machine || "";
  document.getElementById("dev-host").value = s.host || "";
  document.getElementById("dev-port").value = s.port ?? 502;
  document.getElementById("dev-unit").value = s.unit_id ?? 1;
  document.getElementById("dev-poll").value = s.poll_interval ?? 1;
  fill(document.querySelector("#tag-rows tbody"), Object.entries(s.tags || {}).map(([n, t]) => tagRow(n, t)));
  const json = document.getElementById("dev-json"); json.value = JSON.stringify(s, null, 2); json.dataset.original = json.value;
  document.getElementById("device-problems").replaceChildren();
  document.getElementById("test-result").replaceChildren();
  typeChanged();
  document.getElementById("device-dialog").showModal();
}

function typeChanged() {
  const t = document.getElementById("dev-type").value;
  document.getElementById("modbus-fields").hidden = !MODBUS.includes(t);
  document.getElementById("browse-box").hidden = t !== "opcua";
  if (!MODBUS.includes(t)) document.getElementById("advanced").open = true;
}

function deviceSection() {
  const json = document.getElementById("dev-json");
  if (json.value !== json.dataset.original) return JSON.parse(json.value);
  const t = document.getElementById("dev-type").value;
  const base = JSON.parse(json.value || "{}");
  const s = Object.assign(base, { type: t });
  const machine = document.getElementById("dev-machine").value.trim();
  if (machine) s.machine = machine; else delete s.machine;
  if (MODBUS.includes(t)) {
    const num = id => Number(document.getElementById(id).value);
    if (t !== "modbus_rtu") { s.host = document.getElementById("dev-host").value.trim(); s.port = num("dev-port"); }
    s.unit_id = num("dev-unit"); s.poll_interval = num("dev-poll");
    s.tags = {};
    for (const tr of document.querySelectorAll("#tag-rows tbody tr")) {
      const n = tr.querySelector(".t-name").value.trim();
      if (!n) continue;
      s.tags[n] = Object.assign(JSON.parse(tr.dataset.extra || "{}"), { function: tr.querySelector(".t-fn").value,
        address: Number(tr.querySelector(".t-addr").value), type: tr.querySelector(".t-type").value });
    }
  }
  return s;
}

function showProblems(e) {
  document.getElementById("device-problems").replaceChildren(el("p", {}, e.message), el("ul", {}, (e.problems || []).map(p => el("li", {}, p))));
}

async function saveDevice(ev) {
  ev.preventDefault();
  let section;
  try { section = deviceSection(); } catch (e) { showProblems({ message: "the JSON is not valid: " + e.message }); return; }
  const name = document.getElementById("dev-name").value.trim();
  try {
    const r = editing ? await api("PUT", "/devices/" + encodeURIComponent(name), { section, version: devicesVersion })
                      : await api("POST", "/devices", { name, section, version: devicesVersion });
    document.getElementById("device-dialog").close();
    flash(applied(r));
    await devices();
  } catch (e) { showProblems(e); }
}

async function testRead() {
  const box = document.getElementById("test-result");
  box.replaceChildren(el("p", { class: "hint" }, "Reading…"));
  try {
    const name = document.getElementById("dev-name").value.trim() || "new";
    const r = await api("POST", "/devices/" + encodeURIComponent(name) + "/test-read", { section: deviceSection() });
    const findings = (r.findings || []).map(f => el("p", { class: f.startsWith("warning") ? "hint" : "error" }, f));
    box.replaceChildren(...findings, r.error ? el("p", { class: "error" }, r.error) : el("table", { class: "grid", id: "test-values" },
      el("caption", {}, `Test read: ${r.samples.length} tag(s) in ${r.ms} ms (nothing saved yet)`),
      el("tr", {}, el("th", {}, "Tag"), el("th", {}, "Value"), el("th", {}, "Quality"), el("th", {}, "Error")),
      r.samples.map(s => el("tr", {}, el("td", {}, s.tag), el("td", {}, s.value), el("td", { class: "q-" + s.quality }, s.quality), el("td", {}, s.error || "")))));
    box.scrollIntoView({ block: "nearest" });  /* below the tag rows on a panel or a phone: bring it up */
  } catch (e) { box.replaceChildren(); showProblems(e); }
}

async function browse(node, into) {
  try {
    const name = document.getElementById("dev-name").value.trim() || "new";
    const r = await api("POST", "/devices/" + encodeURIComponent(name) + "/browse", { section: deviceSection(), node });
    into.replaceChildren(...r.nodes.map(n => {
      const li = el("li", {}, n.node_class === "Variable"
        ? el("button", { type: "button", class: "link", onclick: () => addOpcTag(n) }, `+ ${n.display_name} (${n.data_type})`)
        : el("button", { type: "button", class: "link", onclick: () => { const ul = el("ul", { class: "tree" }); li.append(ul); browse(n.node_id, ul); } }, "▸ " + n.display_name));
      return li;
    }));
  } catch (e) { showProblems(e); }
}

function addOpcTag(n) {
  const json = document.getElementById("dev-json");
  const s = JSON.parse(json.value);
  s.tags = s.tags || {};
  s.tags[n.browse_name.replace(/[^A-Za-z0-9_]/g, "_")] = { node: n.node_id };
  json.value = JSON.stringify(s, null, 2);
}

async function deleteDevice(name) {
  if (!confirm(`Delete device ${name}? Its queued events stay and are delivered.`)) return;
  try { flash(applied(await api("DELETE", "/devices/" + encodeURIComponent(name) + "?version=" + devicesVersion))); await devices(); } catch (e) { fail(e); }
}

function devicesPage() {
  document.getElementById("add-device").addEventListener("click", () => openDevice(null));
  document.getElementById("add-tag").addEventListener("click", () => document.querySelector("#tag-rows tbody").append(tagRow()));
  document.getElementById("dev-type").addEventListener("change", typeChanged);
  document.getElementById("device-form").addEventListener("submit", saveDevice);
  document.getElementById("test-read").addEventListener("click", testRead);
  document.getElementById("cancel-device").addEventListener("click", () => document.getElementById("device-dialog").close());
  document.getElementById("trend-close").addEventListener("click", () => document.getElementById("trend-dialog").close());
  document.getElementById("browse").addEventListener("click", () => browse(null, document.getElementById("browse-tree")));
  every(2000, () => { if (!document.getElementById("device-dialog").open && !document.getElementById("trend-dialog").open) devices().catch(fail); });
}

/* ---------- rules and mappings ---------- */
let cfgVersion = null;
async function mappings() {
  const [m, r, s] = await Promise.all([api("GET", "/machines"), api("GET", "/rules"), api("GET", "/shifts")]);
  cfgVersion = s.version;
  const del = (what, name) => el("button", { type: "button", class: "link changes", onclick: async () => {
    if (!confirm(`Delete ${name}?`)) return;
    const near = document.getElementById(what === "rules" ? "rules-table" : "machines-table");
    try { flash(applied(await api("DELETE", `/${what}/${encodeURIComponent(name)}?version=${cfgVersion}`)), "ok", [], near); await mappings(); } catch (e) { fail(e, near); } } }, "delete");
  fill(document.querySelector("#machines-table tbody"), m.machines.map(x => el("tr", { "data-machine": x.name }, el("td", {}, x.name),
    el("td", {}, x.section.work_center || ""), el("td", {}, x.section.equipment || ""), el("td", {}, x.section.product || ""),
    el("td", {}, el("button", { type: "button", class: "link changes", onclick: () => {
      document.getElementById("m-name").value = x.name; document.getElementById("m-wc").value = x.section.work_center || "";
      document.getElementById("m-eq").value = x.section.equipment || ""; document.getElementById("m-product").value = x.section.product || ""; document.getElementById("m-wc").focus(); } }, "edit"), " ", del("machines", x.name)))),
    "No machine mapped yet.");
  fill(document.querySelector("#rules-table tbody"), r.rules.map(x => {
    const { type, device, tag, ...rest } = x.section;
    return el("tr", {}, el("td", {}, x.name), el("td", {}, type), el("td", {}, device), el("td", {}, tag || ""),
      el("td", {}, el("code", {}, Object.entries(rest).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join(", "))), el("td", {}, el("button", { type: "button", class: "link changes", onclick: () => {
        document.getElementById("r-name").value = x.name; document.getElementById("r-json").value = JSON.stringify(x.section, null, 2);
        document.querySelector("#rule-form").closest("details").open = true; document.getElementById("r-json").focus(); } }, "edit"), " ", del("rules", x.name)));
  }), "No rules yet: without a rule a device's readings make no events.");
  const shiftBox = document.getElementById("shifts");
  shiftBox.textContent = s.shifts ? JSON.stringify(s.shifts, null, 2) : "No shift calendar: events carry no shift and there are no per-shift summaries.";
  shiftBox.className = s.shifts ? "code" : "hint";
  document.getElementById("shifts-json").value = JSON.stringify(s.shifts || { timezone: "Europe/Berlin", shifts: [] }, null, 2);
}

async function saveSection(what, name, section, near) {
  try { flash(applied(await api("PUT", `/${what}/${encodeURIComponent(name)}`, { section, version: cfgVersion })), "ok", [], near); await mappings(); return true; }
  catch (e) { fail(e, near); return false; }
}

function mappingsPage() {
  document.getElementById("machine-form").addEventListener("submit", ev => {
    ev.preventDefault();
    const s = {};
    for (const [id, key] of [["m-wc", "work_center"], ["m-eq", "equipment"], ["m-product", "product"]]) { const v = document.getElementById(id).value.trim(); if (v) s[key] = v; }
    saveSection("machines", document.getElementById("m-name").value.trim(), s, ev.target).then(ok => { if (ok) ev.target.reset(); });
  });
  document.getElementById("rule-form").addEventListener("submit", ev => {
    ev.preventDefault();
    try { saveSection("rules", document.getElementById("r-name").value.trim(), parseJSON(document.getElementById("r-json").value, "the rule's settings"), ev.target); }
    catch (e) { fail(e, ev.target); }
  });
  document.getElementById("shifts-form").addEventListener("submit", async ev => {
    ev.preventDefault();
    try { flash(applied(await api("PUT", "/shifts", { shifts: parseJSON(document.getElementById("shifts-json").value, "the calendar"), version: cfgVersion })), "ok", [], ev.target); await mappings(); }
    catch (e) { fail(e, ev.target); }
  });
  mappings().catch(fail);
}

/* ---------- connections ---------- */
/* the keys a person looks for first, in this order; the others follow alphabetically */
const CONNECTION_KEYS = ["url", "database", "login", "api_key", "api_key_env", "api_key_file", "username", "password",
  "password_env", "password_file", "client_id", "topic_prefix", "protocol", "timeout"];
const WIDE_KEYS = ["url", "topic_prefix", "ca_file", "certfile", "keyfile", "api_key_file", "password_file"];

function connectionFields(section) {
  const rank = k => { const i = CONNECTION_KEYS.indexOf(k); return i < 0 ? CONNECTION_KEYS.length : i; };
  return Object.entries(section).filter(([k, v]) => k !== "type" && (typeof v !== "object" || v === null))
    .sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b));
}

function showFindings(box, findings) {
  const count = level => findings.filter(f => f.level === level).length;
  const blockers = count("blocker"), warnings = findings.length - blockers - count("ok");
  const order = { blocker: 0, warning: 1, ok: 2 };
  const sorted = findings.slice().sort((a, b) => (order[a.level] ?? 1) - (order[b.level] ?? 1));
  box.replaceChildren(
    el("p", { class: "findings-summary " + (blockers ? "error" : warnings ? "state-warn" : "ok") },
      blockers ? `${blockers} blocker(s): delivery cannot work until they are fixed` : `All ${count("ok")} checks passed` + (warnings ? `, ${warnings} warning(s)` : "")),
    el("ul", { class: "findings" }, sorted.map(f => el("li", { class: f.level === "ok" ? "ok" : f.level === "blocker" ? "error" : "state-warn" },
      el("span", { class: "level" }, f.level.toUpperCase()), " " + f.text))));
}

async function connections() {
  const data = await api("GET", "/connections");
  cfgVersion = data.version;
  const list = document.getElementById("connection-list");
  if (!data.connections.length) { list.replaceChildren(el("p", { class: "hint" }, "No connections configured.")); return; }
  list.replaceChildren(...data.connections.map(c => {
    const st = c.status || {};
    const inputs = connectionFields(c.section).map(([k, v]) => el("label", { class: WIDE_KEYS.includes(k) ? "wide" : undefined }, k,
      el("input", { name: k, id: `c-${c.name}-${k}`, value: v, "data-kind": typeof v, type: v === "********" ? "password" : "text",
                    autocomplete: "off", spellcheck: "false" })));
    const nested = Object.entries(c.section).filter(([, v]) => v !== null && typeof v === "object");
    const findings = el("div", { id: `findings-${c.name}`, role: "status" });
    /* the section as the form has it (a secret left as ******** keeps the stored one) */
    const formSection = () => {
      const section = JSON.parse(JSON.stringify(c.section));
      for (const inp of form.querySelectorAll("input[name]")) section[inp.name] = inp.dataset.kind === "number" ? Number(inp.value) : inp.dataset.kind === "boolean" ? inp.value === "true" : inp.value;
      return section;
    };
    const form = el("form", { class: "stack", onsubmit: async ev => {
      ev.preventDefault();
      try { flash(applied(await api("PUT", "/connections/" + encodeURIComponent(c.name), { section: formSection(), version: cfgVersion }))); await connections(); } catch (e) { fail(e); }
    } }, el("div", { class: "row" }, inputs),
      nested.length ? el("p", { class: "hint" }, "Also set in the file and kept as they are: ", nested.map(([k]) => el("code", {}, k + " ")), "(see the configuration reference).") : "",
      el("div", { class: "actions changes" }, ROLE === "admin" ? el("button", { type: "submit", id: `save-${c.name}` }, "Save")
        : el("span", { class: "hint" }, "Only an admin changes connections; a test of a new destination needs its secret typed."),
      el("button", { type: "button", class: "secondary", id: `test-${c.name}`, onclick: async () => {
        findings.replaceChildren(el("p", { class: "hint" }, "Testing…"));
        try { const r = await api("POST", `/connections/${encodeURIComponent(c.name)}/test`, { section: formSection() }); showFindings(findings, r.findings); }
        catch (e) { findings.replaceChildren(el("p", { class: "error" }, e.message), el("ul", {}, (e.problems || []).map(p => el("li", { class: "error" }, p)))); } } }, "Test connection")));
    return el("div", { class: "connection", id: "connection-" + c.name }, el("h2", {}, c.name, el("span", { class: "hint" }, c.section.type),
      el("span", { class: stateClass(st.state) }, st.state || "—"), retryBox(c.name, st, connections), el("span", { class: "hint" }, `backlog ${st.backlog ?? "—"}, delivered ${st.delivered ?? 0}`)),
      st.last_error ? el("p", { class: "error" }, errorAt(st.last_error, st.last_error_at)) : "", form, findings);
  }));
}

/* ---------- queue and dead letters ---------- */
/* the letters are shown a page at a time, of one group (sink and reason) or of all; the groups come first */
const DLQ_PAGE = 50;
let dlqOffset = 0, dlqGroup = null;
async function queue() {
  const q_ = dlqGroup ? `&sink=${encodeURIComponent(dlqGroup.sink)}&reason=${encodeURIComponent(dlqGroup.reason)}` : "";
  const [q, g, d, j, h] = await Promise.all([api("GET", "/queue"), api("GET", "/dead-letters/groups"),
    api("GET", `/dead-letters?offset=${dlqOffset}&limit=${DLQ_PAGE}` + q_), api("GET", "/journal?limit=20"), api("GET", "/held")]);
  fill(document.querySelector("#held-table tbody"), h.held.map(x => el("tr", { class: "held" }, el("td", {}, x.sink), el("td", {}, x.seq), el("td", {}, x.event.kind),
    el("td", {}, (x.event.context || {}).machine || ""), el("td", {}, x.lane), el("td", {}, duration(Date.now() / 1000 - x.since)), el("td", {}, x.reason))), "Nothing held.");
  fill(document.querySelector("#queue-table tbody"), Object.entries(q.sinks).map(([n, s]) => el("tr", {}, el("td", {}, n),
    el("td", {}, (s.classes || []).join(", ")), el("td", {}, s.backlog ?? "—"), el("td", {}, s.lag_seq), el("td", { class: s.held ? "state-warn" : "" }, s.held ?? 0),
    el("td", {}, s.dead_letters))), "No sinks.");
  const b = q.classes.business, t = q.classes.telemetry;
  document.getElementById("store-summary").textContent = `Stored: business ${b.events} event(s), ${size(b.bytes)}; telemetry ${t.events} event(s) (${t.evicted} evicted). Store file: ${size(q.map_used)} used of ${size(q.map_size)}.`;
  document.getElementById("dlq-total").textContent = g.total ? `${g.total} dead letter(s) for ${g.groups.length} reason(s)` : "";
  fill(document.querySelector("#dlq-groups tbody"), g.groups.map(x => el("tr", { class: "dlq-group" + (dlqGroup && dlqGroup.sink === x.sink && dlqGroup.reason === x.reason ? " selected" : "") },
    el("td", {}, x.sink), el("td", { class: "error", title: x.example }, x.example + (x.replayed ? ` (${x.replayed} replay(s) on their way)` : "")), el("td", {}, x.count),
    el("td", {}, Object.entries(x.kinds).map(([k, n]) => `${k} ${n}`).join(", ")), el("td", {}, when(x.last_failure)),
    el("td", {}, el("button", { type: "button", class: "link", onclick: () => { dlqGroup = { sink: x.sink, reason: x.reason }; dlqOffset = 0; queue().catch(fail); } }, "show"), " ",
      el("button", { type: "button", class: "link changes", onclick: () => groupAction("replay", x) }, "replay"), " ",
      el("button", { type: "button", class: "link changes", onclick: () => groupAction("discard", x) }, "discard")))), "No dead letters.");
  const selected = new Set([...document.querySelectorAll(".dlq-pick:checked")].map(x => x.value));
  fill(document.querySelector("#dlq-table tbody"), d.dead_letters.map(l => {
    const key = `${l.sink}/${l.seq}`;
    return el("tr", { class: "dead-letter", "data-key": key }, el("td", {}, el("input", { type: "checkbox", class: "dlq-pick changes", value: key, checked: selected.has(key), "aria-label": "select " + key })),
      el("td", {}, l.sink), el("td", {}, l.seq), el("td", {}, l.event.kind), el("td", {}, l.event.machine || (l.event.context || {}).machine || ""),
      el("td", { class: "error" }, l.error + (l.replayed ? " (replay on its way)" : "")), el("td", {}, l.attempts), el("td", {}, when(l.last_failure)),
      el("td", {}, el("button", { type: "button", class: "link", onclick: () => { const p = document.getElementById("letter"); p.hidden = false; p.textContent = JSON.stringify(l, null, 2); p.scrollIntoView({ block: "nearest" }); } }, "inspect")));
  }), "No dead letters.");
  document.getElementById("dlq-list-title").textContent = dlqGroup ? `Letters of ${dlqGroup.sink}: ${dlqGroup.reason}` : "Letters";
  document.getElementById("dlq-everything").hidden = !dlqGroup;
  document.getElementById("dlq-range").textContent = d.total ? `${d.offset + 1}–${d.offset + d.dead_letters.length} of ${d.total}` : "";
  document.getElementById("dlq-prev").disabled = d.offset <= 0;
  document.getElementById("dlq-next").disabled = d.offset + d.dead_letters.length >= d.total;
  for (const id of ["replay-all", "replay-selected", "discard-selected"]) document.getElementById(id).disabled = !g.total;
  document.getElementById("journal-verdict").textContent = j.verify.detail;
  document.getElementById("journal-verdict").className = j.verify.ok ? "ok" : "error";
  fill(document.querySelector("#journal-table tbody"), j.entries.slice().reverse().map(e => el("tr", {}, el("td", {}, e.n ?? e.seq ?? ""), el("td", {}, e.op || "deliver"),
    el("td", {}, e.sink), el("td", {}, e.by || ""), el("td", {}, when(e.ts)), el("td", {}, (e.items || []).length))), "Nothing delivered yet.");
}

async function groupAction(op, grp) {
  if (op === "discard" && !confirm(`Discard the ${grp.count} dead letter(s) of ${grp.sink} for "${grp.example}" for good?`)) return;
  try {
    const r = await api("POST", `/dead-letters/${encodeURIComponent(grp.sink)}/${op}`, { reason: grp.reason });
    flash(`${op === "replay" ? "Replayed" : "Discarded"} ${r.replayed ?? r.discarded ?? 0} dead letter(s)`);
    await queue();
  } catch (e) { fail(e); }
}

async function dlqAction(op, picks) {
  const bySink = {};
  for (const key of picks) { const [sink, seq] = key.split("/"); (bySink[sink] = bySink[sink] || []).push(Number(seq)); }
  if (op === "discard" && !confirm(`Discard ${picks.length} dead letter(s) for good?`)) return;
  try {
    let n = 0;
    for (const [sink, seqs] of Object.entries(bySink)) { const r = await api("POST", `/dead-letters/${encodeURIComponent(sink)}/${op}`, { seqs }); n += r.replayed ?? r.discarded ?? 0; }
    flash(`${op === "replay" ? "Replayed" : "Discarded"} ${n} dead letter(s)`);
    await queue();
  } catch (e) { fail(e); }
}

/* every dead letter of every sink (or of the group shown), not only this page's */
async function replayAll() {
  try {
    const sinks = dlqGroup ? [dlqGroup.sink] : Object.keys((await api("GET", "/queue")).sinks);
    let n = 0;
    for (const sink of sinks) { const r = await api("POST", `/dead-letters/${encodeURIComponent(sink)}/replay`, dlqGroup ? { reason: dlqGroup.reason } : {}); n += r.replayed; }
    flash(`Replayed ${n} dead letter(s)`);
    await queue();
  } catch (e) { fail(e); }
}

function queuePage() {
  document.getElementById("replay-selected").addEventListener("click", () => dlqAction("replay", [...document.querySelectorAll(".dlq-pick:checked")].map(x => x.value)));
  document.getElementById("discard-selected").addEventListener("click", () => dlqAction("discard", [...document.querySelectorAll(".dlq-pick:checked")].map(x => x.value)));
  document.getElementById("replay-all").addEventListener("click", replayAll);
  document.getElementById("dlq-all").addEventListener("change", ev => document.querySelectorAll(".dlq-pick").forEach(x => { x.checked = ev.target.checked; }));
  document.getElementById("dlq-prev").addEventListener("click", () => { dlqOffset = Math.max(0, dlqOffset - DLQ_PAGE); queue().catch(fail); });
  document.getElementById("dlq-next").addEventListener("click", () => { dlqOffset += DLQ_PAGE; queue().catch(fail); });
  document.getElementById("dlq-everything").addEventListener("click", () => { dlqGroup = null; dlqOffset = 0; queue().catch(fail); });
  every(3000, () => queue().catch(fail));
}

/* ---------- label printers ---------- */
function labelValues(v) { return Object.entries(v || {}).filter(([k]) => !["event_id", "gateway"].includes(k)).map(([k, x]) => `${k}=${x}`).join(" "); }
async function labelAction(sink, id, action) {
  try {
    await api("POST", `/labels/${encodeURIComponent(sink)}/${encodeURIComponent(id)}/${action}`);
    flash(action === "reprint" ? `Label ${id} queued for reprint` : `Label ${id} confirmed on paper`);
    await labels();
  } catch (e) { fail(e); }
}
async function labels() {
  const { printers } = await api("GET", "/labels");
  fill(document.querySelector("#printers-table tbody"), printers.map(p => el("tr", {}, el("td", {}, p.sink), el("td", {}, p.printer),
    el("td", {}, p.printed), el("td", { class: p.held.length ? "state-warn" : "" }, p.held.length), el("td", {}, p.reprints.length),
    el("td", {}, (p.templates || []).map(t => el("a", { href: `/api/v1/labels/${encodeURIComponent(p.sink)}/templates/${encodeURIComponent(t)}/preview`, target: "_blank", class: "preview" }, t, " "))))), "No label printers configured.");
  const row = (p, e, held) => el("tr", { class: held ? "held-label" : "printed-label", "data-label": e.label.id }, el("td", {}, p.sink), el("td", {}, e.label.id),
    el("td", {}, e.label.seq), el("td", {}, e.label.template), el("td", {}, labelValues(e.label.values)), el("td", {}, when(e.printed_at)),
    held ? "" : el("td", {}, e.reprint_by ? `reprint by ${e.reprint_by}` : (e.receipt || "")),
    el("td", {}, el("button", { type: "button", class: "link changes", onclick: () => labelAction(p.sink, e.label.id, "reprint") }, "reprint"),
      held ? " " : "", held ? el("button", { type: "button", class: "link changes", onclick: () => labelAction(p.sink, e.label.id, "confirm") }, "on paper") : ""));
  fill(document.querySelector("#held-labels tbody"), printers.flatMap(p => p.held.map(e => row(p, e, true))), "Nothing held.");
  fill(document.querySelector("#printed-labels tbody"), printers.flatMap(p => p.history.slice(0, 50).map(e => row(p, e, false))), "Nothing printed yet.");
}

/* ---------- history, logs, users ---------- */
function historyPage() {
  document.getElementById("import-form").addEventListener("submit", async ev => {
    ev.preventDefault();
    const file = document.getElementById("import-file").files[0];
    if (!file) return;
    try {
      const text = await file.text();
      if (!confirm(`Replace the whole configuration with ${file.name}?`)) return;
      const r = await api("PUT", "/config", { text });
      flash(`Imported ${file.name}: ` + applied(r)); ev.target.reset(); await history();
    } catch (e) { fail(e); }
  });
  history().catch(fail);
}

async function download(resp, fallback) {
  const blob = await resp.blob();
  const name = (/filename="([^"]+)"/.exec(resp.headers.get("Content-Disposition") || "") || [])[1] || fallback;
  const a = el("a", { href: URL.createObjectURL(blob), download: name });
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  return name;
}

async function history() {
  const h = await api("GET", "/config/history");
  const ids = new Set(h.history.map(e => e.id));
  fill(document.querySelector("#history-table tbody"), h.history.map(e => el("tr", { "data-entry": e.id }, el("td", {}, "#" + e.id), el("td", {}, when(e.when)),
    el("td", {}, e.who), el("td", {}, e.what), el("td", {},
      el("button", { type: "button", class: "link", onclick: () => showDiff(e).catch(fail) }, "diff"), " ",
      /* undoing change N makes the file what it was before N, that is after N-1 */
      ids.has(e.id - 1) ? el("button", { type: "button", class: "link changes", onclick: async () => {
        if (!confirm(`Undo #${e.id} (${e.what}): make the configuration what it was before it?`)) return;
        try { flash(applied(await api("POST", `/config/history/${e.id - 1}/rollback`))); await history(); } catch (err) { fail(err); } } }, "undo") : ""))),
    "No changes yet: the first change made here records the file as found, then the change.");
}

async function showDiff(e) {
  const d = await api("GET", "/config/history/" + e.id);
  document.getElementById("diff-title").textContent = `What #${e.id} changed (${e.what}, by ${e.who}, ${when(e.when)})`;
  const lines = (d.diff || "(no difference)").split("\n");
  document.getElementById("diff").replaceChildren(...lines.map(line => el("span", {
    class: line.startsWith("+") && !line.startsWith("+++") ? "add" : line.startsWith("-") && !line.startsWith("---") ? "del" : line.startsWith("@@") ? "at" : undefined }, line + "\n")));
  document.getElementById("diff-box").hidden = false;
  for (const tr of document.querySelectorAll("#history-table tbody tr")) tr.classList.toggle("selected", tr.dataset.entry === String(e.id));
}

/* the newest line first; warnings and errors stand out; the same clock as every other page */
let logAfter = 0;
async function logs(reset) {
  const box = document.getElementById("log-lines");
  if (reset) { logAfter = 0; box.replaceChildren(); }
  const level = document.getElementById("log-level").value, contains = document.getElementById("log-contains").value;
  const r = await api("GET", `/logs?limit=500&after=${logAfter}&level=${encodeURIComponent(level)}&contains=${encodeURIComponent(contains)}`);
  const fresh = r.lines.map(l => el("div", { class: "log-line log-" + l.level.toLowerCase(), "data-seq": l.seq },
    el("span", { class: "log-ts" }, when(l.ts)), " ", el("span", { class: "log-level" }, l.level), " ", l.logger, " ", l.message));
  if (r.lines.length) logAfter = r.lines[r.lines.length - 1].seq;
  box.prepend(...fresh.reverse());
  while (box.childElementCount > 2000) box.lastElementChild.remove();
}

function logsPage() {
  document.getElementById("log-zone").textContent = `Newest first; times in ${ZONE} (${zoneName(new Date())}). The download has every line the console keeps, in UTC.`;
  document.getElementById("log-filter").addEventListener("submit", ev => { ev.preventDefault(); logs(true).catch(fail); });
  every(2000, () => logs(false).catch(fail));
}

async function users() {
  const r = await api("GET", "/users");
  const admin = ROLE === "admin";
  fill(document.querySelector("#users-table tbody"), r.users.map(u => {
    const self = u.name === USER;
    const role = admin && !self
      ? el("select", { "aria-label": `Role of ${u.name}`, onchange: async ev => {
          const to = ev.target.value;
          if (!confirm(`Make ${u.name} ${to === "admin" ? "an" : "a"} ${to}?`)) { ev.target.value = u.role; return; }
          try { await api("PUT", "/users/" + encodeURIComponent(u.name), { role: to }); flash(`${u.name} is now ${to === "admin" ? "an" : "a"} ${to}`); await users(); }
          catch (e) { ev.target.value = u.role; fail(e); } } },
          ...["technician", "viewer", "admin"].map(x => el("option", { value: x, selected: x === u.role }, x)))
      : u.role;
    const actions = self ? el("span", { class: "hint" }, "you") : el("span", { class: "admin-only" },
      el("button", { type: "button", class: "link", onclick: async () => {
        const pw = prompt(`New password for ${u.name} (at least 10 characters; they must log in again):`);
        if (pw === null) return;
        try { await api("PUT", "/users/" + encodeURIComponent(u.name), { password: pw }); flash(`Password of ${u.name} reset; their sessions ended`); }
        catch (e) { fail(e); } } }, "reset password"), " ",
      el("button", { type: "button", class: "link", onclick: async () => {
        if (!confirm(`Remove ${u.name}?`)) return;
        try { await api("DELETE", "/users/" + encodeURIComponent(u.name)); flash("Removed " + u.name); await users(); } catch (e) { fail(e); } } }, "remove"));
    return el("tr", {}, el("td", {}, u.name), el("td", {}, role), el("td", {}, when(u.created)), el("td", {}, u.created_by), el("td", {}, actions));
  }), "No users.");
}

function usersPage() {
  document.getElementById("user-form").addEventListener("submit", async ev => {
    ev.preventDefault();
    try { await api("POST", "/users", { name: document.getElementById("u-name").value, role: document.getElementById("u-role").value, password: document.getElementById("u-password").value });
      flash("User added"); ev.target.reset(); await users(); } catch (e) { fail(e); }
  });
  document.getElementById("password-form").addEventListener("submit", async ev => {
    ev.preventDefault();
    try { await api("POST", "/me/password", { current: document.getElementById("p-current").value, password: document.getElementById("p-new").value }); flash("Password changed"); ev.target.reset(); } catch (e) { fail(e); }
  });
  users().catch(fail);
}

/* ---------- system: NTP and SSH ---------- */
async function systemSettings() {
  const r = await api("GET", "/system");
  const t = r.time, s = r.ssh;
  const c = r.clock, skew = Date.now() / 1000 - c.now;
  document.getElementById("clock-now").textContent = `${when(c.now)} (its own zone: ${c.zone}, UTC${c.utc_offset_s < 0 ? "−" : "+"}${pad(Math.floor(Math.abs(c.utc_offset_s) / 3600))}:${pad(Math.floor(Math.abs(c.utc_offset_s) % 3600 / 60))})`;
  document.getElementById("clock-skew").textContent = Math.abs(skew) < 2 ? "(this browser agrees)" : `(this browser's clock is ${Math.abs(skew).toFixed(0)} s ${skew > 0 ? "ahead" : "behind"})`;
  const by = c.daemons.length ? ` by ${c.daemons.join(", ")}` : "";
  document.getElementById("clock-state").textContent = c.synchronized === null ? `unknown (${c.reason || "not readable here"})`
    : c.synchronized ? `synchronized${by}` + (c.esterror_us !== null ? `, estimated error ${(c.esterror_us / 1000).toFixed(1)} ms` : "")
    : (c.daemons.length ? `not (yet) synchronized: ${c.daemons.join(", ")} is running` : "not synchronized: no time daemon is running");
  const d = s.device;
  document.getElementById("ssh-device").textContent = d.server_running ? `an SSH server is running (${d.daemons.join(", ") || "port 22 listening"})` : "no SSH server is running";
  const a = r.about;
  STARTED = a.started;
  document.getElementById("about").replaceChildren(...[["Version", a.version], ["Gateway", a.gateway], ["Host", `${a.hostname} (${a.machine}, ${a.os})`],
    ["Python", `${a.python} (${a.implementation})`], ["Running since", `${when(a.started)} (${duration(a.uptime_s)})`]].flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  document.getElementById("restart-form").hidden = !r.can_restart;
  document.getElementById("ntp-servers").value = t.ntp.join(" ");
  if (t.fallback && t.fallback.length) document.getElementById("ntp-fallback").textContent = t.fallback.join(" ");
  document.getElementById("ntp-form").hidden = !t.managed;
  document.getElementById("ntp-unmanaged").hidden = t.managed;
  document.getElementById("ssh-state").textContent = !s.managed ? "not managed by this console" : s.enabled ? `on (${s.keys.length} key${s.keys.length === 1 ? "" : "s"})` : "off (no key set)";
  fill(document.querySelector("#ssh-table tbody"), s.keys.map(k => el("tr", {}, el("td", {}, k.type), el("td", {}, k.comment), el("td", {}, el("code", {}, k.fingerprint)))), "No keys: SSH is off.");
  document.getElementById("ssh-keys").value = s.keys.map(k => k.line).join("\n");
  document.getElementById("ssh-form").hidden = !s.managed;
  document.getElementById("ssh-unmanaged").hidden = s.managed;
}

function systemPage() {
  document.getElementById("ntp-form").addEventListener("submit", async ev => {
    ev.preventDefault();
    const ntp = document.getElementById("ntp-servers").value.split(/[\s,]+/).filter(Boolean);
    try { await api("PUT", "/system/time", { ntp }); await systemSettings(); flash("NTP servers saved"); } catch (e) { fail(e); }
  });
  document.getElementById("ssh-form").addEventListener("submit", async ev => {
    ev.preventDefault();
    const keys = document.getElementById("ssh-keys").value;
    if (!keys.trim() && !confirm("Remove every key and turn SSH off?")) return;
    /* the page is redrawn first, then the message: whoever reads it sees (and edits) what was saved */
    try { const r = await api("PUT", "/system/ssh", { authorized_keys: keys }); await systemSettings();
      flash(r.enabled ? `SSH is on for ${r.keys.length} key(s)` : "SSH is off"); } catch (e) { fail(e); }
  });
  document.getElementById("backup-form").addEventListener("submit", async ev => {
    ev.preventDefault();
    const passphrase = document.getElementById("backup-passphrase").value;
    const resp = await fetch("/api/v1/backup", { method: "POST", credentials: "same-origin",
      headers: { "X-CSRF-Token": CSRF, "Content-Type": "application/json" }, body: JSON.stringify(passphrase ? { passphrase } : {}) });
    if (!resp.ok) { const d = await resp.json().catch(() => ({})); const e = new Error(d.error || resp.statusText); e.problems = d.problems || []; fail(e); return; }
    const name = await download(resp, "linebridge-backup.tar.gz");
    flash(`Backup downloaded: ${name}` + (passphrase ? " (secrets and device key sealed with the passphrase)" : " (secrets masked)"));
    ev.target.reset();
  });
  document.getElementById("restore-form").addEventListener("submit", async ev => {
    ev.preventDefault();
    const file = document.getElementById("restore-file").files[0];
    if (!file || !confirm(`Restore ${file.name}? The configuration and the users are replaced.`)) return;
    const headers = { "X-CSRF-Token": CSRF, "Content-Type": "application/octet-stream", "Accept": "application/json" };
    const pass = document.getElementById("restore-passphrase").value;
    if (pass) headers["X-Backup-Passphrase"] = pass;
    const key = document.getElementById("restore-key").checked ? "?device_key=1" : "";
    const resp = await fetch("/api/v1/restore" + key, { method: "POST", credentials: "same-origin", headers, body: file });
    const d = await resp.json().catch(() => ({}));
    if (!resp.ok) { const e = new Error(d.error || resp.statusText); e.problems = d.problems || []; fail(e); return; }
    const r = d.restored;
    flash(`Restored the backup of ${r.from.gateway} made ${when(r.from.created)}: ` + (r.config ? `configuration as change #${r.config.id}` : "configuration unchanged") +
      `, ${r.users.length} user(s), ${r.history_entries} history entries` + (r.device_key ? "; the device key applies at the next restart" : "") +
      (d.notes.length ? ". " + d.notes.join(". ") : ""));
    ev.target.reset();
  });
  document.getElementById("restart-form").addEventListener("submit", async ev => {
    ev.preventDefault();
    if (!confirm("Restart the gateway now? Devices and connections stop for a few seconds.")) return;
    try { await api("POST", "/system/restart"); flash("Restarting: the page reconnects when the gateway is back");
      await backAgain(); } catch (e) { fail(e); }
  });
  systemSettings().catch(fail);
}

let STARTED = null;
async function backAgain() {
  /* the old process answers for half a second more; sessions live in memory, so the new one asks
     for a log-in again (api() goes to the login page on its 401) */
  const before = STARTED;
  for (let i = 0; i < 120; i++) {
    await new Promise(res => setTimeout(res, 1000));
    let a = null;
    try { a = await api("GET", "/about"); } catch (e) { if (e.message === "log in") return; continue; }
    if (a.started !== before) { flash("The gateway restarted"); await systemSettings(); return; }
  }
  fail(new Error("the gateway did not come back within 2 minutes: look at its logs"));
}

/* ---------- the status light in every page's header ---------- */
const LIGHT_WORD = { ok: "All working", warn: "Attention", bad: "Not working" };
function showLight(l) {
  const a = document.getElementById("status-light");
  if (!a || !l) return;
  a.className = "light light-" + l.level;
  const since = l.since ? ` since ${when(l.since)}` : "";
  a.querySelector(".light-text").textContent = l.level === "ok" ? LIGHT_WORD.ok : `${LIGHT_WORD[l.level]}: ${l.reason}`;
  a.title = `${LIGHT_WORD[l.level]}: ${l.reason}${since}` + (l.problems || []).slice(1).map(p => `\n${p.what}: ${p.reason}`).join("");
  a.setAttribute("aria-label", a.title);
  a.href = "/" + (l.page && l.level !== "ok" ? l.page : "");
}
function pct(v) { return v === null || v === undefined ? "–" : (100 * v).toFixed(1) + " %"; }
function oeeRow(r, label) {
  return el("tr", { "data-period": r.period }, el("td", {}, label), el("td", { class: "oee-figure" }, pct(r.oee)),
    el("td", {}, pct(r.availability)), el("td", {}, pct(r.performance)), el("td", {}, pct(r.quality)),
    el("td", {}, String(r.good)), el("td", {}, String(r.scrap)), el("td", {}, duration(r.downtime_s)));
}
function drawOee(records, what) {
  /* one bar per period (its OEE), with availability, performance and quality as lines over it */
  const NS = "http://www.w3.org/2000/svg", W = 640, H = 200, L = 40, R = 8, T = 8, B = 24;
  const svg = document.createElementNS(NS, "svg");
  const node = (tag, attrs, text) => { const n = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); if (text !== undefined) n.textContent = text; return n; };
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`); svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `OEE of the last ${records.length} ${what}`);
  svg.append(node("rect", { x: L, y: T, width: W - L - R, height: H - T - B, class: "trend-frame" }));
  const n = Math.max(records.length, 1), bw = (W - L - R) / n, y = v => T + (H - T - B) * (1 - Math.min(v, 1.2) / 1.2);
  records.forEach((r, i) => {
    if (r.oee === null) return;
    const bar = node("rect", { x: L + i * bw + bw * 0.15, y: y(r.oee), width: bw * 0.7, height: y(0) - y(r.oee), class: "oee-bar" });
    bar.append(node("title", {}, `${r.day} ${r.shift}: OEE ${pct(r.oee)}, availability ${pct(r.availability)}, performance ${pct(r.performance)}, quality ${pct(r.quality)}`));
    svg.append(bar);
  });
  for (const key of ["availability", "performance", "quality"]) {
    const pts = records.map((r, i) => r[key] === null ? null : `${(L + (i + 0.5) * bw).toFixed(1)},${y(r[key]).toFixed(1)}`).filter(p => p);
    if (pts.length) svg.append(node("polyline", { points: pts.join(" "), class: `oee-line oee-${key}` }));
  }
  svg.append(node("text", { x: L - 4, y: y(1) + 4, "text-anchor": "end", class: "trend-axis" }, "100 %"));
  svg.append(node("text", { x: L - 4, y: H - B, "text-anchor": "end", class: "trend-axis" }, "0"));
  if (records.length) {
    svg.append(node("text", { x: L, y: H - 6, class: "trend-axis" }, `${records[0].day} ${records[0].shift}`));
    svg.append(node("text", { x: W - R, y: H - 6, "text-anchor": "end", class: "trend-axis" }, `${records[records.length - 1].day} ${records[records.length - 1].shift}`));
  }
  return el("div", { class: "trend oee-chart", "data-chart": what }, svg);
}
async function oeeView() {
  const o = await api("GET", "/oee?days=14");
  const box = document.getElementById("oee-machines");
  const names = Object.keys(o.machines);
  if (!o.timezone) { box.replaceChildren(el("p", { class: "hint" }, "No [shifts] are configured: OEE is counted per shift, so there is none yet.")); return; }
  box.replaceChildren(...names.map(m => {
    const x = o.machines[m], shifts = x.shifts.slice(-21), rows = [];
    if (x.running) rows.push(oeeRow(x.running, `${x.running.shift} (running${x.running.down ? ", down now" : ""})`));
    for (const r of shifts.slice().reverse().slice(0, 6)) rows.push(oeeRow(r, `${r.day} ${r.shift}`));
    for (const r of x.days.slice().reverse().slice(0, 7)) rows.push(oeeRow(r, `${r.day} (day)`));
    const series = x.running ? shifts.concat([x.running]) : shifts;
    return el("section", { class: "oee-machine", "data-machine": m }, el("h2", {}, m),
      el("table", { class: "grid" }, el("thead", {}, el("tr", {}, ...["Period", "OEE", "Availability", "Performance", "Quality", "Good", "Scrap", "Downtime"].map(h => el("th", {}, h)))),
        el("tbody", {}, ...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 8, class: "hint" }, "No shift seen yet."))]))),
      series.length ? drawOee(series, "shifts") : "",
      x.days.length ? drawOee(x.days, "days") : "",
      el("p", {}, el("a", { href: `/api/v1/oee/export.csv?machine=${encodeURIComponent(m)}`, download: "" }, `${m} as CSV`),
        el("span", { class: "hint" }, ` Bars: OEE; lines: availability (green), performance (blue), quality (orange). Times in ${o.timezone}.`)));
  }));
}
async function statusLight() { showLight((await api("GET", "/status")).light); }

const PAGES = {
  overview: () => every(2000, () => overview().catch(fail)),
  oee: () => every(10000, () => oeeView().catch(fail)),
  devices: devicesPage,
  mappings: mappingsPage,
  connections: () => connections().catch(fail),
  queue: queuePage,
  labels: () => every(3000, () => labels().catch(fail)),
  history: historyPage,
  logs: logsPage,
  users: usersPage,
  identity: () => {},
  system: systemPage,
};
/* ---------- the layout every page shares ---------- */
/* a wide table scrolls sideways inside its own box, never the page; the box is a labelled region
   that takes the keyboard's focus, so it can be scrolled without a mouse */
function wrapTables(root = document) {
  for (const t of root.querySelectorAll("table.grid")) {
    if (t.parentElement.classList.contains("table-wrap")) continue;
    const cap = t.querySelector("caption");
    let label = t.getAttribute("aria-label") || (cap && cap.textContent.trim());
    if (!label) {
      const heads = [...document.querySelectorAll("main h1, main h2, main h3, dialog h2")].filter(h => h.compareDocumentPosition(t) & Node.DOCUMENT_POSITION_FOLLOWING);
      label = heads.length ? heads[heads.length - 1].textContent.trim() : document.title;
    }
    const box = el("div", { class: "table-wrap", role: "region", tabindex: "0", "aria-label": label + " (table)" });
    t.before(box); box.append(t);
  }
}
/* on a phone the navigation folds behind "Menu" */
function navToggle() {
  const b = document.getElementById("nav-toggle"), nav = document.getElementById("site-nav");
  if (!b || !nav) return;
  b.addEventListener("click", () => { const open = b.getAttribute("aria-expanded") !== "true"; b.setAttribute("aria-expanded", String(open)); nav.classList.toggle("open", open); });
}
wrapTables();
new MutationObserver(muts => { if (muts.some(m => [...m.addedNodes].some(n => n.nodeType === 1 && (n.matches("table.grid") || n.querySelector("table.grid"))))) wrapTables(); })
  .observe(document.body, { childList: true, subtree: true });
navToggle();
(PAGES[document.body.dataset.page] || (() => {}))();
if (document.getElementById("status-light") && document.body.dataset.page !== "overview") every(5000, () => statusLight().catch(() => {}));
