// ragpulse dashboard: plain JavaScript, no dependency, no build step. It reads
// /api/v1/analytics/* with the admin token (Authorization: Bearer), follows
// the live feed on /api/v1/ws (?token=, the only way a browser can send one
// there) and renders every metric into the sections of index.html. Every
// number shown sits in an element with data-field so the browser test can read
// it back; every section carries data-state (loading, ok, empty, degraded,
// error) and data-stale while the figures shown are not those of its controls.
"use strict";

(function () {
  const TOKEN_KEY = "ragpulse.adminToken";
  // /advanced's defaults: the live feed's snapshots are computed with these.
  const DEFAULTS = { assistant_id: "", ttft_hours: "24", cache_hours: "24", cost_hours: "24", step_days: "7", trending_limit: "10" };
  const PARAMS = ["assistant_id", "ttft_hours", "cache_hours", "cost_hours", "step_days", "trending_limit"];
  const FETCH_TIMEOUT_MS = 15000;
  const RETRY_AFTER_ERROR_MS = 10000;
  const MAX_BACKOFF_MS = 30000;
  // Extra reads (charts, cold documents) follow the live feed at most this often.
  const EXTRAS_EVERY_MS = 2000;
  const SVG = "http://www.w3.org/2000/svg";
  // TTFT colour thresholds in seconds: [good below, warning below], else bad.
  const TTFT_THRESHOLDS = { p50: [1.0, 2.5], p95: [2.5, 5.0], p99: [4.0, 8.0] };
  const ADVANCED_SECTIONS = ["ttft", "cache", "cost", "rerank", "steps", "trending", "diversity", "costs", "sessions", "users", "freshness", "utilization", "sync"];
  const EXTRA_SECTIONS = ["requests-chart", "ttft-chart", "cold"];
  // The sections whose figures each control changes: marked stale until they arrive.
  const FEEDS = {
    assistant_id: ADVANCED_SECTIONS.concat(EXTRA_SECTIONS).filter((x) => x !== "freshness" && x !== "sync"),
    ttft_hours: ["ttft", "requests-chart", "ttft-chart"],
    cache_hours: ["cache", "rerank"],
    cost_hours: ["cost", "costs"],
    step_days: ["steps", "sessions", "sync"],
    trending_limit: ["trending"],
  };
  // The API's session buckets, said without the overlap of their wire labels
  // ("Power User (5+)" counts sessions of 6 questions or more).
  const SESSION_LABELS = {
    "Single Question": "Single question",
    "Normal (2-5)": "Normal (2–5 questions)",
    "Power User (5+)": "Power user (6+ questions)",
  };
  // The forms of a UUID the server accepts (hyphenated, simple, braced, URN).
  const UUID_RE = /^(urn:uuid:)?\{?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\}?$/i;

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  let memoryToken = null;
  let sequence = 0;
  const applied = { advanced: 0, series: 0, cold: 0 };
  let ws = null;
  let wsScopeConfirmed = false;
  let wasOffline = false;
  let backoffMs = 1000;
  let reconnectTimer = null;
  let countdownTimer = null;
  let retryTimer = null;
  let extrasTimer = null;
  let extrasLast = 0;
  let refreshTimer = null;
  let firstRenderDone = false;
  let liveUpdates = 0;
  let stopped = true;
  let lastUpdate = 0;
  let lastSeries = null;
  let lastTopics = null;
  const assistantNames = new Map();

  // ---------------------------------------------------------------- token --

  function storedToken() {
    try {
      return localStorage.getItem(TOKEN_KEY) || memoryToken;
    } catch (_) {
      return memoryToken;
    }
  }

  function storeToken(token) {
    memoryToken = token;
    try {
      if (token) localStorage.setItem(TOKEN_KEY, token);
      else localStorage.removeItem(TOKEN_KEY);
    } catch (_) {
      // Storage disabled: the token lives as long as the page.
    }
  }

  // ----------------------------------------------------------- formatting --
  // One format per kind of number, in the reader's locale. The browser test
  // formats the API's JSON with the same rules (in en-US), so keep these few
  // functions the only way numbers reach the page.

  const numberFormats = new Map();
  function numberFormat(digits, currency) {
    const key = digits + (currency ? "$" : "");
    if (!numberFormats.has(key)) {
      const options = { minimumFractionDigits: digits, maximumFractionDigits: digits };
      if (currency) Object.assign(options, { style: "currency", currency: "USD" });
      numberFormats.set(key, new Intl.NumberFormat(undefined, options));
    }
    return numberFormats.get(key);
  }
  function fmtFixed(x, d) {
    return numberFormat(d).format(x);
  }
  function fmtInt(n) {
    return fmtFixed(Math.round(n), 0);
  }
  function fmtDuration(seconds) {
    if (seconds < 1) return fmtInt(seconds * 1000) + " ms";
    return fmtFixed(seconds, 2) + " s";
  }
  // TTFT is read in seconds (its thresholds are in seconds): always "0.84 s".
  function fmtSeconds(x) {
    return fmtFixed(x, 2) + " s";
  }
  // Percentages as the API rounds them: two decimals, everywhere.
  function fmtPct(x) {
    return fmtFixed(x, 2) + "%";
  }
  // Scores and indices as the API rounds them: three decimals.
  function fmtScore(x) {
    return fmtFixed(x, 3);
  }
  function fmtSigned(x, d) {
    return (x >= 0 ? "+" : "") + fmtFixed(x, d);
  }
  // Costs shown together share one number of decimals: two, or as many as
  // give the smallest non-zero one two significant digits (six at most).
  const USD_STEPS = [0.1, 0.01, 0.001, 0.0001];
  function usdDigits(values) {
    const positive = values.filter((v) => v > 0);
    if (positive.length === 0) return 2;
    const least = Math.min(...positive);
    let digits = 2;
    for (const step of USD_STEPS) {
      if (least >= step) break;
      digits += 1;
    }
    return digits;
  }
  function fmtUsd(x, digits) {
    return numberFormat(digits, true).format(x);
  }
  function windowLabel(name, value) {
    const v = Number(value);
    if (name.endsWith("_days")) return v + " d";
    if (v % 24 === 0 && v >= 72) return v / 24 + " d";
    return v + " h";
  }
  // Times in the 24-hour clock, dates with the month's name: never 5/6.
  const CLOCK = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  const CLOCK_SECONDS = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  const DAY = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
  const FULL = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  function relative(iso) {
    const then = Date.parse(iso);
    if (Number.isNaN(then)) return iso;
    const s = Math.round((Date.now() - then) / 1000);
    if (s < 45) return "just now";
    if (s < 90) return "1 min ago";
    const m = Math.round(s / 60);
    if (m < 60) return m + " min ago";
    const h = Math.round(m / 60);
    if (h < 36) return h + " h ago";
    return Math.round(h / 24) + " d ago";
  }

  // ------------------------------------------------------------------ DOM --

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined) el.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  // A value the test reads back: text, or a <time> whose datetime is compared.
  function field(name, text, cls) {
    return h("span", { "data-field": name, class: cls }, text);
  }
  function timeField(name, iso, never) {
    if (!iso) return h("span", { "data-field": name, class: "muted" }, never || "never");
    return h("time", { "data-field": name, datetime: iso, title: FULL.format(Date.parse(iso)), "data-rel": "" }, relative(iso));
  }
  function bar(fraction, cls) {
    const pct = Math.max(0, Math.min(1, fraction)) * 100;
    const track = h("span", { class: "track", "aria-hidden": "true" });
    const fill = h("span", { class: "fill " + (cls || "") });
    // CSSOM, not a style attribute: the page's CSP forbids inline styles.
    fill.style.width = pct.toFixed(1) + "%";
    track.append(fill);
    return track;
  }
  // A table in a box that scrolls sideways when the table is wider than its
  // card (a phone); columns marked secondary are left out on a phone.
  function table(headers, rows, caption) {
    const cols = headers.map((x) => (typeof x === "string" ? { label: x } : x));
    const cls = (x, base) => [base, x.num ? "num" : null, x.secondary ? "secondary" : null].filter(Boolean).join(" ") || null;
    for (const row of rows) {
      Array.from(row.children).forEach((td, i) => {
        if (cols[i] && cols[i].secondary) td.classList.add("secondary");
      });
    }
    return h("div", { class: "scroll", role: "region", "aria-label": caption },
      h("table", {},
        h("caption", { class: "sr-only" }, caption),
        h("thead", {}, h("tr", {}, cols.map((x) => h("th", { scope: "col", class: cls(x) }, x.label)))),
        h("tbody", {}, rows)));
  }
  // A box that scrolls can be reached with the keyboard only when it does
  // scroll. Measured once per frame, after all the sections of an update.
  let scrollablesFrame = 0;
  function refreshScrollables() {
    if (!scrollablesFrame) scrollablesFrame = requestAnimationFrame(measureScrollables);
  }
  function measureScrollables() {
    scrollablesFrame = 0;
    for (const box of $$(".scroll")) {
      const scrolls = box.scrollWidth > box.clientWidth + 1 || box.scrollHeight > box.clientHeight + 1;
      if (scrolls) box.setAttribute("tabindex", "0");
      else box.removeAttribute("tabindex");
    }
  }

  const MESSAGES = {
    empty: "No data in this window.",
    degraded: "Metric degraded: the server could not compute it this time. It is retried on the next update.",
    error: "Could not load this metric",
  };

  function section(name) {
    return $(`[data-section="${name}"]`);
  }
  function markStale(names, how) {
    for (const name of names) {
      const sec = section(name);
      if (!sec || sec.dataset.state === "loading") continue;
      sec.dataset.stale = how || "";
      sec.setAttribute("aria-busy", "true");
    }
  }
  function fresh(sec) {
    delete sec.dataset.stale;
    sec.removeAttribute("aria-busy");
  }
  // Replaces a section's content, keeping what the reader had set: sideways
  // scroll, an opened table of values, the keyboard focus.
  function replaceBody(sec, node) {
    const body = $(".body", sec);
    const scrolls = $$(".scroll", body).map((el) => [el.scrollLeft, el.scrollTop]);
    const open = $$("details", body).map((d) => d.open);
    const focusable = (root) => $$("summary, [tabindex]", root);
    const focused = focusable(body).indexOf(document.activeElement);
    body.replaceChildren(node);
    $$(".scroll", body).forEach((el, i) => {
      if (scrolls[i]) [el.scrollLeft, el.scrollTop] = scrolls[i];
    });
    $$("details", body).forEach((d, i) => {
      if (open[i]) d.open = true;
    });
    refreshScrollables();
    if (focused >= 0 && focusable(body)[focused]) focusable(body)[focused].focus();
  }
  function showState(name, state, message) {
    const sec = section(name);
    if (!sec) return;
    sec.dataset.state = state;
    fresh(sec);
    replaceBody(sec, h("p", { class: "state " + state, "data-testid": "state-message" },
      state === "degraded" ? h("strong", {}, "⚠ ") : null, message || MESSAGES[state]));
    checkReady();
  }
  // Renders a metric's value into its section, or its explicit empty or degraded state.
  function fill(name, value, degraded, render, emptyMessage) {
    if (degraded) return showState(name, "degraded");
    const empty = value === null || value === undefined || (Array.isArray(value) && value.length === 0);
    if (empty) return showState(name, "empty", emptyMessage);
    const sec = section(name);
    sec.dataset.state = "ok";
    fresh(sec);
    replaceBody(sec, render(value, sec));
    checkReady();
  }

  // --------------------------------------------------------------- render --

  function ttftClass(which, seconds) {
    const [good, warn] = TTFT_THRESHOLDS[which];
    return seconds < good ? "good" : seconds < warn ? "warn" : "bad";
  }
  const VERDICT = { good: "fast", warn: "slow", bad: "too slow" };

  function renderTtft(t) {
    return h("div", { class: "trio" }, ["p50", "p95", "p99"].map((q) => {
      const cls = ttftClass(q, t[q]);
      return h("div", { class: "metric " + cls },
        h("span", { class: "label" }, q),
        field(q, fmtSeconds(t[q]), "value"),
        h("span", { class: "verdict", title: `thresholds: under ${TTFT_THRESHOLDS[q][0]} s fast, under ${TTFT_THRESHOLDS[q][1]} s slow` }, VERDICT[cls]));
    }));
  }

  function renderCache(c) {
    return h("div", {},
      h("div", { class: "big" }, field("rate", fmtPct(c.hit_rate), "value")),
      bar(c.hit_rate / 100, "accent"),
      h("p", { class: "sub" }, field("hits", fmtInt(c.cache_hits)), " of ", field("total", fmtInt(c.total_requests)), " requests served from cache"));
  }

  function renderCost(costs) {
    let total = 0;
    let tokens = 0;
    for (const c of costs) {
      total += c.estimated_cost_usd;
      tokens += c.total_tokens;
    }
    return h("div", {},
      h("div", { class: "big" }, field("total", fmtUsd(total, usdDigits([total])), "value")),
      h("p", { class: "sub" }, field("tokens", fmtInt(tokens)), " tokens across ", String(costs.length), costs.length === 1 ? " assistant" : " assistants"));
  }

  function renderRerank(r) {
    const cls = r.avg_score_improvement > 0 ? "good" : r.avg_score_improvement < 0 ? "bad" : "";
    return h("div", {},
      h("div", { class: "big " + cls }, field("improvement", fmtSigned(r.avg_score_improvement, 3), "value"),
        h("span", { class: "unit", title: "points of the reranker's relevance score" }, " pts")),
      h("p", { class: "sub" }, "mean relevance-score gain over ", field("count", fmtInt(r.reranking_enabled_count)), " reranked requests"),
      h("p", { class: "sub" }, "mean position change ",
        field("position", r.avg_position_change === null ? "—" : fmtFixed(r.avg_position_change, 2))));
  }

  function renderSteps(steps) {
    const max = Math.max(...steps.map((x) => x.avg_duration), 1e-9);
    return h("ol", { class: "bars" }, steps.map((x) => h("li", { "data-row": "" },
      h("div", { class: "bar-head" },
        field("name", x.step_name, "name"),
        field("duration", fmtDuration(x.avg_duration), "num")),
      bar(x.avg_duration / max, "accent"),
      h("div", { class: "bar-foot" },
        field("count", fmtInt(x.step_count)), " runs",
        x.avg_tokens ? h("span", {}, " · tokens ",
          field("tokens", `in ${fmtInt(x.avg_tokens.input)} · out ${fmtInt(x.avg_tokens.output)}`)) : null))));
  }

  function assistantName(id) {
    return assistantNames.get(id) || id;
  }

  function renderTrending(topics) {
    lastTopics = topics;
    // Under "All assistants" the same question can be listed once per
    // assistant (topics are never merged): each row says whose it is.
    const everyAssistant = params().assistant_id === "";
    return table(
      ["#", "Question", { label: "Asked", num: true }, { label: "Variations", num: true, secondary: true }, { label: "Last asked", secondary: true }],
      topics.map((t, i) => h("tr", { "data-row": "" },
        h("td", { class: "rank" }, field("rank", String(i + 1))),
        h("td", { class: "question" }, field("question", t.canonical_text),
          t.topic !== t.canonical_text ? h("span", { class: "tag" }, field("topic", t.topic)) : null,
          everyAssistant ? field("assistant", assistantName(t.assistant_id), "line2") : null),
        h("td", { class: "num" }, field("frequency", fmtInt(t.frequency))),
        h("td", { class: "num" }, field("variations", fmtInt(t.variation_count))),
        h("td", { class: "whole" }, timeField("last_asked", t.last_asked)))),
      "Trending questions");
  }

  function renderDiversity(d) {
    return h("div", {},
      h("div", { class: "big" }, field("score", fmtScore(d.diversity_score), "value"), h("span", { class: "unit" }, " / 1")),
      bar(d.diversity_score, "accent"),
      h("p", { class: "sub" }, field("topics", fmtInt(d.total_topics)), " topics; the largest holds ",
        field("dominant", fmtPct(d.dominant_topic_share)), " of questions"),
      h("p", { class: "hint" }, "1 − Herfindahl index: 0 means one topic, near 1 many evenly asked topics."));
  }

  function renderCosts(costs) {
    const max = Math.max(...costs.map((c) => c.estimated_cost_usd), 1e-12);
    const digits = usdDigits(costs.map((c) => c.estimated_cost_usd));
    return table(
      ["Assistant", { label: "Tokens", num: true }, { label: "In / out", num: true, secondary: true }, { label: "Cost", num: true }],
      costs.map((c) => h("tr", { "data-row": "" },
        h("td", {}, field("assistant", c.assistant_name, "name"), bar(c.estimated_cost_usd / max, "accent")),
        h("td", { class: "num" }, field("tokens", fmtInt(c.total_tokens))),
        h("td", { class: "num muted" }, field("input", fmtInt(c.input_tokens)), " / ", field("output", fmtInt(c.output_tokens))),
        h("td", { class: "num" }, field("cost", fmtUsd(c.estimated_cost_usd, digits))))),
      "Cost by assistant");
  }

  function renderUsers(users) {
    return table(
      ["User", { label: "Requests", num: true, secondary: true }, { label: "Tokens", num: true }, { label: "Last active", secondary: true }],
      users.map((u) => h("tr", { "data-row": "" },
        h("td", {}, field("name", u.full_name || u.email || u.user_id, "name"),
          field("email", u.email, "line2 whole")),
        h("td", { class: "num" }, field("interactions", fmtInt(u.interaction_count))),
        h("td", { class: "num" }, field("tokens", fmtInt(u.total_tokens))),
        h("td", { class: "whole" }, timeField("last_active", u.last_active)))),
      "Top users by tokens");
  }

  function renderShares(rows, label, cls) {
    return h("ul", { class: "shares" }, rows.map((r, i) => h("li", { "data-row": "" },
      h("div", { class: "bar-head" },
        h("span", { class: "name", title: r.title || null }, field(label, r.label)),
        h("span", { class: "num" }, field("count", fmtInt(r.count)), " · ", field("percentage", fmtPct(r.percentage)))),
      bar(r.percentage / 100, cls[i] || "accent"))));
  }

  function renderSessions(rows) {
    return renderShares(rows.map((r) => ({
      label: SESSION_LABELS[r.session_type] || r.session_type,
      title: r.session_type,
      count: r.session_count,
      percentage: r.percentage,
    })), "type", ["accent", "accent2", "accent3"]);
  }

  function renderFreshness(rows) {
    return renderShares(rows.map((r) => ({ label: r.freshness_category, count: r.doc_count, percentage: r.percentage })),
      "category", ["good-fill", "warn-fill", "bad-fill"]);
  }

  function renderUtilization(docs) {
    return table(
      ["Document", { label: "Connector", secondary: true }, { label: "Retrievals", num: true }, "Last retrieved"],
      docs.slice(0, 10).map((d) => h("tr", { "data-row": "" },
        h("td", { class: "whole" }, field("file", d.file_name)),
        h("td", { class: "muted" }, field("connector", d.connector_name)),
        h("td", { class: "num" }, field("count", fmtInt(d.retrieval_count))),
        h("td", { class: "whole" }, timeField("last_retrieved", d.last_retrieved)))),
      "Most retrieved documents");
  }

  function renderCold(docs) {
    return table(
      ["Document", { label: "Connector", secondary: true }, "Last retrieved"],
      docs.map((d) => h("tr", { "data-row": "" },
        h("td", { class: "whole" }, field("file", d.file_name)),
        h("td", { class: "muted" }, field("connector", d.connector_name)),
        h("td", { class: "whole" }, timeField("last_retrieved", d.last_retrieved)))),
      "Documents nobody retrieved");
  }

  function renderSync(rates) {
    // Partial syncs are neither OK nor failed: their column makes the row add up.
    return table(
      ["Connector", { label: "Success", num: true }, { label: "OK", num: true, secondary: true }, { label: "Partial", num: true, secondary: true }, { label: "Failed", num: true }, { label: "Syncs", num: true }, { label: "Mean duration", num: true, secondary: true }],
      rates.map((r) => {
        const cls = r.total_syncs === 0 ? "" : r.success_rate >= 95 ? "good" : r.success_rate >= 80 ? "warn" : "bad";
        return h("tr", { "data-row": "" },
          h("td", {}, field("connector", r.connector_name, "name")),
          h("td", { class: "num " + cls }, field("rate", fmtPct(r.success_rate))),
          h("td", { class: "num" }, field("ok", fmtInt(r.successful_syncs))),
          h("td", { class: "num" }, field("partial", fmtInt(r.total_syncs - r.successful_syncs - r.failed_syncs))),
          h("td", { class: "num" }, field("failed", fmtInt(r.failed_syncs))),
          h("td", { class: "num" }, field("total", fmtInt(r.total_syncs))),
          h("td", { class: "num" }, field("duration", r.avg_sync_duration === null ? "—" : fmtDuration(r.avg_sync_duration))));
      }),
      "Connector sync reliability");
  }

  // --------------------------------------------------------------- charts --
  // Drawn at the card's width in CSS pixels, so text keeps its size on a
  // phone. Every axis label sits exactly on the gridline or tick mark of the
  // value it says: round values (1, 2 or 5 × 10^k) chosen before drawing.

  const CHART_H = 220;
  const PAD = { l: 50, r: 46, t: 12, b: 30 };
  const LABEL_MINUTES = [5, 10, 15, 30, 60, 120, 180, 240, 360, 720, 1440, 2880, 4320, 10080];

  // Round gridline values from 0 to at least `max`, at most `most` steps.
  function niceTicks(max, most, integer) {
    const top = max > 0 ? max : 1;
    const raw = top / most;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    let step = [1, 2, 5, 10].map((m) => m * p).find((x) => x >= raw * (1 - 1e-9));
    if (integer) step = Math.max(1, Math.round(step));
    const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    const n = Math.max(1, Math.ceil(top / step - 1e-9));
    const values = [];
    for (let i = 0; i <= n; i++) values.push(Number((i * step).toFixed(decimals)));
    return { values, top: values[n], decimals };
  }

  function frame(series, width, label) {
    const w = Math.max(260, Math.floor(width));
    const plot = { l: PAD.l, r: w - PAD.r, t: PAD.t, b: CHART_H - PAD.b };
    const svg = s("svg", { width: w, height: CHART_H, viewBox: `0 0 ${w} ${CHART_H}`, role: "img", class: "chart", "aria-label": label });
    const n = series.buckets.length;
    const bw = (plot.r - plot.l) / Math.max(n, 1);
    return { svg, plot, bw, x: (i) => plot.l + bw * i, mid: (i) => plot.l + bw * (i + 0.5) };
  }

  // The left axis: a gridline at every tick value, labelled with that value.
  function leftAxis(c, ticks, fmt) {
    const y = (v) => c.plot.b - (v / ticks.top) * (c.plot.b - c.plot.t);
    for (const v of ticks.values) {
      c.svg.append(s("line", { x1: c.plot.l, x2: c.plot.r, y1: y(v), y2: y(v), class: "gridline" }));
      c.svg.append(s("text", { x: c.plot.l - 6, y: y(v), dy: "0.32em", class: "tick y-tick", "text-anchor": "end", "data-axis": "left" }, fmt(v, ticks.decimals)));
    }
    return y;
  }

  // The right axis of percentages, with its own tick marks.
  function rightAxis(c) {
    const y = (p) => c.plot.b - (p / 100) * (c.plot.b - c.plot.t);
    c.svg.append(s("line", { x1: c.plot.r, x2: c.plot.r, y1: c.plot.t, y2: c.plot.b, class: "axis" }));
    for (const p of [0, 25, 50, 75, 100]) {
      c.svg.append(s("line", { x1: c.plot.r, x2: c.plot.r + 4, y1: y(p), y2: y(p), class: "axis tick-mark" }));
      c.svg.append(s("text", { x: c.plot.r + 7, y: y(p), dy: "0.32em", class: "tick y-tick", "data-axis": "right" }, p + "%"));
    }
    return y;
  }

  function onBoundary(t, minutes) {
    const d = new Date(t);
    if (d.getSeconds() !== 0 || d.getMilliseconds() !== 0) return false;
    const ofDay = d.getHours() * 60 + d.getMinutes();
    if (minutes < 1440) return ofDay % minutes === 0;
    const localDay = Math.floor((t - d.getTimezoneOffset() * 60000) / 86400000);
    return ofDay === 0 && localDay % (minutes / 1440) === 0;
  }

  // The time axis: labels at the start of buckets on round times of the
  // reader's clock (every 3 h, at midnight…), each over a tick mark.
  function timeAxis(c, series) {
    const times = series.buckets.map((b) => Date.parse(b.bucket_start));
    const withDate = series.hours > 24;
    const most = Math.max(2, Math.floor((c.plot.r - c.plot.l) / (withDate ? 70 : 56)));
    const span = series.hours * 60;
    const every = LABEL_MINUTES.find((m) => m >= series.bucket_minutes && span / m <= most) || LABEL_MINUTES[LABEL_MINUTES.length - 1];
    let picks = times.map((_, i) => i).filter((i) => onBoundary(times[i], every));
    let exact = true;
    if (picks.length < 2) {
      // Buckets that never start on a round local time (an odd time zone): every k-th.
      const k = Math.ceil(times.length / most);
      picks = times.map((_, i) => i).filter((i) => i % k === 0);
      exact = false;
    }
    c.svg.append(s("line", { x1: c.plot.l, x2: c.plot.r, y1: c.plot.b, y2: c.plot.b, class: "axis" }));
    for (const i of picks) {
      const d = new Date(times[i]);
      const midnight = d.getHours() === 0 && d.getMinutes() === 0;
      const text = withDate && midnight && exact ? DAY.format(d) : withDate && !exact ? `${DAY.format(d)} ${CLOCK.format(d)}` : CLOCK.format(d);
      c.svg.append(s("line", { x1: c.x(i), x2: c.x(i), y1: c.plot.b, y2: c.plot.b + 4, class: "axis tick-mark" }));
      c.svg.append(s("text", { x: c.x(i), y: c.plot.b + 16, class: "tick x-tick", "text-anchor": "middle", "data-time": series.buckets[i].bucket_start }, text));
    }
  }

  // Buckets that reach outside the window hold only part of a bucket's traffic.
  function partial(series, b) {
    const start = Date.parse(b.bucket_start);
    return start < Date.parse(series.from) || start + series.bucket_minutes * 60000 > Date.parse(series.to);
  }

  // The per-bucket values as a table: readable without a pointer.
  function valuesTable(series, columns, caption) {
    return h("details", { class: "values" },
      h("summary", {}, "Values per bucket"),
      table(columns.map((c) => ({ label: c[0], num: c.length > 2 })),
        series.buckets.map((b) => h("tr", {}, columns.map((c, i) => h("td", { class: i > 0 ? "num" : "whole" }, c[1](b))))),
        caption));
  }
  const bucketTime = (b) => FULL.format(Date.parse(b.bucket_start));

  function renderRequestsChart(series, sec) {
    const total = series.buckets.reduce((a, b) => a + b.count, 0);
    const peak = Math.max(...series.buckets.map((b) => b.count));
    const c = frame(series, chartWidth(sec), `Requests per ${series.bucket_minutes} minutes over the last ${series.hours} hours: ${fmtInt(total)} in all, at most ${fmtInt(peak)} in one bucket; the line is the cache hit rate.`);
    const ticks = niceTicks(peak, 5, true);
    const y = leftAxis(c, ticks, (v) => fmtInt(v));
    const yRate = rightAxis(c);
    timeAxis(c, series);
    const bars = s("g", { class: "bars-g" });
    const line = [];
    const dots = s("g", {});
    series.buckets.forEach((b, i) => {
      const label = `${CLOCK.format(Date.parse(b.bucket_start))}: ${fmtInt(b.count)} requests` +
        (b.cache_hit_rate === null ? "" : `, ${fmtPct(b.cache_hit_rate)} cache hits`);
      bars.append(s("rect", { x: c.x(i) + c.bw * 0.12, y: y(b.count), width: Math.max(c.bw * 0.76, 1), height: c.plot.b - y(b.count),
        class: partial(series, b) ? "bar partial" : "bar", "data-value": b.count, "data-axis": "left", "data-start": b.bucket_start }, s("title", {}, label)));
      if (b.cache_hit_rate === null) {
        line.push(null);
        return;
      }
      line.push([c.mid(i), yRate(b.cache_hit_rate)]);
      dots.append(s("circle", { cx: c.mid(i), cy: yRate(b.cache_hit_rate), r: 2, class: "pt hit", "data-value": b.cache_hit_rate, "data-axis": "right" }));
    });
    c.svg.append(bars);
    for (const d of paths(line)) c.svg.append(s("path", { d, class: "line hit" }));
    c.svg.append(dots);
    const partialNote = series.buckets.some((b) => partial(series, b)) ? "; the paler first and last are partly outside the window" : "";
    return h("figure", {},
      c.svg,
      h("figcaption", {},
        h("span", { class: "key bar-key" }), "requests ", h("span", { class: "key hit-key" }), "cache hit rate · ",
        field("total", fmtInt(total)), " requests in ", field("buckets", String(series.buckets.length)),
        ` buckets of ${series.bucket_minutes} min${partialNote}`),
      valuesTable(series, [["Bucket start", bucketTime], ["Requests", (b) => fmtInt(b.count), true],
        ["Cache hit rate", (b) => (b.cache_hit_rate === null ? "—" : fmtPct(b.cache_hit_rate)), true]], "Requests and cache hit rate per bucket"));
  }

  // Polyline segments that break where a value is missing (null, never 0).
  function paths(points) {
    const out = [];
    let cur = "";
    for (const p of points) {
      if (p === null) {
        if (cur) out.push(cur);
        cur = "";
        continue;
      }
      cur += (cur ? " L" : "M") + p[0].toFixed(2) + " " + p[1].toFixed(2);
    }
    if (cur) out.push(cur);
    // A lone point draws nothing as a path: give it a tiny tick.
    return out.map((d) => (d.includes("L") ? d : d + " l0.1 0"));
  }

  function renderTtftChart(series, sec) {
    const known = series.buckets.filter((b) => b.ttft_p95 !== null);
    const peak = Math.max(...known.map((b) => b.ttft_p95));
    const c = frame(series, chartWidth(sec), `TTFT p50 and p95 per ${series.bucket_minutes} minutes over the last ${series.hours} hours; highest p95 ${fmtSeconds(peak)}.`);
    const ticks = niceTicks(peak, 5, false);
    const y = leftAxis(c, ticks, (v, d) => fmtFixed(v, d) + " s");
    timeAxis(c, series);
    for (const [key, cls] of [["ttft_p95", "p95"], ["ttft_p50", "p50"]]) {
      const pts = series.buckets.map((b, i) => (b[key] === null ? null : [c.mid(i), y(b[key])]));
      for (const d of paths(pts)) c.svg.append(s("path", { d, class: "line " + cls }));
      series.buckets.forEach((b, i) => {
        if (b[key] === null) return;
        c.svg.append(s("circle", { cx: c.mid(i), cy: y(b[key]), r: 2.5, class: "pt " + cls, "data-value": b[key], "data-axis": "left" },
          s("title", {}, `${CLOCK.format(Date.parse(b.bucket_start))}: ${cls} ${fmtSeconds(b[key])}`)));
      });
    }
    const ttft = (x) => (x === null ? "—" : fmtSeconds(x));
    return h("figure", {},
      c.svg,
      h("figcaption", {},
        h("span", { class: "key p50-key" }), "p50 ", h("span", { class: "key p95-key" }), "p95 · ",
        field("points", String(known.length)), " buckets with a TTFT; highest p95 ", field("peak", fmtSeconds(peak))),
      valuesTable(series, [["Bucket start", bucketTime], ["p50", (b) => ttft(b.ttft_p50), true], ["p95", (b) => ttft(b.ttft_p95), true]],
        "TTFT p50 and p95 per bucket"));
  }

  function chartWidth(sec) {
    const width = $(".body", sec).clientWidth;
    return width > 0 ? width : 600;
  }

  function renderSeries(series) {
    lastSeries = series;
    const any = series.buckets.some((b) => b.count > 0);
    fill("requests-chart", any ? series : null, false, renderRequestsChart);
    const ttft = series.buckets.some((b) => b.ttft_p50 !== null);
    fill("ttft-chart", ttft ? series : null, false, renderTtftChart);
  }

  function renderAdvanced(d) {
    const deg = new Set(d.degraded || []);
    fill("ttft", d.ttft_percentiles, deg.has("ttft_percentiles"), renderTtft);
    fill("cache", d.cache_metrics, deg.has("cache_metrics"), renderCache);
    fill("cost", d.assistant_costs, deg.has("assistant_costs"), renderCost);
    fill("rerank", d.reranking_impact, deg.has("reranking_impact"), renderRerank);
    fill("steps", d.step_breakdown, deg.has("step_breakdown"), renderSteps);
    fill("trending", d.trending_topics, deg.has("trending_topics"), renderTrending, "No questions asked yet.");
    fill("diversity", d.topic_diversity, deg.has("topic_diversity"), renderDiversity, "No questions asked yet.");
    fill("costs", d.assistant_costs, deg.has("assistant_costs"), renderCosts);
    fill("sessions", d.session_distribution, deg.has("session_distribution"), renderSessions);
    fill("users", d.user_stats, deg.has("user_stats"), renderUsers);
    fill("freshness", d.document_freshness, deg.has("document_freshness"), renderFreshness, "No documents registered.");
    fill("utilization", d.document_utilization, deg.has("document_utilization"), renderUtilization);
    fill("sync", d.connector_sync_rates, deg.has("connector_sync_rates"), renderSync, "No connectors registered.");
    document.body.dataset.generatedAt = d.generated_at;
    markUpdated();
  }

  // ---------------------------------------------------------------- state --

  function params() {
    const p = {};
    for (const name of PARAMS) p[name] = $("#" + name).value;
    return p;
  }
  function isDefaultWindow(p) {
    return PARAMS.every((k) => k === "assistant_id" || p[k] === DEFAULTS[k]);
  }
  function query(obj) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(obj)) if (v !== "" && v !== null && v !== undefined) q.set(k, v);
    const text = q.toString();
    return text ? "?" + text : "";
  }
  // The controls live in the address bar (never the token), so a view can be shared.
  function writeUrl(p) {
    const shown = {};
    for (const k of PARAMS) if (p[k] && p[k] !== DEFAULTS[k]) shown[k] = p[k];
    history.replaceState(null, "", location.pathname + query(shown) + location.hash);
  }
  function controlLabel(name) {
    const label = $("#" + name).closest("label");
    return label ? label.firstChild.textContent.trim() : name;
  }
  function optionLabel(name, value) {
    const option = $$("option", $("#" + name)).find((o) => o.value === value);
    return option ? option.textContent : value;
  }
  // Applies a shared link's controls. A window the selector does not offer is
  // not kept: it is named in the notice and left out of the address.
  function readUrl(url) {
    for (const name of PARAMS) {
      const v = url.searchParams.get(name);
      if (v === null || v === "") continue;
      const select = $("#" + name);
      if (name === "assistant_id") {
        // Checked by the server (its reason is shown) and against the list of assistants.
        if (!$$("option", select).some((o) => o.value === v)) select.append(h("option", { value: v }, v));
        select.value = v;
      } else if ($$("option", select).some((o) => o.value === v)) {
        select.value = v;
      } else {
        addNotice(`The link asked for ${controlLabel(name)} “${v}”, which is not one of the offered choices: showing ${optionLabel(name, DEFAULTS[name])}.`);
      }
    }
  }
  function setControl(name, value) {
    const select = $("#" + name);
    select.value = value;
    if (name === "assistant_id") {
      // Drop an option that only a refused link had put there.
      for (const o of $$("option", select)) if (o.value && !assistantNames.has(o.value) && o.value !== value) o.remove();
    }
  }
  function labelWindows(p) {
    for (const el of $$("[data-window]")) el.textContent = windowLabel(el.dataset.window, p[el.dataset.window]);
  }

  function markUpdated() {
    lastUpdate = Date.now();
    const el = $("#updated");
    el.dateTime = new Date(lastUpdate).toISOString();
    el.textContent = CLOCK_SECONDS.format(lastUpdate);
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  }

  function banner(text) {
    const el = $("#banner");
    el.hidden = !text;
    el.textContent = text || "";
  }
  // One notice about the link or the controls, its sentences gathered.
  function addNotice(text) {
    const el = $("#notice-text");
    if (el.textContent.includes(text)) return;
    el.textContent = el.textContent ? el.textContent + " " + text : text;
    $("#notice").hidden = false;
  }
  function clearNotice() {
    $("#notice-text").textContent = "";
    $("#notice").hidden = true;
  }

  class AuthError extends Error {}
  // The server answered that a request is wrong (4xx): retrying cannot help.
  class Refused extends Error {
    constructor(status, body) {
      const detail = body && body.detail;
      const fields = Array.isArray(detail)
        ? detail.map((d) => ({ name: Array.isArray(d.loc) ? String(d.loc[d.loc.length - 1]) : "", msg: String(d.msg || "") }))
        : [];
      super(fields.length ? fields.map((f) => f.msg).join("; ") : typeof detail === "string" ? detail : `the server answered ${status}`);
      this.fields = fields;
    }
  }

  async function api(path, token) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS);
    let res;
    try {
      res = await fetch(path, {
        headers: { Authorization: "Bearer " + (token || storedToken()), Accept: "application/json" },
        signal: controller.signal,
        cache: "no-store",
      });
    } catch (e) {
      throw new Error(e.name === "AbortError" ? `the server did not answer within ${FETCH_TIMEOUT_MS / 1000} s` : "server unreachable");
    } finally {
      clearTimeout(timer);
    }
    let body = null;
    try {
      body = await res.json();
    } catch (_) {}
    if (res.status === 401 || res.status === 403) {
      const detail = body && typeof body.detail === "string" ? ": " + body.detail : "";
      throw new AuthError(`the server refused the token (${res.status}${detail})`);
    }
    if (res.status >= 400 && res.status < 500) throw new Refused(res.status, body);
    if (!res.ok || body === null) throw new Error(`the server answered ${res.status}`);
    return body;
  }

  function failed(e, sections) {
    if (e instanceof AuthError) {
      logout(e.message);
      return;
    }
    if (e instanceof Refused) {
      refused(e);
      return;
    }
    for (const name of sections) {
      // Keep what is shown, marked as not updated; a section never loaded says why it is empty.
      if (section(name).dataset.state === "loading") showState(name, "error", `${MESSAGES.error}: ${e.message}.`);
      else if (section(name).dataset.stale !== undefined) markStale([name], "failed");
    }
    const since = lastUpdate ? ` The figures shown are from ${CLOCK_SECONDS.format(lastUpdate)};` : "";
    const what = e.message === "server unreachable" ? "Server unreachable." : `Could not load data: ${e.message}.`;
    banner(`${what}${since} retrying in ${RETRY_AFTER_ERROR_MS / 1000} s and as soon as the live feed is back.`);
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => loadAll(), RETRY_AFTER_ERROR_MS);
  }

  // The server refused a control (a link with a malformed assistant id): say
  // why once, fall back to its default, clean the address and load again. No
  // retry of the refused request.
  function refused(e) {
    const p = params();
    const named = e.fields.map((f) => f.name).filter((n) => PARAMS.includes(n) && p[n] !== DEFAULTS[n]);
    const reset = named.length ? named : PARAMS.filter((k) => p[k] !== DEFAULTS[k]);
    if (reset.length === 0) {
      banner(`The server refused the request: ${e.message}.`);
      return;
    }
    const asked = reset.map((k) => `${controlLabel(k)} “${p[k]}”`).join(", ");
    const shown = reset.map((k) => optionLabel(k, DEFAULTS[k])).join(", ");
    addNotice(`The link asked for ${asked}, which the server refused (${e.message}): showing ${shown}.`);
    for (const k of reset) setControl(k, DEFAULTS[k]);
    writeUrl(params());
    subscribe();
    markStale(PARAMS.flatMap((k) => FEEDS[k]));
    loadAll();
  }

  // An assistant id of the right form that the server does not know (no
  // registration, no interaction): nothing to show for it.
  function unknownAssistant(id) {
    addNotice(`The link asked for the assistant “${id}”, which this server does not know: showing all assistants.`);
    setControl("assistant_id", "");
    writeUrl(params());
    subscribe();
    markStale(FEEDS.assistant_id);
    loadAll();
  }

  // An answer is shown only if the controls are still those it was asked for,
  // and if nothing newer of its kind (a later answer or a live snapshot) is
  // shown already. Same-control answers never cancel each other, so a busy
  // live feed cannot starve them.
  function ticket() {
    sequence += 1;
    return { key: JSON.stringify(params()), seq: sequence };
  }
  function current(t) {
    return t.key === JSON.stringify(params());
  }
  function accept(kind, t) {
    if (!current(t) || t.seq < applied[kind]) return false;
    applied[kind] = t.seq;
    return true;
  }

  function loadAdvanced() {
    const t = ticket();
    return api("/api/v1/analytics/advanced" + query(params())).then((d) => {
      if (!accept("advanced", t)) return;
      banner(null);
      renderAdvanced(d);
    }, (e) => current(t) && failed(e, ADVANCED_SECTIONS));
  }

  function loadExtras() {
    const p = params();
    const t = ticket();
    extrasLast = Date.now();
    const series = api("/api/v1/analytics/timeseries" + query({ hours: p.ttft_hours, assistant_id: p.assistant_id })).then((x) => {
      if (accept("series", t)) renderSeries(x);
    }, (e) => current(t) && failed(e, ["requests-chart", "ttft-chart"]));
    const cold = api("/api/v1/analytics/utilization" + query({ status: "cold", limit: 10, days: 30, assistant_id: p.assistant_id })).then((docs) => {
      if (accept("cold", t)) fill("cold", docs, false, renderCold, "No cold documents: none registered, or every one was retrieved in the last 30 days.");
    }, (e) => current(t) && failed(e, ["cold"]));
    return Promise.all([series, cold]);
  }

  function loadAssistants() {
    return api("/api/v1/assistants").then((list) => {
      const select = $("#assistant_id");
      const chosen = select.value;
      assistantNames.clear();
      const options = [h("option", { value: "" }, "All assistants")];
      for (const a of list) {
        assistantNames.set(a.assistant_id, a.assistant_name);
        options.push(h("option", { value: a.assistant_id }, a.assistant_name + (a.model ? ` (${a.model})` : "")));
      }
      const known = list.some((a) => a.assistant_id === chosen);
      if (chosen && !known) options.push(h("option", { value: chosen }, chosen));
      select.replaceChildren(...options);
      select.value = chosen;
      if (chosen && !known && UUID_RE.test(chosen)) unknownAssistant(chosen);
      // Trending rows name their assistant: now by name.
      if (lastTopics && section("trending").dataset.state === "ok") fill("trending", lastTopics, false, renderTrending);
    }, (e) => {
      if (e instanceof AuthError) logout(e.message);
    });
  }

  // Reads everything for the current controls; answers of older controls are dropped.
  function loadAll() {
    clearTimeout(retryTimer);
    if (stopped) return Promise.resolve();
    labelWindows(params());
    return Promise.all([loadAdvanced(), loadExtras()]);
  }

  // The first moment every section shows data, an empty state or an error:
  // recorded for the render-time budget (first render < 1 s).
  function checkReady() {
    if (firstRenderDone || $$("[data-section]").some((x) => x.dataset.state === "loading")) return;
    firstRenderDone = true;
    document.body.dataset.firstRenderMs = String(Math.round(performance.now()));
    document.body.dataset.state = "ready";
  }

  // --------------------------------------------------------------- live --

  // The visible text counts down every second; screen readers hear only the
  // changes of state, not every tick.
  const SPOKEN = { connecting: "Live feed: connecting", live: "Live feed: connected", offline: "Live feed: offline, reconnecting" };
  function setLive(state, text) {
    const el = $("#live");
    const changed = el.dataset.live !== state;
    el.dataset.live = state;
    $("#live-text").textContent = text;
    if (changed) $("#live-sr").textContent = state === "offline" && text === "Signed out" ? "Signed out" : SPOKEN[state];
  }

  function subscribe() {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    // Snapshots already on the wire may be of the previous scope. The server
    // answers messages in order, so everything after our "pong" is of the new one.
    wsScopeConfirmed = false;
    // A malformed id would be refused and the old scope kept: no snapshot is
    // taken until the page falls back to a scope the server accepts.
    const id = params().assistant_id;
    if (id && !UUID_RE.test(id)) return;
    ws.send(JSON.stringify({ type: "subscribe", assistant_id: params().assistant_id || null }));
    ws.send("ping");
  }

  // The feed answers again after being away: what is shown may be old, and a
  // change made meanwhile never loaded. Read everything now.
  function onFeedBack() {
    if (!wasOffline) return;
    wasOffline = false;
    loadAssistants();
    loadAll();
  }

  function connect() {
    if (stopped) return;
    clearTimeout(reconnectTimer);
    clearInterval(countdownTimer);
    setLive("connecting", "Connecting…");
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    // The token travels as the subprotocol "bearer.<token>" (never in the URL,
    // which proxies log); one a subprotocol cannot carry falls back to ?token=.
    const token = storedToken() || "";
    const socket = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(token)
      ? new WebSocket(`${proto}//${location.host}/api/v1/ws`, ["ragpulse", `bearer.${token}`])
      : new WebSocket(`${proto}//${location.host}/api/v1/ws?token=${encodeURIComponent(token)}`);
    ws = socket;
    socket.onopen = () => subscribe();
    socket.onmessage = (event) => {
      if (socket !== ws) return;
      if (event.data === "pong") {
        wsScopeConfirmed = true;
        backoffMs = 1000;
        setLive("live", "Live");
        onFeedBack();
        return;
      }
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      if (message.type === "ADVANCED_ANALYTICS_STATS" && wsScopeConfirmed) onSnapshot(message.data);
    };
    socket.onclose = () => {
      if (socket !== ws || stopped) return;
      wsScopeConfirmed = false;
      wasOffline = true;
      const delay = Math.round(Math.min(backoffMs, MAX_BACKOFF_MS) * (0.8 + Math.random() * 0.4));
      backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
      let left = Math.ceil(delay / 1000);
      setLive("offline", `Offline, retrying in ${left} s`);
      countdownTimer = setInterval(() => {
        left = Math.max(0, left - 1);
        setLive("offline", `Offline, retrying in ${left} s`);
      }, 1000);
      reconnectTimer = setTimeout(connect, delay);
    };
  }

  function onSnapshot(data) {
    liveUpdates += 1;
    document.body.dataset.liveUpdates = String(liveUpdates);
    const p = params();
    if (isDefaultWindow(p)) {
      // The snapshot is exactly /advanced for these controls: no request needed.
      if (accept("advanced", ticket())) {
        renderAdvanced(data);
        banner(null);
      }
      scheduleExtras();
    } else {
      // Other windows than the feed's: the snapshot says "data changed", re-read ours.
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(() => loadAll(), 200);
    }
  }

  function scheduleExtras() {
    clearTimeout(extrasTimer);
    const wait = Math.max(0, EXTRAS_EVERY_MS - (Date.now() - extrasLast));
    extrasTimer = setTimeout(() => loadExtras(), wait);
  }

  // --------------------------------------------------------------- login --

  // The controls, the filter button and "Change token" work only when signed in.
  function setSignedIn(yes) {
    $("#control-set").disabled = !yes;
    $("#filters-toggle").disabled = !yes;
    $("#change-token").hidden = !yes;
  }

  function stopAll() {
    stopped = true;
    for (const timer of [reconnectTimer, retryTimer, extrasTimer, refreshTimer]) clearTimeout(timer);
    clearInterval(countdownTimer);
    if (ws) {
      const old = ws;
      ws = null;
      old.close();
    }
  }

  function showLogin(message, changing) {
    $("#main").hidden = true;
    $("#login").hidden = false;
    $("#login-cancel").hidden = !changing;
    $("#login-title").textContent = changing ? "Change the admin token" : "Open the dashboard";
    const err = $("#login-error");
    err.hidden = !message;
    err.textContent = message ? message.charAt(0).toUpperCase() + message.slice(1) + "." : "";
    $("#token-input").focus();
  }

  function logout(message) {
    stopAll();
    storeToken(null);
    setLive("offline", "Signed out");
    setSignedIn(false);
    banner(null);
    document.body.dataset.state = "login";
    showLogin(message, false);
  }

  // "Change token": the form over the running dashboard; the current token
  // stays until a new one is accepted, and Cancel goes back.
  function changeToken() {
    setSignedIn(false);
    showLogin("", true);
  }
  function cancelChange() {
    $("#login").hidden = true;
    $("#main").hidden = false;
    setSignedIn(true);
    $("#change-token").focus();
  }

  async function submitToken(event) {
    event.preventDefault();
    const input = $("#token-input");
    const token = input.value.trim();
    if (!token) return;
    const button = $("#login-form button[type=submit]");
    button.disabled = true;
    try {
      // Checked before it replaces anything: a refused token is never kept.
      await api("/api/v1/assistants", token);
    } catch (e) {
      button.disabled = false;
      const err = $("#login-error");
      const text = e instanceof AuthError ? e.message : `could not check the token: ${e.message}`;
      err.textContent = text.charAt(0).toUpperCase() + text.slice(1) + ".";
      err.hidden = false;
      return;
    }
    button.disabled = false;
    storeToken(token);
    input.value = "";
    start();
  }

  function start() {
    stopAll();
    stopped = false;
    wasOffline = false;
    firstRenderDone = false;
    document.body.dataset.state = "loading";
    for (const sec of $$("[data-section]")) {
      sec.dataset.state = "loading";
      fresh(sec);
      $(".body", sec).replaceChildren();
    }
    $("#login").hidden = true;
    $("#main").hidden = false;
    setSignedIn(true);
    loadAssistants();
    loadAll();
    connect();
  }

  function init() {
    const url = new URL(location.href);
    const fromUrl = url.searchParams.get("token");
    if (fromUrl) {
      storeToken(fromUrl);
      url.searchParams.delete("token");
    }
    readUrl(url);
    // The token must not stay in the address bar, the history or a bookmark;
    // nor may a control the page did not take.
    writeUrl(params());
    $("#controls").addEventListener("change", (event) => {
      if (stopped) return;
      const p = params();
      writeUrl(p);
      markStale(FEEDS[event.target.id] || []);
      if (event.target.id === "assistant_id") subscribe();
      loadAll();
    });
    $("#controls").addEventListener("submit", (event) => event.preventDefault());
    $("#login-form").addEventListener("submit", submitToken);
    $("#login-cancel").addEventListener("click", cancelChange);
    $("#login").addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !$("#login-cancel").hidden) cancelChange();
    });
    $("#change-token").addEventListener("click", changeToken);
    $("#notice-close").addEventListener("click", clearNotice);
    $("#filters-toggle").addEventListener("click", () => {
      const open = $(".top").classList.toggle("open");
      $("#filters-toggle").setAttribute("aria-expanded", String(open));
    });
    // Charts are drawn at their card's width: draw them again when it changes.
    let drawnWidth = 0;
    new ResizeObserver(() => {
      const width = $(".charts").clientWidth;
      if (width === drawnWidth) return;
      drawnWidth = width;
      if (lastSeries && !stopped) renderSeries(lastSeries);
      else refreshScrollables();
    }).observe($(".charts"));
    window.addEventListener("resize", refreshScrollables);
    // Relative times ("5 min ago") age in place.
    setInterval(() => {
      for (const el of $$("time[data-rel]")) el.textContent = relative(el.dateTime);
    }, 30000);
    if (storedToken()) start();
    else logout("");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
