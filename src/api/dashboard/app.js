// ragpulse dashboard: plain JavaScript, no dependency, no build step. It reads
// /api/v1/analytics/* with the admin token (Authorization: Bearer), follows
// the live feed on /api/v1/ws (?token=, the only way a browser can send one
// there) and renders every metric into the sections of index.html. Every
// number shown sits in an element with data-field so the browser test can read
// it back; every section carries data-state (loading, ok, empty, degraded, error).
"use strict";

(function () {
  const TOKEN_KEY = "ragpulse.adminToken";
  // /advanced's defaults: the live feed's snapshots are computed with these.
  const DEFAULTS = { ttft_hours: "24", cache_hours: "24", cost_hours: "24", step_days: "7", trending_limit: "10" };
  const PARAMS = ["assistant_id", "ttft_hours", "cache_hours", "cost_hours", "step_days", "trending_limit"];
  const FETCH_TIMEOUT_MS = 15000;
  const RETRY_AFTER_ERROR_MS = 10000;
  const MAX_BACKOFF_MS = 30000;
  // Extra reads (charts, cold documents) follow the live feed at most this often.
  const EXTRAS_EVERY_MS = 2000;
  const SVG = "http://www.w3.org/2000/svg";
  // TTFT colour thresholds in seconds: [good below, warning below], else bad.
  const TTFT_THRESHOLDS = { p50: [1.0, 2.5], p95: [2.5, 5.0], p99: [4.0, 8.0] };

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  let memoryToken = null;
  let sequence = 0;
  const applied = { advanced: 0, series: 0, cold: 0 };
  let ws = null;
  let wsScopeConfirmed = false;
  let backoffMs = 1000;
  let reconnectTimer = null;
  let countdownTimer = null;
  let retryTimer = null;
  let extrasTimer = null;
  let extrasLast = 0;
  let refreshTimer = null;
  let firstRenderDone = false;
  let liveUpdates = 0;
  let stopped = false;

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
  // The browser test formats the API's JSON with the same rules, so keep
  // these few functions the only way numbers reach the page.

  function group(digits) {
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }
  function fmtInt(n) {
    const sign = n < 0 ? "-" : "";
    return sign + group(String(Math.abs(Math.round(n))));
  }
  function fmtFixed(x, d) {
    const text = x.toFixed(d);
    const [whole, frac] = text.split(".");
    const sign = whole.startsWith("-") ? "-" : "";
    const digits = group(whole.replace("-", ""));
    return sign + digits + (frac !== undefined ? "." + frac : "");
  }
  function fmtDuration(seconds) {
    if (seconds < 1) return fmtInt(Math.round(seconds * 1000)) + " ms";
    return fmtFixed(seconds, 2) + " s";
  }
  // TTFT is read in seconds (its thresholds are in seconds): always "0.84 s".
  function fmtSeconds(x) {
    return fmtFixed(x, 2) + " s";
  }
  function fmtPct(x) {
    return x.toFixed(2) + "%";
  }
  function fmtUsd(x) {
    return "$" + (x >= 10 ? fmtFixed(x, 2) : fmtFixed(x, 4));
  }
  function fmtSigned(x, d) {
    return (x >= 0 ? "+" : "") + x.toFixed(d);
  }
  function windowLabel(name, value) {
    const v = Number(value);
    if (name.endsWith("_days")) return v + " d";
    if (v % 24 === 0 && v >= 72) return v / 24 + " d";
    return v + " h";
  }
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
  function clock(ms, withDate) {
    const d = new Date(ms);
    const hh = String(d.getHours()).padStart(2, "0");
    const mm = String(d.getMinutes()).padStart(2, "0");
    if (!withDate) return hh + ":" + mm;
    return d.getDate() + "/" + (d.getMonth() + 1) + " " + hh + ":" + mm;
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
    return h("time", { "data-field": name, datetime: iso, title: iso, "data-rel": "" }, relative(iso));
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
  function table(headers, rows, caption) {
    return h("table", {},
      caption ? h("caption", { class: "sr-only" }, caption) : null,
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col", class: x.num ? "num" : null }, x.label || x)))),
      h("tbody", {}, rows));
  }

  const MESSAGES = {
    empty: "No data in this window.",
    degraded: "Metric degraded: the server could not compute it this time. It is retried on the next update.",
    error: "Could not load this metric.",
  };

  function section(name) {
    return $(`[data-section="${name}"]`);
  }
  function showState(name, state, message) {
    const sec = section(name);
    if (!sec) return;
    sec.dataset.state = state;
    const body = $(".body", sec);
    body.replaceChildren(h("p", { class: "state " + state, "data-testid": "state-message" },
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
    $(".body", sec).replaceChildren(render(value));
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
      h("div", { class: "big" }, field("total", fmtUsd(total), "value")),
      h("p", { class: "sub" }, field("tokens", fmtInt(tokens)), " tokens across ", String(costs.length), costs.length === 1 ? " assistant" : " assistants"));
  }

  function renderRerank(r) {
    const cls = r.avg_score_improvement > 0 ? "good" : r.avg_score_improvement < 0 ? "bad" : "";
    return h("div", {},
      h("div", { class: "big " + cls }, field("improvement", fmtSigned(r.avg_score_improvement, 3), "value")),
      h("p", { class: "sub" }, "mean score gain over ", field("count", fmtInt(r.reranking_enabled_count)), " reranked requests"),
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
          field("tokens", `in ${fmtInt(Math.round(x.avg_tokens.input))} · out ${fmtInt(Math.round(x.avg_tokens.output))}`)) : null))));
  }

  function renderTrending(topics) {
    const scoped = params().assistant_id !== "";
    const list = table(
      ["#", "Question", { label: "Asked", num: true }, { label: "Variations", num: true }, "Last asked"],
      topics.map((t, i) => h("tr", { "data-row": "" },
        h("td", { class: "rank" }, field("rank", String(i + 1))),
        h("td", { class: "question" }, field("question", t.canonical_text),
          t.topic !== t.canonical_text ? h("span", { class: "tag" }, field("topic", t.topic)) : null),
        h("td", { class: "num" }, field("frequency", fmtInt(t.frequency))),
        h("td", { class: "num" }, field("variations", fmtInt(t.variation_count))),
        h("td", {}, timeField("last_asked", t.last_asked)))),
      "Trending questions");
    if (scoped) return list;
    // Topics belong to one assistant and are never merged: say why a question may repeat.
    return h("div", {}, list, h("p", { class: "hint" }, "All assistants: each assistant's topics are listed separately, so a question asked of several assistants appears once per assistant."));
  }

  function renderDiversity(d) {
    return h("div", {},
      h("div", { class: "big" }, field("score", d.diversity_score.toFixed(3), "value"), h("span", { class: "unit" }, " / 1")),
      bar(d.diversity_score, "accent"),
      h("p", { class: "sub" }, field("topics", fmtInt(d.total_topics)), " topics; the largest holds ",
        field("dominant", fmtPct(d.dominant_topic_share)), " of questions"),
      h("p", { class: "hint" }, "1 − Herfindahl index: 0 means one topic, near 1 many evenly asked topics."));
  }

  function renderCosts(costs) {
    const max = Math.max(...costs.map((c) => c.estimated_cost_usd), 1e-12);
    return table(
      ["Assistant", { label: "Tokens", num: true }, { label: "In / out", num: true }, { label: "Cost", num: true }],
      costs.map((c) => h("tr", { "data-row": "" },
        h("td", {}, field("assistant", c.assistant_name), bar(c.estimated_cost_usd / max, "accent")),
        h("td", { class: "num" }, field("tokens", fmtInt(c.total_tokens))),
        h("td", { class: "num muted" }, field("input", fmtInt(c.input_tokens)), " / ", field("output", fmtInt(c.output_tokens))),
        h("td", { class: "num" }, field("cost", fmtUsd(c.estimated_cost_usd))))),
      "Cost by assistant");
  }

  function renderUsers(users) {
    return table(
      ["User", "Email", { label: "Requests", num: true }, { label: "Tokens", num: true }, "Last active"],
      users.map((u) => h("tr", { "data-row": "" },
        h("td", {}, field("name", u.full_name || u.email || u.user_id)),
        h("td", { class: "muted" }, field("email", u.email)),
        h("td", { class: "num" }, field("interactions", fmtInt(u.interaction_count))),
        h("td", { class: "num" }, field("tokens", fmtInt(u.total_tokens))),
        h("td", {}, timeField("last_active", u.last_active)))),
      "Top users by tokens");
  }

  function renderShares(rows, label, cls) {
    return h("ul", { class: "shares" }, rows.map((r, i) => h("li", { "data-row": "" },
      h("div", { class: "bar-head" },
        field(label, r.label, "name"),
        h("span", { class: "num" }, field("count", fmtInt(r.count)), " · ", field("percentage", fmtPct(r.percentage)))),
      bar(r.percentage / 100, cls[i] || "accent"))));
  }

  function renderSessions(rows) {
    return renderShares(rows.map((r) => ({ label: r.session_type, count: r.session_count, percentage: r.percentage })),
      "type", ["accent", "accent2", "accent3"]);
  }

  function renderFreshness(rows) {
    return renderShares(rows.map((r) => ({ label: r.freshness_category, count: r.doc_count, percentage: r.percentage })),
      "category", ["good-fill", "warn-fill", "bad-fill"]);
  }

  function renderUtilization(docs) {
    return table(
      ["Document", "Connector", { label: "Retrievals", num: true }, "Status", "Last retrieved"],
      docs.slice(0, 10).map((d) => h("tr", { "data-row": "" },
        h("td", {}, field("file", d.file_name)),
        h("td", { class: "muted" }, field("connector", d.connector_name)),
        h("td", { class: "num" }, field("count", fmtInt(d.retrieval_count))),
        h("td", {}, field("status", d.status, "badge " + d.status)),
        h("td", {}, timeField("last_retrieved", d.last_retrieved)))),
      "Most retrieved documents");
  }

  function renderCold(docs) {
    return table(
      ["Document", "Connector", "Last retrieved"],
      docs.map((d) => h("tr", { "data-row": "" },
        h("td", {}, field("file", d.file_name)),
        h("td", { class: "muted" }, field("connector", d.connector_name)),
        h("td", {}, timeField("last_retrieved", d.last_retrieved)))),
      "Documents nobody retrieved");
  }

  function renderSync(rates) {
    return table(
      ["Connector", { label: "Success", num: true }, { label: "OK", num: true }, { label: "Failed", num: true }, { label: "Syncs", num: true }, { label: "Mean duration", num: true }],
      rates.map((r) => {
        const cls = r.total_syncs === 0 ? "" : r.success_rate >= 95 ? "good" : r.success_rate >= 80 ? "warn" : "bad";
        return h("tr", { "data-row": "" },
          h("td", {}, field("connector", r.connector_name)),
          h("td", { class: "num " + cls }, field("rate", fmtPct(r.success_rate))),
          h("td", { class: "num" }, field("ok", fmtInt(r.successful_syncs))),
          h("td", { class: "num" }, field("failed", fmtInt(r.failed_syncs))),
          h("td", { class: "num" }, field("total", fmtInt(r.total_syncs))),
          h("td", { class: "num" }, field("duration", r.avg_sync_duration === null ? "—" : fmtDuration(r.avg_sync_duration))));
      }),
      "Connector sync reliability");
  }

  // --------------------------------------------------------------- charts --

  const CW = 640;
  const CH = 220;
  const PAD = { l: 48, r: 44, t: 12, b: 28 };

  function niceMax(x) {
    if (!(x > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(x)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
    return 10 * p;
  }

  function axes(svg, series, yMax, yFmt, rightFmt) {
    const plotH = CH - PAD.t - PAD.b;
    for (let i = 0; i <= 4; i++) {
      const y = PAD.t + plotH - (plotH * i) / 4;
      svg.append(s("line", { x1: PAD.l, x2: CW - PAD.r, y1: y, y2: y, class: "grid" }));
      svg.append(s("text", { x: PAD.l - 6, y: y + 4, class: "tick", "text-anchor": "end" }, yFmt((yMax * i) / 4)));
      if (rightFmt) svg.append(s("text", { x: CW - PAD.r + 6, y: y + 4, class: "tick" }, rightFmt(i * 25)));
    }
    const n = series.buckets.length;
    const step = (CW - PAD.l - PAD.r) / Math.max(n, 1);
    const withDate = series.hours > 24;
    const every = Math.max(1, Math.ceil(n / 6));
    series.buckets.forEach((b, i) => {
      if (i % every !== 0) return;
      const x = PAD.l + step * i + step / 2;
      svg.append(s("text", { x, y: CH - 8, class: "tick", "text-anchor": "middle" },
        clock(Date.parse(b.bucket_start), withDate)));
    });
    return step;
  }

  function renderRequestsChart(series) {
    const total = series.buckets.reduce((a, b) => a + b.count, 0);
    const peak = Math.max(...series.buckets.map((b) => b.count));
    const yMax = niceMax(peak);
    const plotH = CH - PAD.t - PAD.b;
    const svg = s("svg", { viewBox: `0 0 ${CW} ${CH}`, role: "img", class: "chart",
      "aria-label": `Requests per ${series.bucket_minutes} minutes over the last ${series.hours} hours: ${total} in all, at most ${peak} in one bucket; the line is the cache hit rate.` });
    const step = axes(svg, series, yMax, (v) => fmtInt(v), (p) => p + "%");
    const bars = s("g", { class: "bars-g" });
    const line = [];
    series.buckets.forEach((b, i) => {
      const x = PAD.l + step * i;
      const hgt = (b.count / yMax) * plotH;
      const label = `${clock(Date.parse(b.bucket_start), true)}: ${fmtInt(b.count)} requests` +
        (b.cache_hit_rate === null ? "" : `, ${fmtPct(b.cache_hit_rate)} cache hits`);
      bars.append(s("rect", { x: x + step * 0.12, y: PAD.t + plotH - hgt, width: Math.max(step * 0.76, 1), height: Math.max(hgt, 0), class: "bar", "data-count": b.count },
        s("title", {}, label)));
      if (b.cache_hit_rate !== null) line.push([x + step / 2, PAD.t + plotH - (b.cache_hit_rate / 100) * plotH]);
      else line.push(null);
    });
    svg.append(bars);
    for (const d of paths(line)) svg.append(s("path", { d, class: "line hit" }));
    return h("figure", {},
      svg,
      h("figcaption", {},
        h("span", { class: "key bar-key" }), "requests ", h("span", { class: "key hit-key" }), "cache hit rate · ",
        field("total", fmtInt(total)), " requests in ", field("buckets", String(series.buckets.length)),
        ` buckets of ${series.bucket_minutes} min`));
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
      cur += (cur ? " L" : "M") + p[0].toFixed(1) + " " + p[1].toFixed(1);
    }
    if (cur) out.push(cur);
    // A lone point draws nothing as a path: give it a tiny tick.
    return out.map((d) => (d.includes("L") ? d : d + " l0.1 0"));
  }

  function renderTtftChart(series) {
    const known = series.buckets.filter((b) => b.ttft_p95 !== null);
    const peak = Math.max(...known.map((b) => b.ttft_p95));
    const yMax = niceMax(peak);
    const plotH = CH - PAD.t - PAD.b;
    const svg = s("svg", { viewBox: `0 0 ${CW} ${CH}`, role: "img", class: "chart",
      "aria-label": `TTFT p50 and p95 per ${series.bucket_minutes} minutes over the last ${series.hours} hours; highest p95 ${fmtSeconds(peak)}.` });
    const step = axes(svg, series, yMax, (v) => (yMax < 3 ? v.toFixed(1) : v.toFixed(0)) + " s");
    for (const [key, cls] of [["ttft_p95", "p95"], ["ttft_p50", "p50"]]) {
      const pts = series.buckets.map((b, i) => (b[key] === null ? null : [PAD.l + step * i + step / 2, PAD.t + plotH - (b[key] / yMax) * plotH]));
      for (const d of paths(pts)) svg.append(s("path", { d, class: "line " + cls }));
      series.buckets.forEach((b, i) => {
        if (b[key] === null) return;
        svg.append(s("circle", { cx: PAD.l + step * i + step / 2, cy: PAD.t + plotH - (b[key] / yMax) * plotH, r: 2.5, class: "pt " + cls },
          s("title", {}, `${clock(Date.parse(b.bucket_start), true)}: ${cls} ${fmtSeconds(b[key])}`)));
      });
    }
    return h("figure", {},
      svg,
      h("figcaption", {},
        h("span", { class: "key p50-key" }), "p50 ", h("span", { class: "key p95-key" }), "p95 · ",
        field("points", String(known.length)), " buckets with a TTFT; highest p95 ", field("peak", fmtSeconds(peak))));
  }

  function renderSeries(series) {
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
    return Object.keys(DEFAULTS).every((k) => p[k] === DEFAULTS[k]);
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
  function readUrl(url) {
    for (const name of PARAMS) {
      const v = url.searchParams.get(name);
      if (v === null) continue;
      const select = $("#" + name);
      if (name === "assistant_id" && !$$("option", select).some((o) => o.value === v)) {
        select.append(h("option", { value: v }, v));
      }
      if ($$("option", select).some((o) => o.value === v)) select.value = v;
    }
  }
  function labelWindows(p) {
    for (const el of $$("[data-window]")) el.textContent = windowLabel(el.dataset.window, p[el.dataset.window]);
  }

  function markUpdated() {
    const now = new Date();
    const el = $("#updated");
    el.dateTime = now.toISOString();
    el.textContent = now.toLocaleTimeString();
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  }

  function banner(text) {
    const el = $("#banner");
    if (!text) {
      el.hidden = true;
      el.textContent = "";
      return;
    }
    el.hidden = false;
    el.textContent = text;
  }

  class AuthError extends Error {}

  async function api(path) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS);
    try {
      const res = await fetch(path, {
        headers: { Authorization: "Bearer " + storedToken(), Accept: "application/json" },
        signal: controller.signal,
        cache: "no-store",
      });
      if (res.status === 401 || res.status === 403) {
        let detail = "";
        try {
          detail = (await res.json()).detail;
        } catch (_) {}
        throw new AuthError(`the server refused the token (${res.status}${detail ? ": " + detail : ""})`);
      }
      if (!res.ok) throw new Error(`${path.split("?")[0]} answered ${res.status}`);
      return await res.json();
    } catch (e) {
      if (e.name === "AbortError") throw new Error(`${path.split("?")[0]} did not answer within ${FETCH_TIMEOUT_MS / 1000} s`);
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  function failed(e, sections) {
    if (e instanceof AuthError) {
      logout(e.message);
      return;
    }
    for (const name of sections) {
      // Keep what is shown; a section never loaded says why it is empty.
      if (section(name).dataset.state === "loading") showState(name, "error", `${MESSAGES.error} ${e.message}`);
    }
    banner(`Could not load data: ${e.message}. Retrying in ${RETRY_AFTER_ERROR_MS / 1000} s.`);
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => loadAll(), RETRY_AFTER_ERROR_MS);
  }

  const ADVANCED_SECTIONS = ["ttft", "cache", "cost", "rerank", "steps", "trending", "diversity", "costs", "sessions", "users", "freshness", "utilization", "sync"];

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
      const current = select.value;
      const options = [h("option", { value: "" }, "All assistants")];
      for (const a of list) {
        options.push(h("option", { value: a.assistant_id }, a.assistant_name + (a.model ? ` (${a.model})` : "")));
      }
      if (current && !list.some((a) => a.assistant_id === current)) options.push(h("option", { value: current }, current));
      select.replaceChildren(...options);
      select.value = current;
    }, (e) => {
      if (e instanceof AuthError) logout(e.message);
    });
  }

  // Reads everything for the current controls; answers of older controls are dropped.
  function loadAll() {
    clearTimeout(retryTimer);
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
    ws.send(JSON.stringify({ type: "subscribe", assistant_id: params().assistant_id || null }));
    ws.send("ping");
  }

  function connect() {
    if (stopped) return;
    clearTimeout(reconnectTimer);
    clearInterval(countdownTimer);
    setLive("connecting", "Connecting…");
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${proto}//${location.host}/api/v1/ws?token=${encodeURIComponent(storedToken() || "")}`);
    ws = socket;
    socket.onopen = () => subscribe();
    socket.onmessage = (event) => {
      if (socket !== ws) return;
      if (event.data === "pong") {
        wsScopeConfirmed = true;
        backoffMs = 1000;
        setLive("live", "Live");
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

  function logout(message) {
    stopped = true;
    clearTimeout(reconnectTimer);
    clearInterval(countdownTimer);
    if (ws) {
      const old = ws;
      ws = null;
      old.close();
    }
    storeToken(null);
    setLive("offline", "Signed out");
    $("#main").hidden = true;
    $("#login").hidden = false;
    document.body.dataset.state = "login";
    const err = $("#login-error");
    err.hidden = !message;
    err.textContent = message ? message.charAt(0).toUpperCase() + message.slice(1) + "." : "";
    $("#token-input").focus();
  }

  function start() {
    stopped = false;
    firstRenderDone = false;
    document.body.dataset.state = "loading";
    for (const sec of $$("[data-section]")) {
      sec.dataset.state = "loading";
      $(".body", sec).replaceChildren();
    }
    $("#login").hidden = true;
    $("#main").hidden = false;
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
      // The token must not stay in the address bar, the history or a bookmark.
      history.replaceState(null, "", url.pathname + url.search + url.hash);
    }
    readUrl(url);
    $("#controls").addEventListener("change", (event) => {
      const p = params();
      writeUrl(p);
      if (event.target.id === "assistant_id") subscribe();
      loadAll();
    });
    $("#controls").addEventListener("submit", (event) => event.preventDefault());
    $("#login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("#token-input").value.trim();
      if (!token) return;
      storeToken(token);
      $("#token-input").value = "";
      start();
    });
    $("#change-token").addEventListener("click", () => logout(""));
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
