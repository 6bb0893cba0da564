//! The auction system's three services, each a library with a thin `main`:
//!
//! - [`bidding`]: WebSocket bidding and live fan-out (port 8080).
//! - [`auction`]: the REST API (port 8081).
//! - [`analytics`]: the durable-log consumer (port 8082).
//!
//! Each exposes `build(config) -> App` (binding its port, connecting its stores) and
//! `App::run(shutdown)`, so tests start the real thing on port 0.

pub mod analytics;
pub mod auction;
pub mod bidding;
pub mod config;
pub mod db;
pub mod http;
pub mod request_log;
mod retry;
pub mod runtime;
pub mod serving;
mod starting;
pub mod store;
mod sync;
#[cfg(feature = "testing")]
pub mod testing;
