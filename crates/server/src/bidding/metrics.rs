//! The bidding service's Prometheus metrics, on a recorder of its own (instances in one process,
//! as in tests, count separately).

use metrics::{Counter, Gauge, Key, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub struct BidMetrics {
    pub accepted: Counter,
    pub rejected: Counter,
    pub connections: Gauge,
    /// Clients cut off because a frame could not be handed to them within the send timeout.
    pub slow_dropped: Counter,
    /// Watchers that fell a whole queue behind and were resynced from a snapshot.
    pub resyncs: Counter,
    /// Connections closed because their bidder token expired.
    pub token_expired: Counter,
    handle: PrometheusHandle,
}

impl BidMetrics {
    pub fn new() -> BidMetrics {
        static META: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));
        let recorder = PrometheusBuilder::new().build_recorder();
        BidMetrics {
            accepted: recorder.register_counter(&Key::from_static_name("bidding_bids_accepted_total"), &META),
            rejected: recorder.register_counter(&Key::from_static_name("bidding_bids_rejected_total"), &META),
            connections: recorder.register_gauge(&Key::from_static_name("bidding_connections"), &META),
            slow_dropped: recorder
                .register_counter(&Key::from_static_name("bidding_slow_clients_dropped_total"), &META),
            resyncs: recorder.register_counter(&Key::from_static_name("bidding_watcher_resyncs_total"), &META),
            token_expired: recorder.register_counter(&Key::from_static_name("bidding_tokens_expired_total"), &META),
            handle: recorder.handle(),
        }
    }

    pub fn render(&self) -> String {
        self.handle.render()
    }
}
