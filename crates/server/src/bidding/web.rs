//! The web UI (`web/` at the repository root), compiled into the binary and served at `/`, so
//! that the bidding service needs no files beside it. The same files also work from any static
//! web server.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX: &str = include_str!("../../../../web/index.html");
const APP: &str = include_str!("../../../../web/app.js");
const CONFIG: &str = include_str!("../../../../web/config.js");
const STYLE: &str = include_str!("../../../../web/style.css");

fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body)
}

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { file("text/html; charset=utf-8", INDEX) }))
        .route("/index.html", get(|| async { file("text/html; charset=utf-8", INDEX) }))
        .route("/app.js", get(|| async { file("text/javascript; charset=utf-8", APP) }))
        .route("/config.js", get(|| async { file("text/javascript; charset=utf-8", CONFIG) }))
        .route("/style.css", get(|| async { file("text/css; charset=utf-8", STYLE) }))
}
