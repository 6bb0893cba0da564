//! One span and one completion line per HTTP request on every service, tied together by a
//! request id that the response echoes, so that an operator can go from a client's report to
//! every line the request caused.

use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::HeaderName;
use axum::response::Response;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;

/// The header a request id comes in and goes back out in.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a client; longer ones are replaced.
const MAX_REQUEST_ID: usize = 128;

/// Wraps every route of `router`, and its fallback, so add this after them. It is layered per
/// route (not around the whole router) so that the span can name the matched route template,
/// which, unlike the raw path, does not make one entry per auction.
pub fn traced<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    let trace = TraceLayer::new_for_http()
        .make_span_with(request_span)
        .on_request(())
        .on_response(finished)
        .on_body_chunk(())
        .on_eos(())
        // Failures are answered by `ApiError`, which logs the cause; the completion line has the
        // status. A second line per 503 (say, every health probe while Redis is down) adds noise.
        .on_failure(());
    // The last layer added runs first: a bad id is dropped, a fresh one made where there is none,
    // and only then is the span opened with it.
    router
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_bad_request_id))
}

/// Whether a client's request id may go into logs and back out as a header: bounded, and made
/// of characters that cannot break a log line, a JSON string or a header.
fn valid_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len())
        && id.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Removes a request id the client sent that is not [`valid_request_id`], so that a fresh one
/// takes its place.
async fn drop_bad_request_id(mut request: Request) -> Request {
    let ids = request.headers().get_all(&REQUEST_ID);
    let one_good = ids.iter().count() == 1 && ids.iter().all(|id| valid_request_id(id.as_bytes()));
    if !one_good {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

/// The request's span: what was asked, by which id; `status` and `latency_ms` are recorded when
/// the response is ready.
fn request_span(request: &Request) -> Span {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
    let request_id = request.headers().get(&REQUEST_ID).and_then(|id| id.to_str().ok()).unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        request_id,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    )
}

/// The completion line, in the request's span (which the trace layer has entered).
fn finished(response: &Response, latency: Duration, span: &Span) {
    span.record("status", response.status().as_u16());
    span.record("latency_ms", latency.as_micros() as f64 / 1000.0);
    tracing::info!("request finished");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_bounded_and_plain() {
        assert!(valid_request_id(b"3f2c9a1e-7b4d-4e0a-9c1b-2d5e8f6a7b90"));
        assert!(valid_request_id(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        assert!(valid_request_id(b"svc:req_1.2"));
        assert!(valid_request_id(&[b'a'; MAX_REQUEST_ID]));
        assert!(!valid_request_id(b""));
        assert!(!valid_request_id(&[b'a'; MAX_REQUEST_ID + 1]));
        for bad in ["a b", "a\"b", "a\\nb", "a\nb", "a{b}", "é", "a/b"] {
            assert!(!valid_request_id(bad.as_bytes()), "{bad:?}");
        }
    }
}
