//! A service that has bound its port but not yet reached Redis or MySQL: it serves at once (an
//! orchestrator's probe gets an answer, not a refused connection), `/health` answering 503 with
//! `status: starting` and, for each server still missing, `connecting` and the last failure;
//! every other route answers 503 `unavailable`. Once every server answers, the service's own
//! routes take over (see [`crate::serving::Routes`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use auction_proto::rest::{ErrorBody, ErrorCode, ErrorDetail, Health};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::watch;

/// What a starting service still waits for, shared by its start-up (which reports each attempt)
/// and its start-up routes (which show it).
#[derive(Clone)]
pub struct Waiting {
    service: &'static str,
    instance_id: Arc<str>,
    /// Each server's check: `ok`, or `connecting` with the last failure.
    checks: Arc<Mutex<BTreeMap<String, String>>>,
    ready: Arc<watch::Sender<bool>>,
}

impl Waiting {
    /// A service that needs each server of `servers` (`redis`, `mysql`, ...).
    pub fn new(service: &'static str, instance_id: &str, servers: &[&str]) -> Waiting {
        let checks = servers.iter().map(|name| ((*name).to_owned(), "connecting".to_owned())).collect();
        Waiting {
            service,
            instance_id: instance_id.into(),
            checks: Arc::new(Mutex::new(checks)),
            ready: Arc::new(watch::Sender::new(false)),
        }
    }

    /// An attempt to reach `server` failed with `reason`; another will follow.
    pub fn failed(&self, server: &str, reason: &str) {
        crate::sync::lock(&self.checks).insert(server.to_owned(), format!("connecting: {reason}"));
    }

    /// `server` answered.
    pub fn connected(&self, server: &str) {
        crate::sync::lock(&self.checks).insert(server.to_owned(), "ok".to_owned());
    }

    /// Every server answered and the service's own routes are in place.
    pub fn done(&self) {
        tracing::info!("ready");
        self.ready.send_replace(true);
    }

    /// Resolves once [`Waiting::done`] was called (tests wait for it before using a service).
    pub fn ready(&self) -> impl Future<Output = ()> + Send + 'static + use<> {
        let mut ready = self.ready.subscribe();
        async move {
            let _ = ready.wait_for(|ready| *ready).await;
        }
    }

    /// The routes served until then.
    pub fn router(&self) -> Router {
        let routes = Router::new().route("/health", get(health)).fallback(unavailable);
        crate::request_log::traced(routes).with_state(self.clone())
    }
}

async fn health(State(waiting): State<Waiting>) -> Response {
    let body = Health {
        status: "starting".to_owned(),
        service: waiting.service.to_owned(),
        instance_id: waiting.instance_id.to_string(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        checks: crate::sync::lock(&waiting.checks).clone(),
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn unavailable(State(waiting): State<Waiting>) -> Response {
    let missing: Vec<String> =
        crate::sync::lock(&waiting.checks).iter().filter(|(_, check)| *check != "ok").map(|(n, _)| n.clone()).collect();
    let message = match missing.is_empty() {
        true => "the service is starting".to_owned(),
        false => format!("the service is starting: waiting for {}", missing.join(" and ")),
    };
    let body = ErrorBody { error: ErrorDetail { code: ErrorCode::Unavailable, message, field: None } };
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}
