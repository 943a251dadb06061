// The dashboard page: loads the merged windows once, then applies the
// windows each server-sent update carries. Every figure is computed from
// integer counters (spend in micro-units); data-driven text is only ever set
// with textContent, never parsed as HTML.
"use strict";

const windows = new Map(); // "start|campaign|channel" -> window view
let source = { connected: false, lag: null };
const fmtLag = (lag) => (lag === null || lag === undefined ? "…" : fmtInt(lag));
let live = false;
let renderQueued = false;
// Reach is a union of sketches, which only the server can take: the page
// asks it for the reach of what it shows, at most once a second.
let unions = { query: null, range: null, latest: null, campaigns: new Map(), channels: new Map(), buckets: [] };
let pacing = [];
let alerts = [];
let unionsWanted = null;
let unionsBusy = false;
let unionsAsked = 0;
let unionsTook = 0;

const $ = (id) => document.getElementById(id);
const key = (w) => `${w.window_start}|${w.campaign}|${w.channel}`;
// A window only grows, one pane at a time: keep whichever copy counted more,
// whatever order the snapshot and the updates arrive in.
function keep(w) {
  const old = windows.get(key(w));
  if (!old || old.panes <= w.panes) windows.set(key(w), w);
}
const fmtInt = (n) => Number(n).toLocaleString("en-US");
const fmtMoney = (micros) => (micros / 1e6).toLocaleString("en-US", { style: "currency", currency: "USD" });
const fmtRatio = (r) => r.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const fmtPct = (r) => (r * 100).toLocaleString("en-US", { maximumFractionDigits: 2 }) + "%";
const fmtTime = (ms) => new Date(ms).toISOString().slice(0, 16).replace("T", " ");

function emptyTotals() {
  return { impressions: 0, clicks: 0, conversions: 0, spend_micros: 0, revenue_micros: 0, late_records: 0, windows: 0 };
}
function add(t, w) {
  t.impressions += w.impressions;
  t.clicks += w.clicks;
  t.conversions += w.conversions;
  t.spend_micros += w.spend_micros;
  t.revenue_micros += w.revenue_micros || 0;
  t.late_records += w.late_records;
  t.windows += 1;
  return t;
}
// Ratios as the seed defines them: 0 when the denominator is 0.
const ratio = (a, b) => (b === 0 ? 0 : a / b);
const fmtReach = (u) => (u ? fmtInt(u.reach) : "…");
const fmtFrequency = (t, u) => (u ? fmtRatio(ratio(t.impressions, u.reach)) : "…");
function kpis(t, union) {
  return [
    ["impressions", "Impressions", fmtInt(t.impressions)],
    ["clicks", "Clicks", fmtInt(t.clicks)],
    ["conversions", "Conversions", fmtInt(t.conversions)],
    ["spend", "Spend", fmtMoney(t.spend_micros)],
    ["cpc", "CPC", fmtRatio(ratio(t.spend_micros / 1e6, t.clicks))],
    ["cpa", "CPA", fmtRatio(ratio(t.spend_micros / 1e6, t.conversions))],
    ["ctr", "CTR", fmtPct(ratio(t.clicks, t.impressions))],
    ["cvr", "CVR", fmtPct(ratio(t.conversions, t.clicks))],
    ["cpm", "CPM", fmtRatio(ratio(t.spend_micros / 1e3, t.impressions))],
    ["revenue", "Revenue", fmtMoney(t.revenue_micros)],
    ["roas", "ROAS", fmtRatio(ratio(t.revenue_micros, t.spend_micros))],
    ["aov", "AOV", fmtRatio(ratio(t.revenue_micros / 1e6, t.conversions))],
    ["reach", "Reach", fmtReach(union)],
    ["frequency", "Frequency", fmtFrequency(t, union)],
  ];
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function renderCards(container, prefix, totals, union) {
  container.replaceChildren(
    ...kpis(totals, union).map(([id, label, value]) => {
      const card = el("div", undefined, "card");
      card.append(el("div", label, "label"));
      const v = el("div", value, "value");
      v.id = `${prefix}-${id}`;
      card.append(v);
      return card;
    })
  );
}

function selection() {
  const time = (id) => {
    const v = $(id).value;
    return v ? Date.parse(v + ":00Z") : null;
  };
  return {
    campaign: $("filter-campaign").value,
    channel: $("filter-channel").value,
    from: time("filter-from"),
    to: time("filter-to"),
  };
}

// The selection as the API's query string.
function query(s, extra) {
  const q = new URLSearchParams(extra);
  if (s.campaign) q.set("campaign", s.campaign);
  if (s.channel) q.set("channel", s.channel);
  if (s.from !== null) q.set("from", s.from);
  if (s.to !== null) q.set("to", s.to);
  return q;
}

// Fetches the unions for the selection `s` and the latest window start.
async function refreshUnions() {
  if (unionsBusy || unionsWanted === null) return;
  // Over a day of many keys a union takes the server a while: ask less often then.
  const wait = unionsAsked + Math.max(1000, 5 * unionsTook) - Date.now();
  if (wait > 0) {
    unionsBusy = true;
    setTimeout(() => { unionsBusy = false; refreshUnions(); }, wait);
    return;
  }
  unionsAsked = Date.now();
  const wanted = unionsWanted;
  unionsWanted = null;
  unionsBusy = true;
  try {
    const get = async (q) => (await fetch(`/api/${q}`)).json();
    const s = wanted.selection;
    const latest = wanted.latest === null ? null
      : await get(`summary?${query({ ...s, from: wanted.latest, to: wanted.latest })}`);
    const [range, campaigns, channels, paced, active] = await Promise.all([
      get(`summary?${query(s, { bucket: "1m" })}`),
      get(`top?${query(s, { dimension: "campaign", n: 10000 })}`),
      get(`top?${query(s, { dimension: "channel", n: 10000 })}`),
      get("pacing"),
      get("alerts"),
    ]);
    pacing = paced;
    alerts = active;
    unions = {
      query: wanted.key, range, latest, buckets: range.buckets || [],
      campaigns: new Map(campaigns.map((r) => [r.campaign, r])),
      channels: new Map(channels.map((r) => [r.channel, r])),
    };
    unionsTook = Date.now() - unionsAsked;
    queueRender();
  } catch (e) {
    unionsWanted = unionsWanted || wanted;
  } finally {
    unionsBusy = false;
    refreshUnions();
  }
}

function wantUnions(s, latest) {
  unionsWanted = { selection: s, latest, key: JSON.stringify([s, latest]) };
  refreshUnions();
}

function matches(w, s) {
  return (!s.campaign || w.campaign === s.campaign)
    && (!s.channel || w.channel === s.channel)
    && (s.from === null || w.window_start >= s.from)
    && (s.to === null || w.window_start <= s.to);
}

function fillSelect(select, names) {
  const current = select.value;
  const have = new Set([...select.options].map((o) => o.value));
  for (const n of names) {
    if (!have.has(n)) {
      const o = el("option", n);
      o.value = n;
      select.append(o);
    }
  }
  select.value = current;
}

function groupBy(list, field) {
  const groups = new Map();
  for (const w of list) {
    let g = groups.get(w[field]);
    if (!g) {
      g = { name: w[field], totals: emptyTotals(), target: null, label: null };
      groups.set(w[field], g);
    }
    add(g.totals, w);
    if (w.target_cpa_micros !== null && w.target_cpa_micros !== undefined) g.target = w.target_cpa_micros;
    if (w.campaign_name) g.label = w.campaign_name;
  }
  return [...groups.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) tr.append(c instanceof Node ? c : el("td", c));
  return tr;
}

function render() {
  renderQueued = false;
  const all = [...windows.values()];
  fillSelect($("filter-campaign"), [...new Set(all.map((w) => w.campaign))].sort());
  fillSelect($("filter-channel"), [...new Set(all.map((w) => w.channel))].sort());
  const s = selection();
  const chosen = all.filter((w) => matches(w, s)).sort((a, b) => a.window_start - b.window_start);

  const latestStart = chosen.length ? chosen[chosen.length - 1].window_start : null;
  const fresh = unions.query === JSON.stringify([s, latestStart]);
  const range = chosen.reduce(add, emptyTotals());
  // Reach shown with counters it was not taken with would mislead: "…" until it is.
  const same = (u, t) => u && u.impressions === t.impressions ? u : null;
  renderCards($("kpi-range"), "kpi-range", range, fresh || same(unions.range, range) ? unions.range : null);
  $("range-windows").textContent = chosen.length
    ? `${fmtInt(chosen.length)} windows, ${fmtTime(chosen[0].window_start)} – ${fmtTime(chosen[chosen.length - 1].window_end)} UTC`
    : "no windows yet";

  const latest = chosen.filter((w) => w.window_start === latestStart);
  const latestTotals = latest.reduce(add, emptyTotals());
  renderCards($("kpi-latest"), "kpi-latest", latestTotals, same(unions.latest, latestTotals));
  if (!fresh || !same(unions.range, range)) wantUnions(s, latestStart);
  $("latest-label").textContent = latestStart === null ? "" : `${fmtTime(latestStart)} UTC${latest.every((w) => w.final) ? ", final" : ", open"}`;

  const perMinute = new Map();
  for (const w of chosen) add(perMinute.get(w.window_start) || perMinute.set(w.window_start, emptyTotals()).get(w.window_start), w);
  const xs = [...perMinute.keys()];
  const data = [
    xs.map((x) => x / 1000),
    xs.map((x) => perMinute.get(x).impressions),
    xs.map((x) => perMinute.get(x).clicks),
    xs.map((x) => perMinute.get(x).conversions),
    xs.map((x) => perMinute.get(x).spend_micros / 1e6),
  ];
  draw("chart", data);
  const buckets = unions.buckets;
  draw("reach-chart", [
    buckets.map((b) => b.window_start / 1000),
    buckets.map((b) => b.reach),
    buckets.map((b) => b.frequency),
    buckets.map((b) => b.revenue),
    buckets.map((b) => b.ROAS),
  ]);

  const campaigns = $("by-campaign").tBodies[0];
  campaigns.replaceChildren(...groupBy(chosen, "campaign").map((g) => {
    const t = g.totals;
    const cpa = ratio(t.spend_micros / 1e6, t.conversions);
    // Exact in micro-units, like the server's flag.
    const over = g.target !== null && t.conversions > 0 && t.spend_micros > g.target * t.conversions;
    const cpaCell = el("td", fmtRatio(cpa), over ? "over" : undefined);
    if (over) cpaCell.append(el("span", "over target", "tag late"));
    return row([g.label ? `${g.label} (${g.name})` : g.name, fmtInt(t.impressions), fmtReach(same(unions.campaigns.get(g.name), t)), fmtInt(t.clicks),
      fmtInt(t.conversions), fmtMoney(t.spend_micros), fmtMoney(t.revenue_micros), fmtRatio(ratio(t.revenue_micros, t.spend_micros)),
      cpaCell, g.target === null ? "–" : fmtRatio(g.target / 1e6)]);
  }));
  const channels = $("by-channel").tBodies[0];
  channels.replaceChildren(...groupBy(chosen, "channel").map((g) => {
    const t = g.totals;
    return row([g.name, fmtInt(t.impressions), fmtReach(same(unions.channels.get(g.name), t)), fmtInt(t.clicks), fmtInt(t.conversions),
      fmtMoney(t.spend_micros), fmtMoney(t.revenue_micros), fmtRatio(ratio(t.revenue_micros, t.spend_micros)),
      fmtRatio(ratio(t.spend_micros / 1e6, t.clicks)), fmtPct(ratio(t.clicks, t.impressions))]);
  }));

  renderPacing();

  const recent = chosen.slice(-50).reverse();
  $("recent").tBodies[0].replaceChildren(...recent.map((w) => {
    const state = el("td");
    state.append(el("span", w.final ? "final" : "open", w.final ? "tag final" : "tag open"));
    if (w.late_records > 0) state.append(el("span", `late ${w.late_records}`, "tag late"));
    return row([fmtTime(w.window_start), w.campaign, w.channel, fmtInt(w.impressions), fmtInt(w.clicks),
      fmtInt(w.conversions), fmtMoney(w.spend_micros), fmtRatio(w.CPA), state]);
  }));
  renderConnection();
}

const money = (label, stroke) => ({ label, stroke, scale: "$", value: (u, v) => (v === null ? "–" : v.toFixed(2)) });
const CHARTS = {
  chart: { height: 300, series: [
    { label: "impressions", stroke: "#4c78a8", scale: "n" },
    { label: "clicks", stroke: "#f58518", scale: "n" },
    { label: "conversions", stroke: "#54a24b", scale: "n" },
    money("spend", "#b279a2"),
  ] },
  "reach-chart": { height: 240, series: [
    { label: "reach", stroke: "#4c78a8", scale: "n" },
    { label: "frequency", stroke: "#72b7b2", scale: "x" },
    money("revenue", "#54a24b"),
    { label: "ROAS", stroke: "#e45756", scale: "x" },
  ] },
};
const charts = {};
const chartWidth = (id) => Math.max(320, $(id).clientWidth - 16);

// Counts on the left axis, money on the right; ratios share the chart unscaled.
function draw(id, data) {
  if (!charts[id]) {
    charts[id] = new uPlot({
      width: chartWidth(id), height: CHARTS[id].height,
      series: [{}, ...CHARTS[id].series],
      axes: [{}, { scale: "n" }, { scale: "$", side: 1, grid: { show: false } }],
    }, data, $(id));
  } else {
    charts[id].setData(data);
  }
}

function renderPacing() {
  const day = pacing[0];
  const zone = day && day.time_zone !== "UTC" ? `, a day of ${day.time_zone}` : "";
  $("pacing-label").textContent = day ? `${fmtTime(day.day_start)} – ${fmtTime(day.now)} UTC${zone}` : "no daily budgets set";
  $("pacing").tBodies[0].replaceChildren(...pacing.map((p) => {
    const off = p.in_flight && p.expected_micros > 0 && Math.abs(p.pacing - 1) > 0.15;
    const cell = el("td", p.in_flight ? fmtPct(p.pacing) : "not in flight", off ? "over" : undefined);
    return row([p.campaign_name ? `${p.campaign_name} (${p.campaign})` : p.campaign, fmtMoney(p.daily_budget_micros),
      fmtMoney(p.spend_micros), fmtMoney(p.expected_micros), fmtMoney(p.projected_micros), cell]);
  }));
  $("alerts-count").textContent = `${alerts.length} active`;
  $("alerts").tBodies[0].replaceChildren(...alerts.map((a) => {
    const kind = el("td");
    kind.append(el("span", a.kind, "tag late"));
    return row([a.campaign, kind, fmtTime(a.since_ms), a.message]);
  }));
}

function renderDeadLetters() {
  const dlq = source.dlq || { total: 0, by_reason: {}, samples: [] };
  $("dlq-total").textContent = `${fmtInt(dlq.total)} ${dlq.total === 1 ? "record" : "records"}`;
  const kinds = Object.entries(dlq.by_reason).sort((a, b) => b[1] - a[1]);
  $("dlq-kinds").tBodies[0].replaceChildren(...kinds.map(([kind, n]) => row([kind, fmtInt(n)])));
  $("dlq-samples").tBodies[0].replaceChildren(...dlq.samples.map((d) => {
    const why = el("td");
    why.append(el("span", d.kind, "tag late"), el("div", d.reason, "muted"));
    return row([why, String(d.partition), d.offset === null ? "–" : fmtInt(d.offset), el("td", d.value === null ? "null" : d.value, "sample")]);
  }));
}

function renderConnection() {
  renderDeadLetters();
  const c = $("connection");
  if (!live) {
    c.className = "state down";
    c.textContent = "disconnected from the dashboard — retrying";
  } else if (!source.connected && source.refused) {
    c.className = "state down";
    c.textContent = `live · ${source.refused} — fix the source's settings; retrying`;
  } else if (!source.connected) {
    c.className = "state down";
    c.textContent = `live · source unreachable (${source.source || "?"}) — retrying`;
  } else if (!source.ready) {
    // Until the history is read, totals are partial: say so.
    c.className = "state connecting";
    c.textContent = `reading the history · ${fmtLag(source.lag)} records to go`;
  } else {
    c.className = "state live";
    // Where an operator looks during a swap: which version writes the panes now.
    const running = source.version ? ` · transform ${source.version}` : "";
    const dead = source.dlq && source.dlq.total > 0 ? ` · ${fmtInt(source.dlq.total)} dead letters` : "";
    c.textContent = `live · lag ${fmtLag(source.lag)}${running}${dead}`;
  }
  const version = source.version ? ` · latest panes by transform version ${source.version}` : "";
  const formats = Object.entries(source.pane_formats || {}).map(([f, n]) => `${f} (${fmtInt(n)})`).join(", ");
  const paneFormats = formats ? ` · panes by format: ${formats}` : "";
  $("footer").textContent = `source: ${source.source || "?"}${version}${paneFormats} · unreadable records: ${fmtInt(source.unreadable || 0)}`;
}

function queueRender() {
  if (!renderQueued) {
    renderQueued = true;
    requestAnimationFrame(render);
  }
}

async function loadAll() {
  const response = await fetch("/api/windows");
  // Answers to a logged-in page say so (its cookie is out of scripts' reach).
  $("logout").hidden = !response.headers.get("x-pipeline-session");
  const list = await response.json();
  for (const w of list) keep(w);
  queueRender();
}

function connect() {
  const events = new EventSource("/api/updates");
  events.addEventListener("hello", (e) => {
    live = true;
    source = JSON.parse(e.data);
    // After a reconnect the server may have moved on: load everything again.
    loadAll();
  });
  events.addEventListener("update", (e) => {
    const update = JSON.parse(e.data);
    for (const w of update.windows) keep(w);
    source = update.source;
    queueRender();
  });
  events.addEventListener("resync", loadAll);
  events.onerror = () => {
    live = false;
    renderConnection();
  };
}

for (const id of ["filter-campaign", "filter-channel", "filter-from", "filter-to"]) {
  $(id).addEventListener("change", queueRender);
}
$("filter-reset").addEventListener("click", () => {
  $("filter-from").value = "";
  $("filter-to").value = "";
  queueRender();
});
window.addEventListener("resize", () => {
  for (const [id, chart] of Object.entries(charts)) chart.setSize({ width: chartWidth(id), height: CHARTS[id].height });
});
render();
connect();
