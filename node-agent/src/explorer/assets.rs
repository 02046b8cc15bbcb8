//! The page, embedded at build time (`build.rs` builds `web/` with Vite): `/` is
//! `index.html`; `/assets/*` are the hashed bundles, cacheable forever. Anything else is 404.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Explorer;

/// `(route, bytes)` of every built file.
static FILES: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

pub fn routes() -> axum::Router<Explorer> {
    axum::Router::new().route("/", get(index)).route("/index.html", get(index)).route("/assets/{file}", get(asset))
}

fn content_type(route: &str) -> &'static str {
    match route.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn file(route: &str, cache: &'static str) -> Response {
    match FILES.iter().find(|(r, _)| *r == route) {
        Some((route, bytes)) => {
            let mut response = (StatusCode::OK, *bytes).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(route)));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
            response
        }
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

async fn index() -> Response {
    file("/index.html", "no-cache")
}

async fn asset(Path(name): Path<String>) -> Response {
    file(&format!("/assets/{name}"), "public, max-age=31536000, immutable")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_embedded_without_inline_script() {
        let (_, index) = FILES.iter().find(|(r, _)| *r == "/index.html").expect("index.html is built");
        let html = String::from_utf8_lossy(index);
        assert!(html.contains(r#"<script type="module" crossorigin src="/assets/"#), "{html}");
        // Every <script> has a src: nothing inline for the CSP to refuse.
        assert_eq!(html.matches("<script").count(), html.matches("<script type=\"module\" crossorigin src=").count());
        assert!(!html.contains("style="), "no inline style attributes");
        assert!(FILES.iter().any(|(r, _)| r.starts_with("/assets/") && r.ends_with(".js")));
        assert_eq!(content_type("/assets/index-x.js"), "text/javascript; charset=utf-8");
    }
}
