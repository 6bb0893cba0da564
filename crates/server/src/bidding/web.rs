//! The web UI (`web/` at the repository root), compiled into the binary and served at `/`, so
//! that the bidding service needs no files beside it. The same files also work from any static
//! web server.

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX: &str = include_str!("../../../../web/index.html");
const APP: &str = include_str!("../../../../web/app.js");
const CONFIG: &str = include_str!("../../../../web/config.js");
const STYLE: &str = include_str!("../../../../web/style.css");

/// The line of `config.js` that says where the node was told the REST API is (`WEB_API_URL`);
/// as shipped, nowhere.
const SERVED_API: &str = "const served = null;";

fn file(content_type: &'static str, body: impl Into<Bytes>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body.into())
}

/// `config.js` with the REST API's address written in, when this node was given one.
fn config_js(api_url: Option<&str>) -> Bytes {
    match api_url {
        // A JSON string is a JavaScript string literal.
        Some(url) => {
            let line = format!("const served = {};", serde_json::Value::from(url));
            Bytes::from(CONFIG.replacen(SERVED_API, &line, 1))
        }
        None => Bytes::from_static(CONFIG.as_bytes()),
    }
}

/// The web UI's files; `api_url` is where its pages call the REST API (`WEB_API_URL`).
pub fn router<S: Clone + Send + Sync + 'static>(api_url: Option<&str>) -> Router<S> {
    let config = config_js(api_url);
    Router::new()
        .route("/", get(|| async { file("text/html; charset=utf-8", INDEX) }))
        .route("/index.html", get(|| async { file("text/html; charset=utf-8", INDEX) }))
        .route("/app.js", get(|| async { file("text/javascript; charset=utf-8", APP) }))
        .route("/config.js", get(move || async move { file("text/javascript; charset=utf-8", config) }))
        .route("/style.css", get(|| async { file("text/css; charset=utf-8", STYLE) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_js_has_the_line_the_node_writes_the_api_into() {
        assert_eq!(CONFIG.matches(SERVED_API).count(), 1);
        assert_eq!(config_js(None), CONFIG.as_bytes());
    }

    #[test]
    fn config_js_carries_the_api_url_as_a_string_literal() {
        let served = config_js(Some("/"));
        let text = std::str::from_utf8(&served).unwrap();
        assert!(text.contains(r#"const served = "/";"#), "{text}");
        assert!(!text.contains(SERVED_API));
        let quoted = config_js(Some("https://x.example/a'b\"c"));
        assert!(std::str::from_utf8(&quoted).unwrap().contains(r#"const served = "https://x.example/a'b\"c";"#));
    }
}
