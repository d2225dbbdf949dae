// The live page of makestream serve-sse: running and finished executions and active alerts,
// from /v1/events. Text from events goes into the page through textContent only, never as HTML:
// scenario names and error messages are other people's input.
"use strict";

const MAX_FINISHED = 200;
const PASSED_ON = ["scenario", "type", "cursor", "access_token"];

const running = new Map(); // execution_id -> row
const alerts = new Map(); // alert_id -> item
const names = new Map(); // scenario_id -> name
let lastId = "";
let source = null;
let retryMs = 1000;

function $(id) { return document.getElementById(id); }

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function scenarioLabel(event) {
  if (event.scenario_name) names.set(event.scenario_id, event.scenario_name);
  return names.get(event.scenario_id) || `#${event.scenario_id}`;
}

function seconds(ms) { return ms == null ? "" : `${(ms / 1000).toFixed(1)} s`; }

function clock(ts) { return ts ? new Date(ts).toLocaleTimeString() : ""; }

function counts() {
  $("running-count").textContent = running.size;
  $("finished-count").textContent = $("finished").rows.length;
  $("alerts-count").textContent = alerts.size;
  const empty = $("alerts").querySelector(".empty");
  if (empty) empty.hidden = alerts.size > 0;
}

function started(event) {
  if (running.has(event.execution_id)) return;
  const row = document.createElement("tr");
  row.dataset.executionId = event.execution_id;
  cell(row, scenarioLabel(event));
  cell(row, event.execution_id, "id");
  cell(row, clock(event.started_at));
  const bar = document.createElement("progress");
  bar.max = 100;
  cell(row, "").appendChild(bar);
  running.set(event.execution_id, row);
  $("running").prepend(row);
}

function progress(event) {
  const row = running.get(event.execution_id);
  if (!row) return;
  const bar = row.querySelector("progress");
  if (event.percent != null) bar.value = event.percent;
  bar.title = `${seconds(event.elapsed_ms)} of about ${seconds(event.expected_duration_ms)}`;
}

function finished(event) {
  const was = running.get(event.execution_id);
  if (was) { was.remove(); running.delete(event.execution_id); }
  const row = document.createElement("tr");
  row.dataset.executionId = event.execution_id;
  row.dataset.status = event.status;
  row.className = "finished";
  cell(row, clock(event.ts));
  cell(row, scenarioLabel(event));
  cell(row, event.status, "status");
  cell(row, seconds(event.duration_ms));
  cell(row, event.operations);
  const id = cell(row, "", "id");
  if (event.url) {
    const link = document.createElement("a");
    link.href = event.url;
    link.rel = "noreferrer";
    link.textContent = event.execution_id;
    id.appendChild(link);
  } else {
    id.textContent = event.execution_id;
  }
  cell(row, event.error ? event.error.message : "");
  const body = $("finished");
  body.prepend(row);
  while (body.rows.length > MAX_FINISHED) body.deleteRow(-1);
}

function alertRaised(event) {
  let item = alerts.get(event.alert_id);
  if (!item) {
    item = document.createElement("li");
    alerts.set(event.alert_id, item);
    $("alerts").prepend(item);
  }
  item.dataset.alertId = event.alert_id;
  item.dataset.severity = event.severity;
  item.textContent = `${event.severity}: ${event.message}`;
}

function alertResolved(event) {
  const item = alerts.get(event.alert_id);
  if (item) { item.remove(); alerts.delete(event.alert_id); }
}

function status(state, text) {
  const el = $("connection");
  el.dataset.state = state;
  el.textContent = text;
}

const handlers = {
  "stream.opened": () => status("open", "live"),
  "execution.started": started,
  "execution.progress": progress,
  "execution.finished": finished,
  "alert.raised": alertRaised,
  "alert.resolved": alertResolved,
  "stream.heartbeat": (e) => {
    if (e.budget_per_min != null) {
      $("budget").textContent = `API: ${e.used_last_minute ?? "?"} of ${e.budget_per_min}/min`;
    }
  },
  "api.throttled": (e) => { $("budget").textContent = `API: throttled for ${e.retry_in_s} s`; },
  "stream.lagged": () => status("connecting", "catching up…"),
  "stream.closed": (e) => status("closed", `closed (${e.reason})`),
};

function url() {
  const here = new URLSearchParams(location.search);
  const query = new URLSearchParams();
  for (const name of PASSED_ON) {
    if (name === "cursor" && lastId) continue;
    for (const value of here.getAll(name)) query.append(name, value);
  }
  if (lastId) query.set("cursor", lastId);
  const text = query.toString();
  return "/v1/events" + (text ? "?" + text : "");
}

function connect() {
  source = new EventSource(url());
  source.onopen = () => { status("open", "live"); retryMs = 1000; };
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      // Refused (503, 429, 401): the browser gives up, so try again later ourselves.
      status("closed", "disconnected — retrying");
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 30000);
    } else {
      status("connecting", "reconnecting…");
    }
  };
  for (const [type, handle] of Object.entries(handlers)) {
    source.addEventListener(type, (message) => {
      if (message.lastEventId) lastId = message.lastEventId;
      handle(JSON.parse(message.data));
      counts();
    });
  }
}

connect();
