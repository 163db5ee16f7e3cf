// The chart page: consumption/cost bars from POST /api/statistics/compare, a live line fed by the
// server-sent events of /api/readings/stream, and the pipeline status. Plain JS and hand-made SVG:
// nothing is loaded from anywhere but this server, so the page works offline.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const COLORS = ["#2271b1", "#d63638", "#00a32a", "#dba617", "#8c5fc7", "#e26f56", "#3582c4", "#50575e",
  "#0a8d94", "#b32d2e"];
const LIVE_WINDOW_MS = 60 * 60 * 1000;
const MAX_LIVE_POINTS = 5000;
const STATUS_EVERY_MS = 10000;
const MAX_SELECTED = 10;

const $ = (id) => document.getElementById(id);
const state = { entities: [], timeZone: "UTC", live: new Map(), source: null, units: new Map() };

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
  const list = $("entity-list");
  $("entity-empty").hidden = state.entities.length > 0;
  const tracked = state.entities.filter((e) => e.tracked);
  const preselected = new Set((tracked.length ? tracked : state.entities).slice(0, 3).map((e) => e.entity_id));
  for (const entity of state.entities) {
    state.units.set(entity.entity_id, entity.unit || "");
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.dataset.entityId = entity.entity_id;
    box.checked = preselected.has(entity.entity_id);
    label.append(box, ` ${entity.name || entity.entity_id}`);
    label.title = `${entity.entity_id}${entity.role ? ` (${entity.role})` : ""}${entity.tracked ? "" : " – not tracked"}`;
    list.append(label);
  }
  $("show").addEventListener("click", show);
  $("period").addEventListener("change", show);
  await show();
  await refreshStatus();
  setInterval(refreshStatus, STATUS_EVERY_MS);
  setInterval(drawLive, 30000);  // slide the live window even when nothing arrives
  document.body.dataset.ready = "true";
}

init();
