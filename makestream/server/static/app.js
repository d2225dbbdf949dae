// The live page of makestream serve-sse. It loads /v1/state first (every scenario, the runs in
// flight, the open alerts), then follows /v1/events. Text from Make goes into the page through
// textContent only, never as HTML: scenario names and error messages are other people's input.
// Times are shown in the browser's own zone, which the header names.
"use strict";

const MAX_FINISHED = 200;
const MAX_LOG = 300;
const PASSED_ON = ["scenario", "type", "cursor", "access_token"];
const here = new URLSearchParams(location.search);
const token = here.get("access_token");

const running = new Map(); // execution id (or "expected:<scenario>:<due>") -> {row, run}
const alerts = new Map(); // alert_id -> item
const scenarios = new Map(); // scenario_id -> {row, data}
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

function nameOf(id, fallback) {
  const known = scenarios.get(id);
  return (known && known.data.name) || fallback || `#${id}`;
}

function label(event) {
  if (event.scenario_name) scenario(event.scenario_id).data.name = event.scenario_name;
  return nameOf(event.scenario_id, event.scenario_name);
}

function span(ms) {
  if (ms == null) return "";
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

// Local time of day; the zone is named once, in the header.
function clock(ts) {
  return ts ? new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "";
}

function zoneText() {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
  const minutes = -new Date().getTimezoneOffset();
  const sign = minutes < 0 ? "−" : "+";
  const abs = Math.abs(minutes);
  const offset = `UTC${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
  return `times in ${zone} (${offset})`;
}

function status(state, text) {
  const el = $("connection");
  el.dataset.state = state;
  el.textContent = text;
}

function counts() {
  $("running-count").textContent = running.size;
  $("finished-count").textContent = $("finished").rows.length;
  $("alerts-count").textContent = alerts.size;
  $("scenarios-count").textContent = scenarios.size;
  $("alerts").querySelector(".empty").hidden = alerts.size > 0;
  $("running-empty").hidden = running.size > 0;
}

// -- scenarios ---------------------------------------------------------------------------------

function scenario(id) {
  let entry = scenarios.get(id);
  if (!entry) {
    const row = document.createElement("tr");
    row.dataset.scenarioId = id;
    for (let i = 0; i < 8; i++) cell(row, "");
    row.cells[7].className = "trend";
    entry = { row, data: { scenario_id: id } };
    scenarios.set(id, entry);
    const body = $("scenarios");
    const after = [...body.rows].find((r) => Number(r.dataset.scenarioId) > id);
    body.insertBefore(row, after || null);
  }
  return entry;
}

function flags(data) {
  const words = [];
  if (data.is_invalid) words.push("stopped after errors");
  if (data.is_paused) words.push("paused by Make");
  if (data.is_active === false) words.push("inactive");
  return words.join(", ");
}

function drawScenario(id) {
  const { row, data } = scenario(id);
  const cells = row.cells;
  cells[0].textContent = data.name || `#${id}`;
  const last = data.last;
  cells[1].textContent = last ? `${last.status} ${clock(last.at)}` : "none recent";
  cells[1].className = "time";
  row.dataset.lastStatus = last ? last.status : "";
  cells[2].textContent = data.success_rate == null ? ""
    : `${Math.round(data.success_rate * 100)}% of ${data.sample_size}`;
  cells[3].textContent = data.dlq_count == null ? "" : String(data.dlq_count);
  cells[4].textContent = data.queue_count == null ? "" : String(data.queue_count);
  cells[5].textContent = data.next_exec ? clock(data.next_exec) : "";
  cells[5].className = "time";
  cells[6].textContent = flags(data);
  row.dataset.flagged = cells[6].textContent ? "yes" : "";
}

// -- the trend: runs per day from the history store (/v1/trend) ----------------------------------

const TREND_DAYS = 7;
const SVG = "http://www.w3.org/2000/svg";
const DAY_MS = 86400000;

function bar(svg, x, y, height, className) {
  const rect = document.createElementNS(SVG, "rect");
  for (const [name, value] of [["x", x], ["y", y], ["width", 5], ["height", height]]) {
    rect.setAttribute(name, String(value));
  }
  rect.setAttribute("class", className);
  svg.appendChild(rect);
}

// One scenario's days as bars (the runs; the failed share in red) and a title naming each day.
function drawTrend(entry, today) {
  const cellEl = scenario(entry.scenario_id).row.cells[7];
  const days = new Map();
  for (const day of entry.days || []) {
    const index = TREND_DAYS - 1 - Math.round((today - Date.parse(day.start)) / DAY_MS);
    if (index >= 0 && index < TREND_DAYS) days.set(index, day);
  }
  const most = Math.max(1, ...[...days.values()].map((d) => d.runs));
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", String(TREND_DAYS * 7));
  svg.setAttribute("height", "16");
  svg.setAttribute("role", "img");
  const lines = [];
  for (let i = 0; i < TREND_DAYS; i++) {
    const day = days.get(i);
    if (!day) continue;
    const height = Math.max(1, Math.round((day.runs / most) * 16));
    const failed = Math.round((day.error / Math.max(1, day.runs)) * height);
    bar(svg, i * 7, 16 - height, height - failed, "runs");
    if (failed) bar(svg, i * 7, 16 - failed, failed, "errors");
    const when = new Date(Date.parse(day.start)).toLocaleDateString([], { weekday: "short", day: "numeric" });
    lines.push(`${when}: ${day.runs} runs, ${day.error} failed`);
  }
  const title = document.createElementNS(SVG, "title");
  title.textContent = lines.length ? lines.join("\n") : `no runs in ${TREND_DAYS} days`;
  svg.appendChild(title);
  cellEl.replaceChildren(svg);
  cellEl.dataset.days = String(days.size);
}

// Without a history store the server answers 404: the column stays empty.
async function loadTrend() {
  let response;
  try {
    response = await fetch(`/v1/trend?days=${TREND_DAYS}`, { headers: withToken({ Accept: "application/json" }) });
  } catch (err) {
    return;
  }
  if (!response.ok) return;
  const doc = await response.json();
  const now = new Date();
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  for (const entry of doc.scenarios || []) {
    if (scenarios.has(entry.scenario_id)) drawTrend(entry, today);
  }
}

function takeScenario(s) {
  const data = scenario(s.scenario_id).data;
  Object.assign(data, {
    name: s.name ?? s.scenario_name ?? data.name,
    is_active: s.is_active, is_invalid: s.is_invalid, is_paused: s.is_paused,
    dlq_count: s.dlq_count, queue_count: s.queue_count, next_exec: s.next_exec,
    success_rate: s.success_rate, sample_size: s.sample_size,
  });
  const newest = (s.last_executions || [])[0];
  if (newest) data.last = { status: newest.status, at: newest.timestamp };
  if (s.last_run) data.last = { status: s.last_run.status, at: s.last_run.started_at };
  drawScenario(s.scenario_id);
}

function scenarioChanged(event) {
  const data = scenario(event.scenario_id).data;
  for (const key of ["is_active", "is_invalid", "is_paused", "dlq_count", "queue_count"]) {
    if (event[key] != null) data[key] = event[key];
  }
  if (event.scenario_name) data.name = event.scenario_name;
  drawScenario(event.scenario_id);
}

// -- runs --------------------------------------------------------------------------------------

function addRunning(key, run) {
  if (running.has(key)) return;
  const row = document.createElement("tr");
  row.dataset.executionId = key;
  if (run.expected) row.dataset.expected = "yes";
  cell(row, nameOf(run.scenario_id, run.scenario_name));
  cell(row, run.expected ? "expected (schedule)" : key, "id");
  cell(row, clock(run.started_at), "time");
  const bar = document.createElement("progress");
  bar.max = 100;
  const td = cell(row, "");
  td.appendChild(bar);
  const words = document.createElement("span");
  words.className = "progress-text";
  td.appendChild(words);
  running.set(key, { row, run });
  $("running").prepend(row);
  drawProgress(key);
}

// Progress rests on the scenario's past durations: an estimate, marked with "~".
function drawProgress(key) {
  const entry = running.get(key);
  if (!entry) return;
  const { row, run } = entry;
  const bar = row.querySelector("progress");
  const words = row.querySelector(".progress-text");
  const begun = run.started_at ? Date.parse(run.started_at) : null;
  const elapsed = begun != null ? Date.now() - begun : run.elapsed_ms;
  const expected = run.expected_duration_ms;
  if (elapsed != null && expected) {
    const percent = Math.min(99, (100 * elapsed) / expected);
    bar.value = percent;
    const late = elapsed - expected;
    words.textContent = ` ~${Math.round(percent)}% · ${span(elapsed)} of ~${span(expected)}`
      + (late >= 1000 ? ` · late ${span(late)}` : "");
  } else {
    bar.removeAttribute("value");
    words.textContent = elapsed != null ? ` ${span(elapsed)}, no past runs to go by` : "";
  }
}

function dropExpected(scenarioId) {
  for (const [key, { row, run }] of running) {
    if (run.expected && run.scenario_id === scenarioId) { row.remove(); running.delete(key); }
  }
}

function started(event) {
  dropExpected(event.scenario_id);
  label(event);
  addRunning(event.execution_id, { ...event });
}

function expected(event) {
  label(event);
  addRunning(`expected:${event.scenario_id}:${event.due_at}`,
    { ...event, started_at: event.due_at, expected: true });
}

function progress(event) {
  const entry = running.get(event.execution_id);
  if (!entry) return;
  if (event.expected_duration_ms != null) entry.run.expected_duration_ms = event.expected_duration_ms;
  entry.run.elapsed_ms = event.elapsed_ms;
  drawProgress(event.execution_id);
}

function finished(event) {
  if ($("finished").querySelector(`tr[data-execution-id="${CSS.escape(event.execution_id)}"]`)) return;
  const was = running.get(event.execution_id);
  if (was) { was.row.remove(); running.delete(event.execution_id); }
  dropExpected(event.scenario_id);
  const row = document.createElement("tr");
  row.dataset.executionId = event.execution_id;
  row.dataset.status = event.status;
  row.className = "finished";
  // A run from /v1/state has Make's log time stamp only (its start, or its end: see make-api.md).
  cell(row, clock(event.ended_at || event.ts), "time");
  cell(row, label(event));
  cell(row, event.status, "status");
  cell(row, span(event.duration_ms));
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
  row.hidden = !statusShown(event.status);
  const body = $("finished");
  body.prepend(row);
  while (body.rows.length > MAX_FINISHED) body.deleteRow(-1);
  const data = scenario(event.scenario_id).data;
  if (!event.fromState) {
    data.last = { status: event.status, at: event.started_at || event.ended_at || event.ts };
    drawScenario(event.scenario_id);
  }
}

// -- alerts ------------------------------------------------------------------------------------

function alertRaised(event) {
  let item = alerts.get(event.alert_id);
  if (!item) {
    item = document.createElement("li");
    alerts.set(event.alert_id, item);
    $("alerts").prepend(item);
  }
  item.dataset.alertId = event.alert_id;
  item.dataset.severity = event.severity;
  const since = event.raised_at || event.ts;
  item.textContent = `${event.severity}: ${event.message}` + (since ? ` (since ${clock(since)})` : "");
}

function alertResolved(event) {
  const item = alerts.get(event.alert_id);
  if (item) { item.remove(); alerts.delete(event.alert_id); }
}

// -- filters and the event log -----------------------------------------------------------------

function statusShown(value) {
  const wanted = $("filter-status").value;
  return !wanted || value === wanted;
}

function typeShown(type) {
  const wanted = $("filter-type").value;
  return !wanted || type === wanted || (wanted.endsWith(".*") && type.startsWith(wanted.slice(0, -1)));
}

function logged(event) {
  const row = document.createElement("tr");
  row.dataset.type = event.type;
  if (event.status) row.dataset.status = event.status;
  cell(row, clock(event.ts), "time");
  cell(row, event.type);
  cell(row, event.scenario_id != null ? nameOf(event.scenario_id, event.scenario_name) : "");
  cell(row, event.message || event.status || event.reason || "");
  row.hidden = !shownInLog(row);
  const body = $("log");
  body.prepend(row);
  while (body.rows.length > MAX_LOG) body.deleteRow(-1);
}

function shownInLog(row) {
  return typeShown(row.dataset.type) && (!row.dataset.status || statusShown(row.dataset.status));
}

function applyFilters() {
  for (const row of $("finished").rows) row.hidden = !statusShown(row.dataset.status);
  for (const row of $("log").rows) row.hidden = !shownInLog(row);
}

// -- the stream --------------------------------------------------------------------------------

const handlers = {
  "stream.opened": () => status("open", "live"),
  "execution.started": started,
  "execution.expected": expected,
  "execution.progress": progress,
  "execution.finished": finished,
  "scenario.changed": scenarioChanged,
  "scenario.state": takeScenario,
  "alert.raised": alertRaised,
  "alert.resolved": alertResolved,
  "stream.heartbeat": (e) => {
    if (e.budget_per_min != null) {
      $("budget").textContent = `API: ${e.used_last_minute ?? "?"} of ${e.budget_per_min}/min`;
    }
    if (e.failing) status("failing", `failing: ${e.failing}`);
    else if ($("connection").dataset.state === "failing") status("open", "live");
  },
  "stream.error": (e) => { if (e.fatal) status("closed", `failed: ${e.message}`); },
  "api.throttled": (e) => { $("budget").textContent = `API: throttled for ${e.retry_in_s} s`; },
  "stream.lagged": () => status("connecting", "catching up…"),
  "stream.closed": (e) => status("closed", `closed (${e.reason})`),
};

function withToken(headers) {
  return token ? { ...headers, Authorization: `Bearer ${token}` } : headers;
}

const NEEDS_TOKEN = "this server needs its token: open the page as /?access_token=TOKEN "
  + "(the token serve-sse was given through MAKESTREAM_SSE_TOKEN or --auth-token-file)";

// What is wrong, from /v1/state's answer; null when it answered.
async function loadState() {
  let response;
  try {
    response = await fetch("/v1/state", { headers: withToken({ Accept: "application/json" }) });
  } catch (err) {
    return "cannot reach the server — retrying";
  }
  if (response.status === 401) return NEEDS_TOKEN;
  if (!response.ok) return `the server answered ${response.status} — retrying`;
  const doc = await response.json();
  // Follow the events from where this state stands, so nothing between the two is missed.
  if (doc.cursor && !lastId && !here.get("cursor")) lastId = doc.cursor;
  for (const s of doc.scenarios || []) {
    takeScenario(s);
    if (s.running) {
      addRunning(s.running.execution_id, {
        scenario_id: s.scenario_id, scenario_name: s.name, started_at: s.running.timestamp,
        expected_duration_ms: s.duration_p50_ms,
      });
    }
  }
  for (const alert of doc.alerts || []) alertRaised(alert);
  // The recent runs of every scenario, oldest first so that the newest ends on top.
  const recent = [];
  for (const s of doc.scenarios || []) {
    for (const run of s.last_executions || []) recent.push({ ...run, scenario_id: s.scenario_id });
  }
  recent.sort((a, b) => (a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : 0));
  for (const run of recent.slice(-MAX_FINISHED)) {
    finished({
      execution_id: run.execution_id, scenario_id: run.scenario_id, status: run.status,
      started_at: run.timestamp, ts: run.timestamp, duration_ms: run.duration_ms,
      operations: run.operations, fromState: true,
    });
  }
  counts();
  return null;
}

function url() {
  const query = new URLSearchParams();
  for (const name of PASSED_ON) {
    if (name === "cursor" && lastId) continue;
    for (const value of here.getAll(name)) query.append(name, value);
  }
  if (lastId) query.set("cursor", lastId);
  const text = query.toString();
  return "/v1/events" + (text ? "?" + text : "");
}

async function start() {
  const problem = await loadState();
  if (problem === NEEDS_TOKEN) { status("closed", problem); return; }
  if (problem) {
    status("closed", problem);
    setTimeout(start, retryMs);
    retryMs = Math.min(retryMs * 2, 30000);
    return;
  }
  connect();
  loadTrend();
  setInterval(loadTrend, 60000);
}

function connect() {
  source = new EventSource(url());
  source.onopen = () => { status("open", "live"); retryMs = 1000; };
  source.onerror = async () => {
    if (source.readyState !== EventSource.CLOSED) {
      status("connecting", "reconnecting…");
      return;
    }
    // Refused: EventSource cannot tell why, so ask /v1/state, which answers in the same terms.
    let problem = "disconnected — retrying";
    try {
      const answer = await fetch("/v1/state", { headers: withToken({}) });
      if (answer.status === 401) problem = NEEDS_TOKEN;
    } catch (err) { /* the server is gone: retry */ }
    status("closed", problem);
    if (problem === NEEDS_TOKEN) return;
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 30000);
  };
  for (const [type, handle] of Object.entries(handlers)) {
    source.addEventListener(type, (message) => {
      if (message.lastEventId) lastId = message.lastEventId;
      const event = JSON.parse(message.data);
      handle(event);
      if (type !== "execution.progress" && type !== "stream.heartbeat") logged(event);
      counts();
    });
  }
}

$("zone").textContent = zoneText();
$("filter-status").addEventListener("change", applyFilters);
$("filter-type").addEventListener("change", applyFilters);
setInterval(() => { for (const key of running.keys()) drawProgress(key); }, 1000);
counts();
start();
