//! The auction service's Prometheus metrics, on a recorder of its own (instances in one process,
//! as in tests, count separately): leadership, the transitions this instance made, and how late
//! after the close in force each auction was ended.

use metrics::{Counter, Gauge, Histogram, Key, Metadata, Recorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::leader::LeaseWatch;

const LATENESS: &str = "auction_close_lateness_seconds";

pub struct AuctionMetrics {
    pub started: Counter,
    pub ended: Counter,
    /// Transitions the fencing check refused (this instance acted on a lease it no longer held).
    pub fenced: Counter,
    /// Auctions the list endpoint loaded (each one snapshot script): what a list call costs Redis.
    pub list_loads: Counter,
    /// Redis time just after an auction was ended, minus its close in force.
    pub close_lateness: Histogram,
    leader: Gauge,
    epoch: Gauge,
    handle: PrometheusHandle,
}

impl AuctionMetrics {
    pub fn new() -> AuctionMetrics {
        static META: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));
        let buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(LATENESS.to_owned()), &buckets)
            .unwrap_or_else(|_| unreachable!("the bucket list is not empty"))
            .build_recorder();
        let counter = |name: &'static str| recorder.register_counter(&Key::from_static_name(name), &META);
        let gauge = |name: &'static str| recorder.register_gauge(&Key::from_static_name(name), &META);
        AuctionMetrics {
            started: counter("auction_started_total"),
            ended: counter("auction_ended_total"),
            fenced: counter("auction_transitions_fenced_total"),
            list_loads: counter("auction_list_loads_total"),
            close_lateness: recorder.register_histogram(&Key::from_static_name(LATENESS), &META),
            leader: gauge("auction_leader"),
            epoch: gauge("auction_leader_epoch"),
            handle: recorder.handle(),
        }
    }

    /// The text for `/metrics`, with leadership as it stands right now.
    pub fn render(&self, lease: &LeaseWatch) -> String {
        let current = (*lease.borrow()).filter(super::leader::Lease::is_valid);
        self.leader.set(if current.is_some() { 1.0 } else { 0.0 });
        #[allow(clippy::cast_precision_loss)]
        self.epoch.set(current.map_or(0.0, |l| l.epoch as f64));
        self.handle.render()
    }
}
