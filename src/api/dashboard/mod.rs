//! The admin dashboard served at `/`: static HTML, CSS, JavaScript and an
//! icon embedded in the binary (no CDN, no build step, works offline). The
//! files carry no data, so they need no token; the page reads every number
//! through the authenticated API. A strict Content-Security-Policy allows only
//! this origin's script, style and sockets: no inline script or style, so an
//! injected string in a question or a file name can never run.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::server::AppState;

/// `ws:`/`wss:` are listed beside `'self'` because older engines do not treat a
/// same-host WebSocket as `'self'`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self' ws: wss:; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// One embedded file and its validator.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    etag: &'static str,
}

macro_rules! asset {
    ($file:literal, $content_type:literal) => {{
        const BODY: &[u8] = include_bytes!($file);
        const HASH: [u8; 18] = etag_of(BODY);
        Asset {
            body: BODY,
            content_type: $content_type,
            // The bytes are ASCII by construction (quote + 16 hex digits + quote).
            etag: match std::str::from_utf8(&HASH) {
                Ok(text) => text,
                Err(_) => "\"0\"",
            },
        }
    }};
}

const INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");
const APP_JS: Asset = asset!("app.js", "text/javascript; charset=utf-8");
const STYLE: Asset = asset!("style.css", "text/css; charset=utf-8");
const FAVICON: Asset = asset!("favicon.svg", "image/svg+xml");

/// A strong ETag from the file's FNV-1a hash, computed at compile time, so a
/// browser revalidates cheaply (304) and never runs a stale script after an upgrade.
const fn etag_of(bytes: &[u8]) -> [u8; 18] {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'"'; 18];
    let mut j = 0;
    while j < 16 {
        out[1 + j] = HEX[((hash >> (60 - 4 * j)) & 0xf) as usize];
        j += 1;
    }
    out
}

/// The dashboard's routes: the page and its three assets.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|headers: HeaderMap| async move { serve(&INDEX, &headers) }),
        )
        .route(
            "/dashboard/app.js",
            get(|headers: HeaderMap| async move { serve(&APP_JS, &headers) }),
        )
        .route(
            "/dashboard/style.css",
            get(|headers: HeaderMap| async move { serve(&STYLE, &headers) }),
        )
        .route(
            "/dashboard/favicon.svg",
            get(|headers: HeaderMap| async move { serve(&FAVICON, &headers) }),
        )
}

fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == asset.etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    // Revalidate every time: the files are small and a 304 costs one round trip.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(etag) = HeaderValue::from_str(asset.etag) {
        headers.insert(header::ETAG, etag);
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The first URL may carry ?token=: never send it anywhere as a referrer.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_quoted_hex_and_differ_between_files() {
        for asset in [&INDEX, &APP_JS, &STYLE, &FAVICON] {
            assert_eq!(asset.etag.len(), 18, "{}", asset.etag);
            assert!(asset.etag.starts_with('"') && asset.etag.ends_with('"'));
            assert!(asset.etag[1..17].bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(INDEX.etag, APP_JS.etag);
        assert_ne!(APP_JS.etag, STYLE.etag);
    }

    #[test]
    fn the_page_loads_its_script_from_a_file_never_inline() {
        let html = std::str::from_utf8(INDEX.body).unwrap();
        assert!(html.contains(r#"<script src="/dashboard/app.js" defer></script>"#));
        assert_eq!(html.matches("<script").count(), 1, "no inline script");
        assert!(
            !html.contains("style="),
            "no inline style: the CSP forbids it"
        );
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no CDN"
        );
    }

    #[test]
    fn a_matching_if_none_match_is_answered_304() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"x\", {}", STYLE.etag)).unwrap(),
        );
        assert_eq!(serve(&STYLE, &headers).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(serve(&STYLE, &HeaderMap::new()).status(), StatusCode::OK);
    }
}
