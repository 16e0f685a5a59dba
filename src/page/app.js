// ringcast's live page. Plain browser APIs only: EventSource for the streams, fetch for
// publishing, a few DOM nodes. Every URL is relative, so the page works under any path
// prefix (--base-path).

const MAX_EVENTS = 200; // events kept on the page; older ones are dropped
const SPARK_POINTS = 60; // one stats sample a second: the last minute
const RETRY_MS = Number(document.querySelector('meta[name="ringcast-retry-ms"]')?.content) || 3000;

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------------------
// Announcements: status changes, gaps and publish results only, never each event.

const announcer = $("announcer");
let toAnnounce = [];
function announce(text) {
  // Messages that come together (reconnected, then a gap) are said together; clearing
  // the region first makes a repeated message be read again.
  toAnnounce.push(text);
  if (toAnnounce.length > 1) return;
  announcer.textContent = "";
  setTimeout(() => {
    announcer.textContent = toAnnounce.join(" ");
    toAnnounce = [];
  }, 100);
}

// ---------------------------------------------------------------------------------------
// The subscription: one EventSource, and what its state looks like.

const subscribeForm = $("subscribe");
const topicInput = $("sub-topic");
const namesInput = $("sub-names");
const connectButton = $("connect");
const disconnectButton = $("disconnect");
const statusEl = $("status");
const lastIdEl = $("last-id");

let source = null;
let topic = "";
let listening = new Set();
let wasOpen = false;
let countdown = null;

function eventsUrl(topics) {
  return "events?" + topics.map((t) => "topic=" + encodeURIComponent(t)).join("&");
}

function setStatus(state, text) {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
  const active = state !== "closed" && state !== "refused";
  disconnectButton.disabled = !active;
  connectButton.textContent = active ? "Reconnect" : "Connect";
}

function stopCountdown() {
  clearInterval(countdown);
  countdown = null;
}

// EventSource waits for the server's `retry` before reconnecting but does not say how
// long that is; the page was served with the server's value and counts it down.
function startCountdown() {
  stopCountdown();
  const until = performance.now() + RETRY_MS;
  const tick = () => {
    const left = until - performance.now();
    setStatus("reconnecting", left > 0
      ? `Reconnecting in ${(left / 1000).toFixed(1)} s`
      : "Reconnecting now…");
    if (left <= 0) stopCountdown();
  };
  tick();
  countdown = setInterval(tick, 100);
}

function connect() {
  disconnect(false);
  topic = topicInput.value.trim();
  wasOpen = false;
  const es = new EventSource(eventsUrl([topic]));
  source = es;
  listening = new Set();
  for (const name of eventNames()) listen(name);
  es.addEventListener("gap", onGap);
  es.onopen = () => {
    stopCountdown();
    setStatus("open", `Open · ${topic}`);
    announce(wasOpen ? `Reconnected to topic ${topic}.` : `Connected to topic ${topic}.`);
    wasOpen = true;
  };
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED) {
      // The server answered something other than a stream (a bad topic, shutting down).
      stopCountdown();
      setStatus("refused", "Closed: the server refused the stream");
      announce("The server refused the stream.");
      source = null;
      return;
    }
    if (countdown === null) {
      startCountdown();
      const seconds = Math.max(1, Math.round(RETRY_MS / 1000));
      announce(`Connection lost. Reconnecting in about ${seconds} second${seconds === 1 ? "" : "s"}.`);
    }
  };
  setStatus("connecting", `Connecting · ${topic}`);
  pubTopicInput.value = topic;
}

function disconnect(say = true) {
  stopCountdown();
  if (source) {
    source.close();
    source = null;
    if (say) announce("Disconnected.");
  }
  setStatus("closed", "Closed");
}

function eventNames() {
  const names = namesInput.value.split(/[\s,]+/).filter(Boolean);
  return names.length ? names : ["message"];
}

function listen(name) {
  if (!source || listening.has(name) || name === "gap") return;
  listening.add(name);
  source.addEventListener(name, onEvent);
}

namesInput.addEventListener("change", () => eventNames().forEach(listen));
subscribeForm.addEventListener("submit", (e) => {
  e.preventDefault();
  if (subscribeForm.reportValidity()) connect();
});
disconnectButton.addEventListener("click", () => disconnect());

// ---------------------------------------------------------------------------------------
// Events: queued as they arrive, drawn at most once a frame, newest on top, capped.

const list = $("events");
const countEl = $("event-count");
let pending = [];
let received = 0;
let drawScheduled = false;

function onEvent(e) {
  received += 1;
  lastIdEl.textContent = e.lastEventId || "none";
  pending.push({ name: e.type, id: e.lastEventId, data: e.data, at: new Date() });
  if (pending.length > MAX_EVENTS) pending = pending.slice(-MAX_EVENTS);
  if (!drawScheduled) {
    drawScheduled = true;
    requestAnimationFrame(draw);
  }
}

function draw() {
  drawScheduled = false;
  const fragment = document.createDocumentFragment();
  for (let i = pending.length - 1; i >= 0; i--) fragment.append(renderEvent(pending[i]));
  pending = [];
  list.prepend(fragment);
  while (list.childElementCount > MAX_EVENTS) list.lastElementChild.remove();
  const shown = list.childElementCount;
  countEl.textContent = received === shown
    ? `${received} received`
    : `${received} received · newest ${shown} shown`;
}

function renderEvent(ev) {
  const li = document.createElement("li");
  li.className = ev.name === "gap" ? "event gap-event" : "event";
  const meta = document.createElement("div");
  meta.className = "meta";
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = ev.name;
  const id = document.createElement("span");
  id.className = "mono";
  id.textContent = ev.id ? `id ${ev.id}` : "no id";
  const time = document.createElement("time");
  time.dateTime = ev.at.toISOString();
  time.textContent = clock(ev.at);
  meta.append(name, id, time);
  const data = document.createElement("pre");
  data.textContent = ev.data;
  li.append(meta, data);
  return li;
}

function clock(d) {
  const two = (n) => String(n).padStart(2, "0");
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.` +
    String(d.getMilliseconds()).padStart(3, "0");
}

// The server's in-band notice that events were lost before the replay that follows.
function onGap(e) {
  onEvent(e);
  let detail = "";
  try {
    const gap = JSON.parse(e.data);
    detail = gap.oldest_id === null
      ? " The server keeps no history for this topic."
      : ` The server's history starts at id ${gap.oldest_id}; you had ${gap.last_event_id}.`;
  } catch { /* the notice itself is what matters */ }
  const text = `Some events were lost while disconnected.${detail}`;
  $("gap-text").textContent = text;
  $("gap").hidden = false;
  announce(text);
}

$("gap-dismiss").addEventListener("click", () => {
  $("gap").hidden = true;
  $("events-heading").focus();
});

$("clear").addEventListener("click", () => {
  list.replaceChildren();
  pending = [];
  received = 0;
  countEl.textContent = "None yet";
});

// ---------------------------------------------------------------------------------------
// Publishing: POST publish?topic=T&event=NAME with the data as the body.

const publishForm = $("publish");
const pubTopicInput = $("pub-topic");
const pubEventInput = $("pub-event");
const pubDataInput = $("pub-data");
const publishResult = $("publish-result");

publishForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!publishForm.reportValidity()) return;
  const name = pubEventInput.value.trim();
  let url = "publish?topic=" + encodeURIComponent(pubTopicInput.value.trim());
  if (name) {
    url += "&event=" + encodeURIComponent(name);
    if (!eventNames().includes(name)) namesInput.value = `${namesInput.value.trim()} ${name}`.trim();
    listen(name);
  }
  let text;
  let ok = false;
  try {
    const res = await fetch(url, {
      method: "POST",
      body: pubDataInput.value,
      headers: { "Content-Type": "text/plain; charset=utf-8" },
    });
    const body = await res.text();
    ok = res.status === 202;
    text = ok ? `Published as id ${JSON.parse(body).id}.` : `Refused (${res.status}): ${body.trim()}`;
  } catch (err) {
    text = `Could not reach the server: ${err.message}`;
  }
  publishResult.dataset.ok = String(ok);
  publishResult.textContent = text;
  announce(text);
});

// ---------------------------------------------------------------------------------------
// The server panel: the server's own `sys:stats` stream, one snapshot a second.

const statsState = $("stats-state");
const samples = { delivered: [], published: [] };
const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

function setStatsState(state, text) {
  statsState.dataset.state = state;
  statsState.textContent = text;
}

function startStats() {
  const stats = new EventSource(eventsUrl(["sys:stats"]));
  stats.onopen = () => setStatsState("open", "live");
  stats.onerror = () => {
    if (stats.readyState === EventSource.CLOSED) {
      // Refused (the server is shutting down, say): EventSource gives up, the page not.
      setStatsState("closed", "offline");
      setTimeout(startStats, 5000);
    } else {
      setStatsState("reconnecting", "reconnecting");
    }
  };
  stats.addEventListener("stats", (e) => {
    let s;
    try { s = JSON.parse(e.data); } catch { return; }
    $("stat-connections").textContent = number.format(s.connections);
    $("stat-subscribers").textContent = number.format(s.subscribers);
    $("stat-published").textContent = s.published_per_s === null ? "–" : number.format(s.published_per_s);
    $("stat-delivered").textContent = s.delivered_per_s === null ? "–" : number.format(s.delivered_per_s);
    $("stat-uptime").textContent = duration(s.uptime_s);
    if (s.published_per_s !== null) {
      push(samples.published, s.published_per_s);
      push(samples.delivered, s.delivered_per_s);
      drawSparkline();
    }
  });
}

function push(series, value) {
  series.push(value);
  if (series.length > SPARK_POINTS) series.shift();
}

function duration(seconds) {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor(seconds / 60) % 60;
  const s = seconds % 60;
  const two = (n) => String(n).padStart(2, "0");
  return h ? `${h}h ${two(m)}m` : m ? `${m}m ${two(s)}s` : `${s}s`;
}

// An SVG drawn once and re-pointed on each sample: an area and a line for deliveries, a
// dashed line for publishes, on a shared scale. The viewBox is 120 × 36.
const SVG = "http://www.w3.org/2000/svg";
const spark = $("sparkline");
const sparkBase = svgNode("line", "base");
const sparkArea = svgNode("polygon", "area");
const sparkDelivered = svgNode("polyline", "line delivered");
const sparkPublished = svgNode("polyline", "line published");

function svgNode(kind, cls) {
  const node = document.createElementNS(SVG, kind);
  node.setAttribute("class", cls);
  spark.append(node);
  return node;
}

sparkBase.setAttribute("x1", "0");
sparkBase.setAttribute("x2", "120");
sparkBase.setAttribute("y1", "34");
sparkBase.setAttribute("y2", "34");

function drawSparkline() {
  const peak = Math.max(1, ...samples.delivered, ...samples.published);
  const x = (i) => ((i + SPARK_POINTS - samples.delivered.length) * 120) / (SPARK_POINTS - 1);
  const y = (v) => 34 - (v / peak) * 30;
  const points = (series) => series.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  const delivered = points(samples.delivered);
  sparkDelivered.setAttribute("points", delivered);
  sparkPublished.setAttribute("points", points(samples.published));
  const first = x(0).toFixed(1);
  sparkArea.setAttribute("points", `${first},36 ${delivered} 120,36`);
  $("spark-peak").textContent = number.format(peak);
}

setStatus("closed", "Not connected");
startStats();
