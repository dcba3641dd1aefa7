//! Accessibility checked by axe-core (vendored in `vendor/axe-core`, injected
//! by the test over the DevTools protocol, never served by the product): no
//! serious or critical violation on the token prompt, the dashboard on a
//! desktop and the dashboard on a phone with its controls open. And what axe
//! does not check: the focus ring's contrast, the skip link's landing.

use serde_json::json;

use crate::cdp::Page;
use crate::{UPDATE_TIMEOUT, chromium_or_skip, open_dashboard, seeded_with_browser, wait_for_page};

const AXE: &str = include_str!("vendor/axe-core/axe.min.js");

/// Runs axe-core on the page as it is: the serious and critical violations,
/// each with its rule, its help text and up to five of the elements at fault.
async fn serious_violations(page: &Page) -> serde_json::Value {
    page.eval(&format!("{AXE};\ntrue")).await;
    page.eval(
        "axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations
           .filter((v) => v.impact === 'serious' || v.impact === 'critical')
           .map((v) => ({ rule: v.id, impact: v.impact, help: v.help,
                          nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ') + ': ' + n.failureSummary) })))",
    )
    .await
}

#[tokio::test]
#[ignore = "needs Chromium: .ci/run installs it and runs this with --ignored"]
async fn axe_finds_no_serious_or_critical_violation() {
    let Some(chromium) = chromium_or_skip("the dashboard accessibility test") else {
        return;
    };
    // Arrange
    let (app, want, browser) = seeded_with_browser(&chromium).await;

    // Act: the token prompt.
    let login = browser.new_page(390, 844).await;
    login.navigate(&app.url("/")).await;
    login
        .wait_for(
            "the token prompt",
            "document.body.dataset.state === 'login'",
            UPDATE_TIMEOUT,
        )
        .await;

    // Assert
    assert_eq!(
        serious_violations(&login).await,
        json!([]),
        "the token prompt"
    );

    for (width, height) in [(1440, 1000), (390, 844)] {
        // Act: the dashboard with its data.
        let page = browser.new_page(width, height).await;
        open_dashboard(&page, &app).await;
        wait_for_page(&page, &want, "the render").await;
        if width < 720 {
            page.eval("document.querySelector('#filters-toggle').click(); true")
                .await;
        }
        // The per-bucket tables are part of the page too.
        page.eval(
            "document.querySelectorAll('details.values').forEach((d) => { d.open = true; }); true",
        )
        .await;

        // Assert
        assert_eq!(
            serious_violations(&page).await,
            json!([]),
            "the dashboard at {width} px"
        );
    }
}

/// The contrast of the focus ring of `selector` against the background it
/// is drawn on (`behind`), computed in the page from the computed styles.
const FOCUS_CONTRAST: &str = r#"((selector, behind) => {
  const rgb = (c) => c.match(/[\d.]+/g).slice(0, 3).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const el = document.querySelector(selector);
  el.focus({ focusVisible: true });
  const ring = getComputedStyle(el).outlineColor;
  const back = getComputedStyle(document.querySelector(behind)).backgroundColor;
  const [a, b] = [lum(rgb(ring)), lum(rgb(back))].sort((x, y) => y - x);
  return { style: getComputedStyle(el).outlineStyle, contrast: (a + 0.05) / (b + 0.05) };
})"#;

#[tokio::test]
#[ignore = "needs Chromium: .ci/run installs it and runs this with --ignored"]
async fn the_focus_ring_stands_out_and_the_skip_link_lands_on_the_metrics() {
    let Some(chromium) = chromium_or_skip("the dashboard focus test") else {
        return;
    };
    // Arrange
    let (app, want, browser) = seeded_with_browser(&chromium).await;
    let page = browser.new_page(1440, 1000).await;
    open_dashboard(&page, &app).await;
    wait_for_page(&page, &want, "the render").await;

    // Act + Assert: a focusable element on a card, on the page, in the header.
    page.eval("document.querySelector('[data-section=requests-chart] summary').setAttribute('data-probe', 'card'); true")
        .await;
    for (element, behind) in [
        ("[data-probe=card]", ".card"),
        (".foot a", "html"),
        ("#assistant_id", ".top"),
    ] {
        let ring = page
            .eval(&format!("{FOCUS_CONTRAST}('{element}', '{behind}')"))
            .await;
        assert_eq!(ring["style"], "solid", "{element}: {ring}");
        assert!(
            ring["contrast"].as_f64().unwrap() >= 3.0,
            "{element} on {behind}: {ring}"
        );
    }
    // The skip link's target takes the focus; the signed-in page has its h1.
    page.eval("document.querySelector('.skip').click(); true")
        .await;
    assert_eq!(
        page.eval("[document.activeElement.id, document.querySelectorAll('h1').length, document.querySelector('h1').textContent.trim()]")
            .await,
        json!(["main", 1, "ragpulse dashboard"])
    );
}
