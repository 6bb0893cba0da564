//! The report: what a run measured, as a table for people and as JSON (a documented, tested shape)
//! for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

impl Latency {
    /// Summarises a histogram recorded in microseconds; `None` when it is empty.
    pub fn from_histogram(h: &Histogram<u64>) -> Option<Latency> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Latency {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p99_9: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        })
    }
}

/// One run's results. Counts cover the measured period only (after the warm-up).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `open` (fixed arrival rate) or `closed` (fixed concurrency).
    pub mode: String,
    pub target_rate: Option<f64>,
    pub concurrency: Option<usize>,
    pub nodes: usize,
    pub auctions: usize,
    pub bidders: usize,
    pub watchers: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    /// Bids sent; always `accepted + rejected_total + errors`.
    pub attempted: u64,
    pub accepted: u64,
    /// Rejections by reason (`bid_too_low`, `already_highest_bidder`, ...).
    pub rejected: BTreeMap<String, u64>,
    pub rejected_total: u64,
    /// Bids with no answer: timeouts and dropped connections.
    pub errors: u64,
    /// Open-loop slots not used because the bidder already held the high bid (a real bidder does
    /// not outbid itself); not counted in `attempted`.
    pub skipped: u64,
    /// Bids sent per second over the measured period.
    pub achieved_rate: f64,
    pub accepted_rate: f64,
    /// From each bid's scheduled send time to its `bid_accepted`/`bid_rejected`.
    pub ack_latency_ms: Option<Latency>,
    /// From each accepted bid's scheduled send time to its `bid_placed` at each watcher.
    pub fanout_latency_ms: Option<Latency>,
}

impl Report {
    /// The report as a table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let rate = match (self.target_rate, self.concurrency) {
            (Some(rate), _) => format!("open loop at {rate:.0} bids/s"),
            (None, Some(c)) => format!("closed loop, concurrency {c}"),
            (None, None) => self.mode.clone(),
        };
        let _ = writeln!(
            out,
            "{rate}; {} bidders, {} watchers, {} auctions, {} nodes; {:.1}s measured after {:.1}s warm-up",
            self.bidders, self.watchers, self.auctions, self.nodes, self.duration_s, self.warmup_s
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "  attempted  {:>10}   {:>10.1} /s", self.attempted, self.achieved_rate);
        let _ = writeln!(out, "  accepted   {:>10}   {:>10.1} /s", self.accepted, self.accepted_rate);
        let _ = writeln!(out, "  rejected   {:>10}", self.rejected_total);
        for (reason, n) in &self.rejected {
            let _ = writeln!(out, "    {reason:<24} {n:>8}");
        }
        let _ = writeln!(out, "  errors     {:>10}", self.errors);
        let _ = writeln!(out, "  skipped    {:>10}   (slots where the bidder held the high bid)", self.skipped);
        let _ = writeln!(out);
        let _ = writeln!(out, "  latency (ms)      p50      p90      p99    p99.9      max    count");
        for (name, latency) in [("ack", &self.ack_latency_ms), ("fan-out", &self.fanout_latency_ms)] {
            match latency {
                Some(l) => {
                    let _ = writeln!(
                        out,
                        "  {name:<12} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8}",
                        l.p50, l.p90, l.p99, l.p99_9, l.max, l.count
                    );
                }
                None => {
                    let _ = writeln!(out, "  {name:<12} {:>8}", "-");
                }
            }
        }
        out
    }
}
