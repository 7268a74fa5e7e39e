//! The admin panel's static assets, embedded in the binary: `/`, `/panel.js`, `/flag.js`, `/access.js`, `/streams.js` (the streams every tab shares), `/panel.css`.
//!
//! The panel is plain HTML, CSS and JavaScript with no build step; it uses only the public API (the session
//! cookie, CSRF header, SSE stream). A strict Content-Security-Policy allows scripts from this origin only.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::service::AppState;

const INDEX: &str = include_str!("../../panel/index.html");
const SCRIPT: &str = include_str!("../../panel/panel.js");
const FLAG_PAGE: &str = include_str!("../../panel/flag.js");
const ACCESS: &str = include_str!("../../panel/access.js");
const STREAMS: &str = include_str!("../../panel/streams.js");
const STYLE: &str = include_str!("../../panel/panel.css");

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { asset(INDEX, "text/html; charset=utf-8") }))
        .route("/panel.js", get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }))
        .route("/flag.js", get(|| async { asset(FLAG_PAGE, "text/javascript; charset=utf-8") }))
        .route("/access.js", get(|| async { asset(ACCESS, "text/javascript; charset=utf-8") }))
        .route("/streams.js", get(|| async { asset(STREAMS, "text/javascript; charset=utf-8") }))
        .route("/panel.css", get(|| async { asset(STYLE, "text/css; charset=utf-8") }))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}
