//! The page at phone, tablet and desktop widths: nothing wider than the
//! screen, names and addresses broken only between words, a compact header on
//! a phone, and charts whose axis labels say exactly the values drawn at their
//! gridlines, in text of the size the style sheet sets.

use serde_json::json;

use crate::{chromium_or_skip, open_dashboard, seeded_with_browser, wait_for_page};

/// What sticks out: the document's width against the viewport's, every box
/// wider than itself (a table scrolls inside its own `.scroll` box, which is
/// allowed to), every word of a name, an address, a file name or a question
/// that the browser broke across two lines, rows of cards that leave a hole,
/// and the header's height.
const LAYOUT: &str = r#"(() => {
  const sticking = [...document.querySelectorAll(".card, .top, .notice, .banner, main, .kpis, .charts, .grid")]
    .filter((el) => el.getClientRects().length && el.scrollWidth > el.clientWidth + 1)
    .map((el) => `${el.dataset.section || el.className}: ${el.scrollWidth} > ${el.clientWidth}`);
  const broken = [];
  const fields = "[data-field=name],[data-field=email],[data-field=file],[data-field=connector],[data-field=assistant],[data-field=question],[data-field=type],[data-field=category]";
  for (const el of document.querySelectorAll(fields)) {
    const text = el.firstChild;
    if (!el.getClientRects().length || !text || text.nodeType !== Node.TEXT_NODE) continue;
    let at = 0;
    for (const word of text.data.split(" ")) {
      if (word) {
        const range = document.createRange();
        range.setStart(text, at);
        range.setEnd(text, at + word.length);
        const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
        if (lines.size > 1) broken.push(`${el.dataset.field}: "${word}" on ${lines.size} lines`);
      }
      at += word.length + 1;
    }
  }
  // A row of cards that stops short of its grid's right edge leaves a hole.
  const holes = [];
  for (const grid of document.querySelectorAll(".kpis, .charts, .grid")) {
    const edge = grid.getBoundingClientRect().right;
    const rows = new Map();
    for (const card of grid.children) {
      const r = card.getBoundingClientRect();
      rows.set(Math.round(r.top), Math.max(rows.get(Math.round(r.top)) || 0, r.right));
    }
    for (const [top, right] of rows) {
      if (edge - right > 2) holes.push(`${grid.className}: the row at ${top} px ends ${Math.round(edge - right)} px short`);
    }
  }
  return {
    holes,
    document: document.documentElement.scrollWidth,
    viewport: window.innerWidth,
    sticking,
    broken,
    header: Math.round(document.querySelector(".top").getBoundingClientRect().height),
  };
})()"#;

/// Every chart axis checked against the data drawn: the value → y line is read
/// from the marks (a bar's foot is 0 and its top its count; a point's height
/// its value), then each label must name the value at its own height, sit on a
/// gridline or tick mark, and the labels must step evenly by a round step.
/// Time labels must name the start of the bucket they stand at. The drawing
/// must not be scaled (its text keeps the style sheet's size).
const AXES: &str = r#"(() => {
  const problems = [];
  const number = (t) => Number(t.replace(/[^0-9.\-]/g, ""));
  for (const svg of document.querySelectorAll("svg.chart")) {
    const name = svg.closest("[data-section]").dataset.section;
    const drawn = svg.getBoundingClientRect().width;
    const planned = svg.viewBox.baseVal.width;
    if (Math.abs(drawn - planned) > 1) problems.push(`${name}: ${planned} px drawing shown ${drawn} px wide`);
    for (const text of svg.querySelectorAll("text")) {
      const px = parseFloat(getComputedStyle(text).fontSize) * (drawn / planned);
      if (px < 10.5) problems.push(`${name}: "${text.textContent}" in ${px.toFixed(1)} px text`);
    }
    const lines = [...svg.querySelectorAll("line")].filter((l) => l.getAttribute("y1") === l.getAttribute("y2"));
    for (const axis of ["left", "right"]) {
      const marks = [];
      for (const m of svg.querySelectorAll(`[data-axis=${axis}][data-value]`)) {
        const v = Number(m.dataset.value);
        if (m.tagName === "rect") {
          const top = Number(m.getAttribute("y"));
          marks.push([0, top + Number(m.getAttribute("height"))], [v, top]);
        } else {
          marks.push([v, Number(m.getAttribute("cy"))]);
        }
      }
      const labels = [...svg.querySelectorAll(`text.y-tick[data-axis=${axis}]`)];
      // Every chart has a left axis; the right one is optional.
      if (axis === "right" && !labels.length && !marks.length) continue;
      if (labels.length < 2) { problems.push(`${name} ${axis}: ${labels.length} labels`); continue; }
      const low = marks.reduce((a, b) => (b[0] < a[0] ? b : a), [Infinity, 0]);
      const high = marks.reduce((a, b) => (b[0] > a[0] ? b : a), [-Infinity, 0]);
      if (!(high[0] > low[0])) { problems.push(`${name} ${axis}: no two data marks of different values`); continue; }
      const slope = (high[1] - low[1]) / (high[0] - low[0]);
      const valueAt = (y) => low[0] + (y - low[1]) / slope;
      const values = labels.map((t) => number(t.textContent));
      const step = values[1] - values[0];
      const mantissa = step / Math.pow(10, Math.floor(Math.log10(step)));
      if (![1, 2, 2.5, 5].some((m) => Math.abs(mantissa - m) < 1e-9)) problems.push(`${name} ${axis}: step ${step} is not round`);
      labels.forEach((t, k) => {
        const y = Number(t.getAttribute("y"));
        const at = valueAt(y);
        if (Math.abs(at - values[k]) > step * 0.01) problems.push(`${name} ${axis}: "${t.textContent}" stands where the data reads ${at.toFixed(3)}`);
        if (!lines.some((l) => Math.abs(Number(l.getAttribute("y1")) - y) < 0.01)) problems.push(`${name} ${axis}: "${t.textContent}" has no gridline or tick mark`);
        if (k > 0 && Math.abs(values[k] - values[k - 1] - step) > step * 1e-9) problems.push(`${name} ${axis}: uneven steps ${values.join(", ")}`);
      });
    }
    // Time labels: at the left edge of the bucket they name, in the 24-hour clock or as a date.
    const clock = new Intl.DateTimeFormat("en-US", { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    const day = new Intl.DateTimeFormat("en-US", { month: "short", day: "numeric" });
    const bars = [...svg.querySelectorAll("rect.bar")];
    const pitch = bars.length > 1 ? Number(bars[1].getAttribute("x")) - Number(bars[0].getAttribute("x")) : 0;
    const xs = [...svg.querySelectorAll("text.x-tick")];
    if (xs.length < 2) problems.push(`${name}: ${xs.length} time labels`);
    for (const t of xs) {
      const when = new Date(t.dataset.time);
      const names = [clock.format(when), day.format(when), `${day.format(when)} ${clock.format(when)}`];
      if (!names.includes(t.textContent)) problems.push(`${name}: time label "${t.textContent}" for ${t.dataset.time}`);
      const bar = bars.find((b) => b.dataset.start === t.dataset.time);
      if (bars.length && !bar) problems.push(`${name}: no bucket starts at ${t.dataset.time}`);
      if (bar) {
        const edge = Number(bar.getAttribute("x")) - (pitch - Number(bar.getAttribute("width"))) / 2;
        if (Math.abs(edge - Number(t.getAttribute("x"))) > 0.5) problems.push(`${name}: "${t.textContent}" at x=${t.getAttribute("x")}, its bucket starts at ${edge}`);
      }
    }
  }
  return problems;
})()"#;

#[tokio::test]
#[ignore = "needs Chromium: .ci/run installs it and runs this with --ignored"]
async fn the_page_fits_every_width_and_its_charts_label_what_they_draw() {
    let Some(chromium) = chromium_or_skip("the dashboard layout test") else {
        return;
    };
    // Arrange: data with long names, addresses and file names.
    let (app, want, browser) = seeded_with_browser(&chromium).await;

    for width in [360, 390, 768, 820, 1024, 1440] {
        // Act
        let page = browser.new_page(width, 900).await;
        open_dashboard(&page, &app).await;
        wait_for_page(&page, &want, "the render").await;
        let layout = page.eval(LAYOUT).await;
        let axes = page.eval(AXES).await;

        // Assert
        assert!(
            layout["document"].as_u64() <= layout["viewport"].as_u64(),
            "{width} px: the page scrolls sideways: {layout}"
        );
        assert_eq!(layout["sticking"], json!([]), "{width} px: {layout}");
        assert_eq!(layout["broken"], json!([]), "{width} px: {layout}");
        assert_eq!(layout["holes"], json!([]), "{width} px: {layout}");
        if width < 720 {
            let header = layout["header"].as_u64().unwrap();
            assert!(header <= 120, "{width} px: a {header} px header");
        }
        assert_eq!(axes, json!([]), "{width} px: chart axes");

        if width < 720 {
            // Act: open the folded controls.
            page.eval("document.querySelector('#filters-toggle').click(); true")
                .await;
            let opened = page.eval(LAYOUT).await;

            // Assert: they show, and still fit.
            assert_eq!(
                page.eval("getComputedStyle(document.querySelector('#controls')).display !== 'none' && document.querySelector('#filters-toggle').getAttribute('aria-expanded')")
                    .await,
                json!("true")
            );
            assert!(
                opened["document"].as_u64() <= opened["viewport"].as_u64(),
                "{width} px with the controls open: {opened}"
            );
            assert_eq!(opened["sticking"], json!([]), "{width} px: {opened}");
        }
    }
    let errors = browser.errors();
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
}
