// The dashboard page. Every figure of the selected range (totals, the
// change from the period before, charts, breakdowns) is the server's answer
// from its history; the live windows of the last hour come by server-sent
// updates, which also tell the page to ask again. Every figure is computed
// from integer counters (spend in micro-units); data-driven text is only
// ever set with textContent, never parsed as HTML.
"use strict";

const windows = new Map(); // "start|campaign|channel" -> a live window
let source = { connected: false, lag: null };
const fmtLag = (lag) => (lag === null || lag === undefined ? "…" : fmtInt(lag));
let live = false;
let renderQueued = false;
// The server's answers for the selection `answers.query`.
let answers = { query: null, summary: null, latest: null, campaigns: [], channels: [] };
let pacing = [];
let alerts = [];
let wanted = null;
let busy = false;
let asked = 0;
let took = 0;
// Counts the server's updates: each one asks for the figures again.
let updates = 0;
const answerKey = (s, latest) => JSON.stringify([s, latest, updates, chartBucket(s)]);

const $ = (id) => document.getElementById(id);
const key = (w) => `${w.window_start}|${w.campaign}|${w.channel}`;
// A window only grows, one pane at a time: keep whichever copy counted more,
// whatever order the snapshot and the updates arrive in.
function keep(w) {
  const old = windows.get(key(w));
  if (!old || old.panes <= w.panes) windows.set(key(w), w);
}
const HOUR = 3600000;
const fmtInt = (n) => Number(n).toLocaleString("en-US");
const fmtMoney = (micros) => (micros / 1e6).toLocaleString("en-US", { style: "currency", currency: "USD" });
const fmtRatio = (r) => r.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const fmtPct = (r) => (r * 100).toLocaleString("en-US", { maximumFractionDigits: 2 }) + "%";
const fmtTime = (ms) => new Date(ms).toISOString().slice(0, 16).replace("T", " ");
const fmtDay = (ms) => new Date(ms).toISOString().slice(0, 10);

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
// Each card: its id, label, value, and the field of the server's `change`.
function kpis(t, union) {
  return [
    ["impressions", "Impressions", fmtInt(t.impressions), "impressions"],
    ["clicks", "Clicks", fmtInt(t.clicks), "clicks"],
    ["conversions", "Conversions", fmtInt(t.conversions), "conversions"],
    ["spend", "Spend", fmtMoney(t.spend_micros), "spend"],
    ["cpc", "CPC", fmtRatio(ratio(t.spend_micros / 1e6, t.clicks)), "CPC"],
    ["cpa", "CPA", fmtRatio(ratio(t.spend_micros / 1e6, t.conversions)), "CPA"],
    ["ctr", "CTR", fmtPct(ratio(t.clicks, t.impressions)), "CTR"],
    ["cvr", "CVR", fmtPct(ratio(t.conversions, t.clicks)), "CVR"],
    ["cpm", "CPM", fmtRatio(ratio(t.spend_micros / 1e3, t.impressions)), "CPM"],
    ["revenue", "Revenue", fmtMoney(t.revenue_micros), "revenue"],
    ["roas", "ROAS", fmtRatio(ratio(t.revenue_micros, t.spend_micros)), "ROAS"],
    ["aov", "AOV", fmtRatio(ratio(t.revenue_micros / 1e6, t.conversions)), "AOV"],
    ["reach", "Reach", fmtReach(union), "reach"],
    ["frequency", "Frequency", fmtFrequency(t, union), "frequency"],
  ];
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

// A change from the period before, as Ads Manager shows it: +12.5%.
function fmtChange(share) {
  if (share === null || share === undefined) return "–";
  const sign = share > 0 ? "+" : "";
  return `${sign}${(share * 100).toLocaleString("en-US", { maximumFractionDigits: 1 })}%`;
}

function renderCards(container, prefix, totals, union, change) {
  container.replaceChildren(
    ...kpis(totals, union).map(([id, label, value, field]) => {
      const card = el("div", undefined, "card");
      card.append(el("div", label, "label"));
      const v = el("div", value, "value");
      v.id = `${prefix}-${id}`;
      card.append(v);
      if (change) {
        const share = change[field];
        const c = el("div", fmtChange(share), share > 0 ? "change up" : share < 0 ? "change down" : "change");
        c.id = `${prefix}-${id}-change`;
        card.append(c);
      }
      return card;
    })
  );
}

function selection() {
  const preset = $("range-preset").value;
  $("custom-range").hidden = preset !== "custom";
  return {
    campaign: $("filter-campaign").value,
    channel: $("filter-channel").value,
    preset: preset === "custom" ? null : preset,
    from: preset === "custom" && $("filter-from").value ? $("filter-from").value : null,
    to: preset === "custom" && $("filter-to").value ? $("filter-to").value : null,
  };
}

// The time zone the account's days are in (the dashboard's --pacing-tz).
const zone = () => source.time_zone || "UTC";

// Buckets of the charts: hours for a day or a week, days for a month; for
// all history or a custom range, by the span of the last answer.
function chartBucket(s) {
  if (["today", "yesterday", "last_7d"].includes(s.preset)) return "1h";
  if (["last_30d", "this_month", "last_month"].includes(s.preset)) return "1d";
  const last = answers.summary;
  const span = last && last.from !== null ? last.to - last.from : Infinity;
  return span <= 6 * HOUR ? "1m" : span <= 14 * 24 * HOUR ? "1h" : "1d";
}
const bucketName = { "1m": "minute", "1h": "hour", "1d": "day" };

// The selection as the API's query string.
function query(s, extra) {
  const q = new URLSearchParams(extra);
  if (s.campaign) q.set("campaign", s.campaign);
  if (s.channel) q.set("channel", s.channel);
  if (s.preset) q.set("date_preset", s.preset);
  if (s.from) q.set("from", s.from);
  if (s.to) q.set("to", s.to);
  q.set("tz", zone());
  return q;
}

// Asks the server for the selection's figures: at most once a second, and
// less often when answers take long (a month of many keys).
async function refresh() {
  if (busy || wanted === null) return;
  const wait = asked + Math.max(1000, 5 * took) - Date.now();
  if (wait > 0) {
    busy = true;
    setTimeout(() => { busy = false; refresh(); }, wait);
    return;
  }
  asked = Date.now();
  const want = wanted;
  wanted = null;
  busy = true;
  try {
    const get = async (q) => {
      const response = await fetch(`/api/${q}`);
      const body = await response.json();
      if (!response.ok) throw new Error(body.error || response.statusText);
      return body;
    };
    const s = want.selection;
    const latest = want.latest === null ? null
      : await get(`summary?${new URLSearchParams({ from: want.latest, to: want.latest, ...(s.campaign ? { campaign: s.campaign } : {}), ...(s.channel ? { channel: s.channel } : {}) })}`);
    const [summary, campaigns, channels, paced, active] = await Promise.all([
      get(`summary?${query(s, { bucket: chartBucket(s), compare: "previous" })}`),
      get(`top?${query(s, { dimension: "campaign", n: 10000 })}`),
      get(`top?${query(s, { dimension: "channel", n: 10000 })}`),
      get("pacing"),
      get("alerts"),
    ]);
    pacing = paced;
    alerts = active;
    answers = { query: want.key, summary, latest, campaigns, channels, error: null };
    took = Date.now() - asked;
    queueRender();
  } catch (e) {
    answers = { ...answers, error: String(e.message || e) };
    wanted = wanted || want;
    queueRender();
  } finally {
    busy = false;
    refresh();
  }
}

function want(s, latest) {
  const key = answerKey(s, latest);
  if (answers.query === key || (wanted && wanted.key === key)) return;
  wanted = { selection: s, latest, key };
  refresh();
}

function matches(w, s) {
  return (!s.campaign || w.campaign === s.campaign) && (!s.channel || w.channel === s.channel);
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

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) tr.append(c instanceof Node ? c : el("td", c));
  return tr;
}

function render() {
  renderQueued = false;
  // Live windows older than an hour before the newest are the history's.
  const newest = Math.max(0, ...[...windows.values()].map((w) => w.window_start));
  for (const [k, w] of windows) if (w.window_start < newest - HOUR) windows.delete(k);
  const hot = [...windows.values()];
  fillSelect($("filter-campaign"), [...new Set([...hot.map((w) => w.campaign), ...answers.campaigns.map((r) => r.campaign)])].sort());
  fillSelect($("filter-channel"), [...new Set([...hot.map((w) => w.channel), ...answers.channels.map((r) => r.channel)])].sort());
  const s = selection();
  const chosen = hot.filter((w) => matches(w, s)).sort((a, b) => a.window_start - b.window_start);
  const latestStart = chosen.length ? chosen[chosen.length - 1].window_start : null;
  want(s, latestStart);
  for (const [id, format] of [["export-csv", "csv"], ["export-parquet", "parquet"]]) {
    $(id).href = `/api/export?${query(s, { bucket: chartBucket(s), format })}`;
  }

  const summary = answers.summary;
  const fresh = answers.query === answerKey(s, latestStart);
  if (summary) {
    renderCards($("kpi-range"), "kpi-range", summary, summary, summary.change);
    const period = summary.period || {};
    const shown = period.from !== null && period.from !== undefined
      ? `${fmtDay(period.from)} – ${fmtDay(period.to)}` : summary.windows ? `${fmtTime(summary.from)} – ${fmtTime(summary.to)}` : "no windows yet";
    $("range-windows").textContent = `${fmtInt(summary.windows)} windows, ${shown} (${zone()})${fresh ? "" : " …"}`;
    const before = summary.previous && summary.previous.period;
    $("range-compared").textContent = answers.error ? answers.error
      : before ? `changes compared with ${fmtDay(before.from)} – ${fmtDay(before.to)}` : "";
  }

  const latest = chosen.filter((w) => w.window_start === latestStart);
  const latestTotals = latest.reduce(add, emptyTotals());
  const same = (u, t) => u && u.impressions === t.impressions ? u : null;
  renderCards($("kpi-latest"), "kpi-latest", latestTotals, same(answers.latest, latestTotals));
  $("latest-label").textContent = latestStart === null ? "" : `${fmtTime(latestStart)} UTC${latest.every((w) => w.final) ? ", final" : ", open"}`;

  const buckets = (summary && summary.buckets) || [];
  $("chart-bucket").textContent = `(by ${bucketName[chartBucket(s)]}, ${zone()})`;
  const xs = buckets.map((b) => b.window_start / 1000);
  draw("chart", [xs, buckets.map((b) => b.impressions), buckets.map((b) => b.clicks),
    buckets.map((b) => b.conversions), buckets.map((b) => b.spend)]);
  draw("reach-chart", [xs, buckets.map((b) => b.reach), buckets.map((b) => b.frequency),
    buckets.map((b) => b.revenue), buckets.map((b) => b.ROAS)]);

  $("by-campaign").tBodies[0].replaceChildren(...answers.campaigns.map((r) => {
    // Exact in micro-units, like the server's flag.
    const target = r.target_cpa_micros === null || r.target_cpa_micros === undefined ? null : r.target_cpa_micros;
    const over = target !== null && r.conversions > 0 && r.spend_micros > target * r.conversions;
    const cpaCell = el("td", fmtRatio(r.CPA), over ? "over" : undefined);
    if (over) cpaCell.append(el("span", "over target", "tag late"));
    return row([r.campaign_name ? `${r.campaign_name} (${r.campaign})` : r.campaign, fmtInt(r.impressions), fmtInt(r.reach),
      fmtInt(r.clicks), fmtInt(r.conversions), fmtMoney(r.spend_micros), fmtMoney(r.revenue_micros), fmtRatio(r.ROAS),
      cpaCell, target === null ? "–" : fmtRatio(target / 1e6)]);
  }));
  $("by-channel").tBodies[0].replaceChildren(...answers.channels.map((r) => row([r.channel, fmtInt(r.impressions),
    fmtInt(r.reach), fmtInt(r.clicks), fmtInt(r.conversions), fmtMoney(r.spend_micros), fmtMoney(r.revenue_micros),
    fmtRatio(r.ROAS), fmtRatio(r.CPC), fmtPct(r.CTR)])));

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
    // Where an operator looks during a swap: which version runs now.
    const running = source.version ? ` · transform ${source.version}` : "";
    const dead = source.dlq && source.dlq.total > 0 ? ` · ${fmtInt(source.dlq.total)} dead letters` : "";
    c.textContent = `live · lag ${fmtLag(source.lag)}${running}${dead}`;
  }
  const version = source.version ? ` · transform version ${source.version} running` : "";
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

// The live windows: the last hour before the merge's "now".
async function loadAll() {
  const from = source.now === null || source.now === undefined ? "" : `?from=${source.now - HOUR}`;
  const response = await fetch(`/api/windows${from}`);
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
    updates += 1;
    queueRender();
  });
  events.addEventListener("resync", loadAll);
  events.onerror = () => {
    live = false;
    renderConnection();
  };
}

for (const id of ["range-preset", "filter-campaign", "filter-channel", "filter-from", "filter-to"]) {
  $(id).addEventListener("change", queueRender);
}
window.addEventListener("resize", () => {
  for (const [id, chart] of Object.entries(charts)) chart.setSize({ width: chartWidth(id), height: CHARTS[id].height });
});
render();
connect();
