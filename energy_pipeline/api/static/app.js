// The chart page: consumption/cost bars from POST /api/statistics/compare, insights (top consumers, breakdown,
// heatmap, baseload) from /api/insights/*, a live line fed by the server-sent events of /api/readings/stream,
// the pipeline status, and a settings view (Home Assistant connection, entities, time zone, tariff, syncs).
// Plain JS and hand-made SVG: nothing is loaded from anywhere but this server, so the page works offline.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const COLORS = ["#2271b1", "#d63638", "#00a32a", "#dba617", "#8c5fc7", "#e26f56", "#3582c4", "#50575e",
  "#0a8d94", "#b32d2e"];
const LIVE_WINDOW_MS = 60 * 60 * 1000;
const MAX_LIVE_POINTS = 5000;
const STATUS_EVERY_MS = 10000;
const MAX_SELECTED = 10;

const $ = (id) => document.getElementById(id);
const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const state = { entities: [], timeZone: "UTC", live: new Map(), source: null, units: new Map(), settings: null,
  settingsLoaded: false };

// ---------------------------------------------------------------------------------------------------
// helpers

async function api(path, options = {}) {
  const response = await fetch(path, { headers: { "Accept": "application/json", ...(options.headers || {}) },
    ...options });
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
  if (!response.ok) {
    const message = body && body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${response.status}`;
    throw new Error(message);
  }
  return body;
}

// Like api(), but never throws for an HTTP error: {ok, status, body, message}.
async function call(path, options = {}) {
  try {
    return { ok: true, status: 200, body: await api(path, options), message: "" };
  } catch (err) {
    return { ok: false, status: 0, body: null, message: err.message };
  }
}

function json(method, body) {
  return { method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
}

function node(tag, text, attrs = {}) {
  const item = document.createElement(tag);
  if (text !== undefined && text !== null) item.textContent = text;
  for (const [key, value] of Object.entries(attrs)) item.setAttribute(key, String(value));
  return item;
}

function pct(value) {
  return value === null || value === undefined ? "–" : `${(value * 100).toFixed(1)} %`;
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function color(index) { return COLORS[index % COLORS.length]; }

function fmt(value, digits = 3) {
  if (value === null || value === undefined) return "–";
  return Number(value).toLocaleString(undefined, { maximumFractionDigits: digits });
}

// "Nice" axis ticks: 1, 2 or 5 times a power of ten.
function ticks(max, count = 5) {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const out = [];
  for (let v = 0; v <= max + step * 0.5; v += step) out.push(Number(v.toPrecision(12)));
  if (out[out.length - 1] < max) out.push(out[out.length - 1] + step);
  return out;
}

function isoDate(date) { return date.toISOString().slice(0, 10); }

function todayIn(timeZone) {
  try {
    return new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" })
      .format(new Date());
  } catch (_) {
    return isoDate(new Date());
  }
}

function addDays(day, days) {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return isoDate(d);
}

// Bucket starts arrive as local ISO times with offset ("2026-03-29T00:00:00+01:00"): label from the text,
// so the house's calendar is shown whatever the browser's time zone is.
function bucketLabel(start, period) {
  if (period === "hour") return `${start.slice(5, 10)} ${start.slice(11, 16)}`;
  if (period === "month") return start.slice(0, 7);
  return start.slice(5, 10);
}

// ---------------------------------------------------------------------------------------------------
// bar chart: one group per bucket, one bar per series; null values draw no bar

function barChart(container, buckets, series, key, period, unitLabel) {
  container.textContent = "";
  const width = Math.max(container.clientWidth || 800, 320);
  const height = 280;
  const margin = { top: 12, right: 12, bottom: 44, left: 64 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${key} per ${period}` });
  const values = series.flatMap((s) => s[key].filter((v) => v !== null && v !== undefined));
  const maxValue = Math.max(0, ...values);
  const minValue = Math.min(0, ...values);
  const top = ticks(maxValue);
  const yMax = top[top.length - 1] || 1;
  const yMin = minValue < 0 ? -ticks(-minValue).slice(-1)[0] : 0;
  const y = (v) => margin.top + plotH * (yMax - v) / (yMax - yMin || 1);
  for (const t of ticks(yMax).concat(yMin < 0 ? [yMin] : [])) {
    svg.append(el("line", { class: "grid", x1: margin.left, x2: width - margin.right, y1: y(t), y2: y(t) }));
    svg.append(el("text", { x: margin.left - 6, y: y(t) + 4, "text-anchor": "end" }, fmt(t, 2)));
  }
  svg.append(el("text", { x: 4, y: margin.top + 4, "text-anchor": "start" }, unitLabel || ""));
  const groupW = plotW / Math.max(buckets.length, 1);
  const barW = Math.max(1, (groupW * 0.8) / Math.max(series.length, 1));
  let bars = 0;
  buckets.forEach((bucket, i) => {
    series.forEach((s, j) => {
      const value = s[key][i];
      if (value === null || value === undefined) return;
      const x = margin.left + i * groupW + groupW * 0.1 + j * barW;
      const y0 = y(Math.max(0, value));
      const rect = el("rect", { class: "bar", x: x.toFixed(2), y: y0.toFixed(2), width: barW.toFixed(2),
        height: Math.max(0.5, Math.abs(y(value) - y(0))).toFixed(2), fill: color(s.colorIndex),
        "data-entity-id": s.entity_id, "data-bucket-start": bucket.start, "data-value": value });
      rect.append(el("title", {}, `${s.entity_id} ${bucket.start}: ${fmt(value)}`));
      svg.append(rect);
      bars += 1;
    });
  });
  svg.append(el("line", { class: "axis", x1: margin.left, x2: width - margin.right, y1: y(0), y2: y(0) }));
  const every = Math.max(1, Math.ceil(buckets.length / Math.max(2, Math.floor(plotW / 70))));
  buckets.forEach((bucket, i) => {
    if (i % every) return;
    const x = margin.left + (i + 0.5) * groupW;
    const anchor = x < margin.left + 40 ? "start" : x > width - margin.right - 40 ? "end" : "middle";
    svg.append(el("text", { x, y: height - margin.bottom + 16, "text-anchor": anchor },
      bucketLabel(bucket.start, period)));
  });
  if (!bars) {
    svg.append(el("text", { class: "empty", x: width / 2, y: height / 2, "text-anchor": "middle" },
      "no data in this range"));
  }
  container.append(svg);
  container.dataset.bars = String(bars);
}

// ---------------------------------------------------------------------------------------------------
// live line chart: the last hour of readings per entity

function drawLive() {
  const container = $("live-chart");
  container.textContent = "";
  const width = Math.max(container.clientWidth || 800, 320);
  const height = 220;
  const margin = { top: 12, right: 12, bottom: 28, left: 72 };
  const now = Date.now();
  const xMin = now - LIVE_WINDOW_MS;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "live readings" });
  const series = [...state.live.entries()];
  const points = series.flatMap(([, s]) => s.points.filter((p) => p.t >= xMin));
  let total = 0;
  if (points.length) {
    let lo = Math.min(...points.map((p) => p.v));
    let hi = Math.max(...points.map((p) => p.v));
    if (hi === lo) { hi += Math.abs(hi) * 0.01 || 1; lo -= Math.abs(lo) * 0.01 || 1; }
    const x = (t) => margin.left + (width - margin.left - margin.right) * (t - xMin) / LIVE_WINDOW_MS;
    const y = (v) => margin.top + (height - margin.top - margin.bottom) * (hi - v) / (hi - lo);
    for (const v of [lo, (lo + hi) / 2, hi]) {
      svg.append(el("line", { class: "grid", x1: margin.left, x2: width - margin.right, y1: y(v), y2: y(v) }));
      svg.append(el("text", { x: margin.left - 6, y: y(v) + 4, "text-anchor": "end" }, fmt(v, 3)));
    }
    for (const [entityId, s] of series) {
      const shown = s.points.filter((p) => p.t >= xMin);
      if (!shown.length) continue;
      const d = shown.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
      const path = el("path", { class: "line", d, stroke: color(s.colorIndex), "data-entity-id": entityId,
        "data-points": shown.length, "data-last-value": shown[shown.length - 1].v,
        "data-last-ts": shown[shown.length - 1].ts });
      svg.append(path);
      for (const p of shown.slice(-1)) {
        svg.append(el("circle", { class: "last", cx: x(p.t), cy: y(p.v), r: 3, fill: color(s.colorIndex) }));
      }
      total += shown.length;
    }
    for (let i = 0; i <= 4; i += 1) {
      const t = xMin + (LIVE_WINDOW_MS * i) / 4;
      const label = new Date(t).toLocaleTimeString([], { timeZone: state.timeZone, hour: "2-digit", minute: "2-digit",
        hourCycle: "h23" });
      const anchor = i === 0 ? "start" : i === 4 ? "end" : "middle";
      svg.append(el("text", { x: x(t), y: height - 8, "text-anchor": anchor }, label));
    }
  } else {
    svg.append(el("text", { class: "empty", x: width / 2, y: height / 2, "text-anchor": "middle" },
      "no live readings in the last hour"));
  }
  container.append(svg);
  container.dataset.points = String(total);
  const legend = $("live-legend");
  legend.textContent = "";
  for (const [entityId, s] of series) {
    const last = s.points[s.points.length - 1];
    const item = document.createElement("span");
    item.dataset.entityId = entityId;
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = color(s.colorIndex);
    item.append(swatch, `${entityId}: ${last ? `${fmt(last.v)} ${state.units.get(entityId) || ""} at ${last.ts.slice(11, 19)}` : "–"}`);
    legend.append(item);
  }
}

function addReading(reading) {
  const s = state.live.get(reading.entity_id);
  if (!s) return;
  const key = `${reading.ts}`;
  if (s.seen.has(key)) return;
  s.seen.add(key);
  s.points.push({ t: Date.parse(reading.ts), v: reading.value, ts: reading.ts });
  s.points.sort((a, b) => a.t - b.t);
  if (s.points.length > MAX_LIVE_POINTS) s.points.splice(0, s.points.length - MAX_LIVE_POINTS);
}

async function startLive(entityIds) {
  if (state.source) { state.source.close(); state.source = null; }
  state.live = new Map(entityIds.map((id, i) => [id, { points: [], seen: new Set(), colorIndex: i }]));
  const since = new Date(Date.now() - LIVE_WINDOW_MS).toISOString();
  await Promise.all(entityIds.map(async (id) => {
    try {
      const body = await api(`/api/readings/${encodeURIComponent(id)}?since=${encodeURIComponent(since)}&limit=10000`);
      body.readings.forEach(addReading);
    } catch (err) { showError(`live readings of ${id}: ${err.message}`); }
  }));
  drawLive();
  if (!entityIds.length) return;
  let latest = since;
  for (const s of state.live.values()) {
    const last = s.points[s.points.length - 1];
    if (last && Date.parse(last.ts) > Date.parse(latest)) latest = last.ts;
  }
  const url = `/api/readings/stream?entity_ids=${encodeURIComponent(entityIds.join(","))}` +
    `&since=${encodeURIComponent(latest)}`;
  const source = new EventSource(url);
  state.source = source;
  const liveState = $("live-state");
  source.onopen = () => { liveState.dataset.state = "open"; liveState.textContent = "(live)"; };
  source.onerror = () => { liveState.dataset.state = "reconnecting"; liveState.textContent = "(reconnecting…)"; };
  source.addEventListener("reading", (event) => {
    addReading(JSON.parse(event.data));
    drawLive();
  });
  source.addEventListener("error", (event) => {
    if (event.data) showError(`live stream: ${JSON.parse(event.data).message}`);
  });
}

// ---------------------------------------------------------------------------------------------------
// consumption and cost

function selectedIds() {
  return [...document.querySelectorAll("#entity-list input[type=checkbox]:checked")].map((i) => i.dataset.entityId);
}

function rangeParams() {
  const start = $("start").value;
  const endInclusive = $("end").value;
  return { start: start || null, end: endInclusive ? addDays(endInclusive, 1) : null, period: $("period").value };
}

async function loadCharts() {
  const ids = selectedIds();
  const { start, end, period } = rangeParams();
  const query = new URLSearchParams({ entity_ids: ids.join(","), period });
  if (start) query.set("start", start);
  if (end) query.set("end", end);
  $("csv-link").href = `/api/statistics/export.csv?${query}`;
  if (!ids.length) {
    barChart($("consumption-chart"), [], [], "consumption", period, "");
    $("cost-section").hidden = true;
    return;
  }
  const body = await api("/api/statistics/compare", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ entity_ids: ids, start, end, period }),
  });
  const series = body.series.map((s, i) => ({ ...s, colorIndex: i }));
  const units = [...new Set(series.map((s) => s.unit).filter(Boolean))];
  barChart($("consumption-chart"), body.buckets, series, "consumption", period, units.join(", "));
  const legend = $("legend");
  legend.textContent = "";
  series.forEach((s) => {
    const item = document.createElement("span");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = color(s.colorIndex);
    item.append(swatch, s.name || s.entity_id);
    legend.append(item);
  });
  const tbody = $("totals").querySelector("tbody");
  tbody.textContent = "";
  for (const s of series) {
    const row = document.createElement("tr");
    row.dataset.entityId = s.entity_id;
    for (const [text, cls] of [[s.name || s.entity_id, ""], [fmt(s.total.consumption), "num"], [s.unit || "", ""],
      [s.total.cost === null ? "–" : `${fmt(s.total.cost, 2)} ${body.currency || ""}`, "num"]]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      if (cls) cell.className = cls;
      row.append(cell);
    }
    tbody.append(row);
  }
  const hasCost = Boolean(body.currency) && series.some((s) => s.cost.some((v) => v !== null));
  $("cost-section").hidden = !hasCost;
  if (hasCost) {
    $("currency").textContent = `(${body.currency})`;
    $("cost-note").textContent = period === "hour" ?
      "Hourly costs hold energy only: a daily charge is counted in day, week and month buckets (whole days)." :
      "Energy at each hour's price plus the daily charge of every whole day in the bucket.";
    barChart($("cost-chart"), body.buckets, series, "cost", period, body.currency);
  }
}

async function show() {
  showError("");
  const ids = selectedIds();
  if (ids.length > MAX_SELECTED) { showError(`select at most ${MAX_SELECTED} entities`); return; }
  try {
    await loadCharts();
  } catch (err) {
    showError(err.message);
  }
  await startLive(ids);
}

// ---------------------------------------------------------------------------------------------------
// status

async function refreshStatus() {
  try {
    const status = await api("/api/status");
    const stream = status.stream || {};
    const streamPill = $("stream-status");
    streamPill.dataset.status = stream.status || "unknown";
    streamPill.textContent = `stream: ${stream.status || "not started"}`;
    const ha = status.home_assistant || {};
    const haPill = $("ha-status");
    haPill.dataset.reachable = ha.reachable === true ? "true" : ha.reachable === false ? "false" : "unknown";
    haPill.textContent = ha.reachable ? `Home Assistant ${ha.ha_version || ""}` :
      `Home Assistant: ${ha.configured === false ? "not configured" : "unreachable"}`;
    haPill.title = ha.error || "";
    const storesOk = status.stores.every((s) => s.ok);
    const storePill = $("store-status");
    storePill.dataset.ok = String(storesOk);
    storePill.textContent = `stores: ${status.stores.map((s) => `${s.name} ${s.backend} ${s.ok ? "ok" : "down"}`).join(", ")}`;
    const checks = status.checks || [];
    const failed = checks.filter((c) => c.passed === false);
    const checksPill = $("checks-summary");
    checksPill.dataset.passed = checks.length ? String(!failed.length) : "unknown";
    checksPill.textContent = checks.length ? `checks: ${checks.length - failed.length}/${checks.length} passed` :
      "checks: none yet";
    const list = $("check-status");
    list.textContent = "";
    for (const check of checks) {
      const item = document.createElement("li");
      item.dataset.check = check.name;
      item.dataset.passed = String(check.passed);
      item.textContent = `${check.name}: ${check.description || (check.passed ? "passed" : "failed")}` +
        (check.checked_at ? ` (at ${check.checked_at.slice(0, 16).replace("T", " ")})` : "");
      list.append(item);
    }
    const details = $("stream-details");
    details.textContent = "";
    for (const key of ["status", "connected_since", "last_event_at", "last_heartbeat_at", "events_total",
      "events_written", "reconnects", "last_error"]) {
      if (stream[key] === undefined || stream[key] === null) continue;
      const dt = document.createElement("dt");
      dt.textContent = key.replaceAll("_", " ");
      const dd = document.createElement("dd");
      dd.textContent = String(stream[key]);
      details.append(dt, dd);
    }
  } catch (err) {
    $("store-status").dataset.ok = "false";
    $("store-status").textContent = `status: ${err.message}`;
  }
}

// ---------------------------------------------------------------------------------------------------
// entity choice of the charts: untracked entities are shown unchecked (they leave the charts when untracked)

function renderEntityList(initial) {
  const list = $("entity-list");
  const checked = new Set(selectedIds());
  list.querySelectorAll("label").forEach((label) => label.remove());
  $("entity-empty").hidden = state.entities.length > 0;
  const tracked = state.entities.filter((e) => e.tracked);
  const preselected = new Set((tracked.length ? tracked : state.entities).slice(0, 3).map((e) => e.entity_id));
  for (const entity of state.entities) {
    state.units.set(entity.entity_id, entity.unit || "");
    const label = document.createElement("label");
    label.className = entity.tracked ? "" : "untracked";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.dataset.entityId = entity.entity_id;
    box.checked = initial ? preselected.has(entity.entity_id) : checked.has(entity.entity_id) && entity.tracked;
    label.append(box, ` ${entity.name || entity.entity_id}`);
    label.title = `${entity.entity_id}${entity.role ? ` (${entity.role})` : ""}${entity.tracked ? "" : " – not tracked"}`;
    list.append(label);
  }
}

// ---------------------------------------------------------------------------------------------------
// insights

function insightQuery() {
  const [period, offset] = $("insights-period").value.split(":");
  const query = new URLSearchParams({ period });
  if (offset) query.set("offset", offset);
  return query;
}

function renderTopConsumers(result) {
  const table = $("top-consumers");
  const tbody = table.querySelector("tbody");
  tbody.textContent = "";
  const note = $("top-consumers-note");
  if (!result.ok) { table.dataset.rows = "0"; note.textContent = result.message; return; }
  const body = result.body;
  for (const c of body.consumers) {
    const row = node("tr", undefined, { "data-entity-id": c.entity_id, "data-share": c.share ?? "",
      "data-consumption": c.consumption });
    row.append(node("td", String(c.rank)), node("td", c.name || c.entity_id), node("td", fmt(c.consumption)),
      node("td", pct(c.share)));
    row.querySelectorAll("td").forEach((cell, i) => { if (i !== 1) cell.className = "num"; });
    tbody.append(row);
  }
  table.dataset.rows = String(body.consumers.length);
  note.textContent = !body.consumers.length ? "No tracked device has data in this range." :
    body.total_basis === "house" ? `Share of the house's consumption (${fmt(body.total)} kWh).` :
    `Share of the measured devices' sum (${fmt(body.total)} kWh): no grid import meter is tracked.`;
}

function renderBreakdown(result) {
  const container = $("breakdown");
  const list = $("breakdown-list");
  const warning = $("breakdown-warning");
  container.textContent = "";
  list.textContent = "";
  warning.hidden = true;
  container.dataset.restNegative = "false";
  container.dataset.parts = "0";
  if (!result.ok) { container.append(node("p", result.message, { class: "muted empty-note" })); return; }
  const body = result.body;
  const parts = body.devices.filter((d) => d.consumption > 0).map((d, i) => ({ id: d.entity_id,
    label: d.name || d.entity_id, value: d.consumption, share: d.share, colorIndex: i }));
  if (body.rest !== null) {
    parts.push({ id: "rest", label: "unmeasured rest", value: body.rest, share: body.rest_share, colorIndex: -1 });
  }
  const width = Math.max(container.clientWidth || 400, 240);
  const height = 36;
  const scale = Math.max(body.house || 0, body.devices_total || 0, ...parts.map((p) => p.value)) || 1;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "breakdown" });
  let x = 0;
  for (const part of parts) {
    const w = part.value > 0 ? (width * part.value) / scale : 0;
    const rect = el("rect", { class: "part", x: x.toFixed(2), y: 4, width: w.toFixed(2), height: height - 8,
      fill: part.colorIndex < 0 ? "#c3c4c7" : color(part.colorIndex), "data-part": part.id, "data-value": part.value });
    rect.append(el("title", {}, `${part.label}: ${fmt(part.value)} kWh`));
    svg.append(rect);
    x += w;
  }
  container.append(svg);
  container.dataset.parts = String(parts.length);
  container.dataset.restNegative = String(body.rest_negative);
  container.dataset.rest = body.rest ?? "";
  for (const part of parts) {
    const item = node("li", `${part.label}: ${fmt(part.value)} kWh (${pct(part.share)})`, { "data-part": part.id,
      "data-value": part.value });
    const swatch = node("span", undefined, { class: "swatch" });
    swatch.style.background = part.colorIndex < 0 ? "#c3c4c7" : color(part.colorIndex);
    item.prepend(swatch);
    list.append(item);
  }
  list.prepend(node("li", `house: ${fmt(body.house)} kWh over ${body.hours_used} hours`, { "data-part": "house",
    "data-value": body.house ?? "" }));
  container.dataset.negativeHours = String(body.negative_rest_hour_count);
  if (body.rest_negative || body.negative_rest_hour_count) {
    const first = body.negative_rest_hours[0];
    warning.textContent = (body.rest_negative ? `The unmeasured rest is negative (${fmt(body.rest)} kWh): ` :
      "The unmeasured rest is negative in some hours: ") +
      `the meters disagree in ${body.negative_rest_hour_count} hour(s)` +
      (first ? `, e.g. ${first.start.slice(0, 16).replace("T", " ")} (house ${fmt(first.house)} kWh, ` +
        `devices ${fmt(first.devices)} kWh, rest ${fmt(first.rest)} kWh)` : "") +
      ". Is a solar or battery meter missing or untracked?";
    warning.hidden = false;
  }
}

function renderHeatmap(result) {
  const container = $("heatmap");
  container.textContent = "";
  container.dataset.cells = "0";
  if (!result.ok) { container.append(node("p", result.message, { class: "muted empty-note" })); return; }
  const body = result.body;
  const width = Math.max(container.clientWidth || 800, 480);
  const left = 40;
  const top = 18;
  const cellW = (width - left - 8) / 24;
  const cellH = 22;
  const height = top + 7 * cellH + 6;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "heatmap" });
  const max = body.max_average || 0;
  for (let hour = 0; hour < 24; hour += 3) {
    svg.append(el("text", { x: left + hour * cellW + 2, y: 12 }, `${String(hour).padStart(2, "0")}:00`));
  }
  WEEKDAYS.forEach((day, i) => svg.append(el("text", { x: 4, y: top + i * cellH + 15 }, day)));
  for (const cell of body.cells) {
    const alpha = cell.average === null || !(max > 0) ? 0 : 0.08 + 0.92 * Math.max(0, cell.average) / max;
    const rect = el("rect", { class: "cell", x: (left + cell.hour * cellW).toFixed(2),
      y: top + cell.weekday * cellH, width: (cellW - 1).toFixed(2), height: cellH - 1,
      fill: cell.average === null ? "#f6f7f7" : `rgba(34, 113, 177, ${alpha.toFixed(3)})`,
      "data-weekday": cell.weekday, "data-hour": cell.hour, "data-value": cell.average ?? "",
      "data-samples": cell.samples });
    rect.append(el("title", {}, `${WEEKDAYS[cell.weekday]} ${String(cell.hour).padStart(2, "0")}:00: ` +
      `${fmt(cell.average)} kWh (${cell.samples} day${cell.samples === 1 ? "" : "s"})`));
    svg.append(rect);
  }
  container.append(svg);
  container.dataset.cells = String(body.cells.length);
  container.dataset.basis = body.basis || "";
}

function renderBaseload(result) {
  const target = $("baseload");
  if (!result.ok) { target.textContent = result.message; target.dataset.kw = ""; return; }
  const body = result.body;
  target.dataset.kw = body.baseload_kw ?? "";
  if (body.baseload_kw === null) { target.textContent = "not enough complete nights in this range"; return; }
  target.textContent = `${fmt(body.baseload_kw, 3)} kW always on` + (body.cost_per_year === null ?
    " (save a tariff to see its cost)" : ` ≈ ${fmt(body.cost_per_year, 2)} ${body.currency} per year`) +
    ` (${body.nights_used} night${body.nights_used === 1 ? "" : "s"})`;
}

async function loadInsights() {
  const query = insightQuery();
  const [top, breakdown, heat, base] = await Promise.all([
    call(`/api/insights/top-consumers?limit=10&${query}`), call(`/api/insights/breakdown?${query}`),
    call(`/api/insights/heatmap?${query}`), call(`/api/insights/baseload?${query}`)]);
  const any = [top, breakdown, heat, base].find((r) => r.ok);
  if (any) {
    const b = any.body;
    $("insights-range").textContent = `${b.start.slice(0, 16).replace("T", " ")} – ` +
      `${b.end.slice(0, 16).replace("T", " ")} (${b.time_zone})`;
    const issues = b.issues;
    const box = $("insights-issues");
    const texts = [];
    if (issues.negative_change_count) {
      const first = issues.negative_changes[0];
      texts.push(`${issues.negative_change_count} hour(s) with a negative change were left out ` +
        `(e.g. ${first.entity_id} at ${first.start.slice(0, 16).replace("T", " ")}: ${first.change}).`);
    }
    if (issues.incomplete_house_hours) {
      texts.push(`${issues.incomplete_house_hours} hour(s) lack a meter of the house formula and are left out.`);
    }
    box.textContent = texts.join(" ");
    box.hidden = !texts.length;
  }
  renderTopConsumers(top);
  renderBreakdown(breakdown);
  renderHeatmap(heat);
  renderBaseload(base);
}

// ---------------------------------------------------------------------------------------------------
// settings view

function settingsMessage(text, kind = "ok") {
  const box = $("settings-message");
  box.textContent = text;
  box.dataset.kind = text ? kind : "";
}

async function loadSettings() {
  const s = await api("/api/settings");
  state.settings = s;
  state.timeZone = s.effective_time_zone || "UTC";
  $("ha-url").value = s.ha_url || "";
  const token = $("ha-token-state");
  token.dataset.configured = String(Boolean(s.ha_token_configured));
  token.textContent = s.ha_token_configured ?
    `token set (${s.ha_token_source === "settings" ? "saved here" : "from HA_TOKEN"})` : "no token";
  $("remove-token").disabled = s.ha_token_source !== "settings";
  $("time-zone-input").value = s.time_zone_source === "settings" ? s.time_zone : "";
  $("time-zone-input").placeholder = s.time_zone_source === "environment" ? `${s.time_zone} (ENERGY_PIPELINE_TIME_ZONE)` :
    `Home Assistant's (${s.ha_time_zone || "not discovered yet"})`;
  $("time-zone-state").textContent = `buckets in ${s.effective_time_zone}`;
  $("time-zone-state").dataset.zone = s.effective_time_zone;
  renderTariff(s.tariff);
  state.settingsLoaded = true;
}

async function saveConnection() {
  const body = { ha_url: $("ha-url").value.trim() || null };
  const token = $("ha-token").value.trim();
  if (token) body.ha_token = token;
  try {
    await api("/api/settings", json("PUT", body));
    $("ha-token").value = "";
    await loadSettings();
    settingsMessage("Home Assistant connection saved.");
  } catch (err) { settingsMessage(err.message, "error"); }
}

async function removeToken() {
  try {
    await api("/api/settings", json("PUT", { ha_token: null }));
    await loadSettings();
    settingsMessage("Saved token removed.");
  } catch (err) { settingsMessage(err.message, "error"); }
}

async function testConnection() {
  const body = {};
  const url = $("ha-url").value.trim();
  const token = $("ha-token").value.trim();
  if (url) body.ha_url = url;
  if (token) body.ha_token = token;
  const target = $("connection-result");
  target.dataset.ok = "";
  target.textContent = "testing …";
  try {
    const response = await fetch("/api/settings/test-connection", { ...json("POST", body),
      headers: { "Content-Type": "application/json", "Accept": "application/json" } });
    const result = await response.json();
    if (result.ok) {
      target.dataset.ok = "true";
      target.textContent = `Connected: Home Assistant ${result.ha_version}` +
        (result.location_name ? ` at ${result.location_name}` : "") + (result.time_zone ? ` (${result.time_zone})` : "");
    } else {
      target.dataset.ok = "false";
      target.dataset.errorCode = result.error_code || (result.error && result.error.code) || "";
      target.textContent = typeof result.error === "string" ? `${result.error_code}: ${result.error}` :
        `${result.error.code}: ${result.error.message}`;
    }
  } catch (err) {
    target.dataset.ok = "false";
    target.textContent = err.message;
  }
}

function renderEntityTable() {
  const tbody = $("entity-table").querySelector("tbody");
  tbody.textContent = "";
  for (const entity of state.entities) {
    const row = node("tr", undefined, { "data-entity-id": entity.entity_id, "data-tracked": entity.tracked });
    const box = node("input", undefined, { type: "checkbox", class: "tracked-toggle",
      "aria-label": `track ${entity.entity_id}` });
    box.checked = entity.tracked;
    box.addEventListener("change", () => setTracked(entity.entity_id, box));
    const toggle = node("td");
    toggle.append(box);
    row.append(node("td", entity.entity_id), node("td", entity.name || ""), node("td", entity.role || "–"),
      node("td", entity.unit || ""), toggle);
    tbody.append(row);
  }
  if (!state.entities.length) {
    const row = node("tr");
    row.append(node("td", "No entities yet: discover them.", { colspan: 5 }));
    tbody.append(row);
  }
}

async function setTracked(entityId, box) {
  box.disabled = true;
  try {
    const updated = await api(`/api/entities/${encodeURIComponent(entityId)}`, json("PUT", { tracked: box.checked }));
    state.entities = state.entities.map((e) => (e.entity_id === entityId ? updated : e));
    box.closest("tr").dataset.tracked = String(updated.tracked);
    settingsMessage(`${entityId} is ${updated.tracked ? "tracked" : "no longer tracked"}.`);
    renderEntityList(false);
    await refreshCharts();
  } catch (err) {
    box.checked = !box.checked;
    settingsMessage(err.message, "error");
  } finally {
    box.disabled = false;
  }
}

async function refreshCharts() {
  $("time-zone").textContent = `Buckets in ${state.timeZone} (weeks start on Monday).`;
  await show();
  await loadInsights();
}

async function saveTimeZone() {
  try {
    await api("/api/settings", json("PUT", { time_zone: $("time-zone-input").value.trim() || null }));
    await loadSettings();
    settingsMessage(`Time zone saved: buckets in ${state.timeZone}.`);
    await refreshCharts();
  } catch (err) { settingsMessage(err.message, "error"); }
}

// -- tariff editor: currency, versions (effective from, daily charge, price windows)

function windowRow(window = {}) {
  const row = node("tr", undefined, { class: "price-window" });
  const cells = [
    node("input", undefined, { class: "window-start", type: "text", size: 5, placeholder: "07:00",
      value: window.start || "" }),
    node("input", undefined, { class: "window-end", type: "text", size: 5, placeholder: "22:00",
      value: window.end || "" }),
    node("input", undefined, { class: "window-price", type: "number", step: "0.0001", min: "0",
      value: window.price_per_kwh ?? "" }),
    node("input", undefined, { class: "window-days", type: "text", size: 22, placeholder: "every day",
      value: (window.weekdays || []).join(",") }),
  ];
  for (const input of cells) { const td = node("td"); td.append(input); row.append(td); }
  const remove = node("button", "×", { type: "button", class: "remove-window", title: "remove this price" });
  remove.addEventListener("click", () => row.remove());
  const td = node("td");
  td.append(remove);
  row.append(td);
  return row;
}

function versionBlock(version = {}) {
  const block = node("div", undefined, { class: "tariff-version" });
  const head = node("div", undefined, { class: "row" });
  const from = node("input", undefined, { class: "version-from", type: "date", value: version.effective_from || "" });
  const daily = node("input", undefined, { class: "version-daily", type: "number", step: "0.01", min: "0",
    value: version.daily_charge ?? "" });
  const labelFrom = node("label", "Effective from ");
  labelFrom.append(from);
  const labelDaily = node("label", "Daily charge ");
  labelDaily.append(daily);
  const addWindow = node("button", "Add price", { type: "button", class: "add-window" });
  const remove = node("button", "Remove version", { type: "button", class: "remove-version" });
  head.append(labelFrom, labelDaily, addWindow, remove);
  const table = node("table", undefined, { class: "windows" });
  const headRow = node("tr");
  for (const text of ["start", "end", "price per kWh", "weekdays (mon,…,sun)", ""]) headRow.append(node("th", text));
  const thead = node("thead");
  thead.append(headRow);
  const tbody = node("tbody");
  for (const w of version.prices || [{}]) tbody.append(windowRow(w));
  table.append(thead, tbody);
  addWindow.addEventListener("click", () => tbody.append(windowRow()));
  remove.addEventListener("click", () => block.remove());
  block.append(head, table);
  return block;
}

function renderTariff(tariff) {
  $("tariff-currency").value = tariff ? tariff.currency : "";
  const versions = $("tariff-versions");
  versions.textContent = "";
  const list = tariff ? tariff.versions : [{ effective_from: todayIn(state.timeZone),
    prices: [{ start: "00:00", end: "00:00" }] }];
  for (const version of list) versions.append(versionBlock(version));
  $("tariff-state").textContent = tariff ? `saved: ${tariff.versions.length} version(s) in ${tariff.currency}` :
    "no tariff saved: costs are not shown";
  $("tariff-state").dataset.saved = String(Boolean(tariff));
}

function numberOrNull(input) {
  const text = input.value.trim();
  return text === "" ? null : Number(text);
}

function readTariff() {
  return {
    currency: $("tariff-currency").value.trim().toUpperCase(),
    versions: [...document.querySelectorAll("#tariff-versions .tariff-version")].map((block) => {
      const version = { effective_from: block.querySelector(".version-from").value,
        prices: [...block.querySelectorAll(".price-window")].map((row) => {
          const window = { start: row.querySelector(".window-start").value.trim(),
            end: row.querySelector(".window-end").value.trim(),
            price_per_kwh: numberOrNull(row.querySelector(".window-price")) };
          const days = row.querySelector(".window-days").value.split(",").map((d) => d.trim()).filter(Boolean);
          if (days.length) window.weekdays = days;
          return window;
        }) };
      const daily = numberOrNull(block.querySelector(".version-daily"));
      if (daily !== null) version.daily_charge = daily;
      return version;
    }),
  };
}

async function saveTariff(tariff) {
  try {
    await api("/api/settings", json("PUT", { tariff }));
    await loadSettings();
    settingsMessage(tariff ? "Tariff saved." : "Tariff removed.");
    await refreshCharts();
  } catch (err) { settingsMessage(err.message, "error"); }
}

// -- pipeline: discovery, sync and the log, through Dagster

async function discoverEntities() {
  const target = $("discover-result");
  const result = await call("/api/entities/discover", { method: "POST" });
  target.textContent = result.ok ? `Discovery run ${result.body.run_id} launched; reload the page when it has ` +
    "finished (see the log below or the Dagster UI)." : result.message;
  target.dataset.ok = String(result.ok);
  if (result.ok) await loadSyncLog();
}

async function syncLastDay() {
  const target = $("sync-result");
  const result = await call("/api/sync", { method: "POST" });
  if (result.ok) {
    const b = result.body;
    target.textContent = `Backfill ${b.backfill_id} launched: ${b.partition_count} hours ` +
      `(${b.partitions[0]} … ${b.partitions[b.partitions.length - 1]} UTC).`;
    await loadSyncLog();
  } else {
    target.textContent = result.message;
  }
  target.dataset.ok = String(result.ok);
}

async function loadSyncLog() {
  const tbody = $("sync-log").querySelector("tbody");
  const result = await call("/api/sync/log?limit=15");
  tbody.textContent = "";
  if (!result.ok) {
    const row = node("tr", undefined, { class: "sync-log-error" });
    row.append(node("td", result.message, { colspan: 7 }));
    tbody.append(row);
    return;
  }
  for (const entry of result.body.entries) {
    const row = node("tr", undefined, { "data-id": entry.id, "data-status": entry.status, "data-kind": entry.kind });
    const what = node("td");
    const link = node("a", `${entry.kind} ${entry.type}`, { href: entry.ui_url, target: "_blank", rel: "noopener" });
    what.append(link);
    const parts = entry.partition_first ? `${entry.partition_first}${entry.partition_last !== entry.partition_first ?
      ` … ${entry.partition_last}` : ""} (${entry.partition_count ?? "?"})` : "–";
    row.append(node("td", (entry.created_at || "").slice(0, 16).replace("T", " ")), what, node("td", entry.status),
      node("td", parts), node("td", entry.rows_written ?? "–"),
      node("td", entry.duration_s === null ? "–" : `${fmt(entry.duration_s, 1)} s`), node("td", entry.error || ""));
    tbody.append(row);
  }
}

// -- views

async function showView(name) {
  const settings = name === "settings";
  $("charts-view").hidden = settings;
  $("settings-view").hidden = !settings;
  $("show-charts").setAttribute("aria-pressed", String(!settings));
  $("show-settings").setAttribute("aria-pressed", String(settings));
  document.body.dataset.view = name;
  if (settings) {
    try {
      await loadSettings();
    } catch (err) { settingsMessage(err.message, "error"); }
    renderEntityTable();
    await loadSyncLog();
  }
  document.body.dataset.viewReady = name;
}

// ---------------------------------------------------------------------------------------------------
// start

async function init() {
  try {
    const settings = await api("/api/settings");
    state.timeZone = settings.effective_time_zone || "UTC";
  } catch (err) { showError(err.message); }
  $("time-zone").textContent = `Buckets in ${state.timeZone} (weeks start on Monday).`;
  const today = todayIn(state.timeZone);
  $("end").value = today;
  $("start").value = addDays(today, -6);
  try {
    state.entities = (await api("/api/entities")).entities;
  } catch (err) { showError(err.message); state.entities = []; }
  renderEntityList(true);
  $("show").addEventListener("click", show);
  $("period").addEventListener("change", show);
  $("insights-period").addEventListener("change", loadInsights);
  $("show-charts").addEventListener("click", () => showView("charts"));
  $("show-settings").addEventListener("click", () => showView("settings"));
  $("connection-form").addEventListener("submit", (event) => { event.preventDefault(); saveConnection(); });
  $("save-connection").addEventListener("click", saveConnection);
  $("test-connection").addEventListener("click", testConnection);
  $("remove-token").addEventListener("click", removeToken);
  $("save-time-zone").addEventListener("click", saveTimeZone);
  $("add-version").addEventListener("click", () => $("tariff-versions").append(versionBlock({
    effective_from: todayIn(state.timeZone), prices: [{ start: "00:00", end: "00:00" }] })));
  $("save-tariff").addEventListener("click", () => saveTariff(readTariff()));
  $("remove-tariff").addEventListener("click", () => saveTariff(null));
  $("discover-button").addEventListener("click", discoverEntities);
  $("sync-button").addEventListener("click", syncLastDay);
  $("refresh-sync-log").addEventListener("click", loadSyncLog);
  await show();
  await loadInsights();
  await refreshStatus();
  if (window.location.hash === "#settings") await showView("settings");
  setInterval(refreshStatus, STATUS_EVERY_MS);
  setInterval(drawLive, 30000);  // slide the live window even when nothing arrives
  document.body.dataset.ready = "true";
}

init();
