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

/// One run's results. Counts cover the measured period only (after the warm-up), except those
/// for `--reconnect` and `--accepted-out`: `accepted_warmup` counts the warm-up alone, and
/// `reconnects`, `unresolved` and `stalls` the whole run. Fields are added, never renamed or
/// removed: scripts read this.
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
    /// Bids sent; always `accepted + rejected_total + errors`. With `--reconnect` a bid is sent
    /// again while its answer is in doubt, and each attempt counts here.
    pub attempted: u64,
    pub accepted: u64,
    /// Rejections by reason (`bid_too_low`, `already_highest_bidder`, ...).
    pub rejected: BTreeMap<String, u64>,
    pub rejected_total: u64,
    /// Attempts with no answer: timeouts and dropped connections; with `--reconnect` also `error`
    /// frames and `unavailable` rejections, which leave the bid in doubt (it is sent again).
    pub errors: u64,
    /// Open-loop slots of the measured period never sent, because their bidder had stopped for
    /// good (its connection failed, without `--reconnect`); not counted in `attempted`. 0 in a run
    /// without failures: every other slot is sent, a bidder holding the high bid included (it is
    /// answered `already_highest_bidder`, in `rejected`). Until that change, it counted the slots
    /// where the bidder held the high bid, which excused stalls.
    pub skipped: u64,
    /// Bids sent per second over the measured period.
    pub achieved_rate: f64,
    pub accepted_rate: f64,
    /// From each bid's scheduled send time to its `bid_accepted`/`bid_rejected`.
    pub ack_latency_ms: Option<Latency>,
    /// From each accepted bid's scheduled send time to its `bid_placed` at each watcher.
    pub fanout_latency_ms: Option<Latency>,
    /// Bids accepted during the warm-up, not counted in `accepted`: `accepted + accepted_warmup`
    /// is every bid accepted in the run, the lines of `--accepted-out`.
    #[serde(default)]
    pub accepted_warmup: u64,
    /// Connections made again after a loss (`--reconnect`), bidders' and watchers', over the whole
    /// run.
    #[serde(default)]
    pub reconnects: u64,
    /// Bids of the whole run, warm-up included, still in doubt when it ended (`--reconnect`): sent,
    /// never answered for certain, so they may or may not stand.
    #[serde(default)]
    pub unresolved: u64,
    /// Each time a bidder stopped getting answers (a lost connection, a timeout, an `error` frame,
    /// an `unavailable` rejection), over the whole run, merged per 100 ms of start time.
    #[serde(default)]
    pub stalls: Vec<Stall>,
    /// `--list-rate`: list calls a second sent beside the bids.
    #[serde(default)]
    pub list_rate: Option<f64>,
    /// From each list call's scheduled time to its whole answer, over the measured period.
    #[serde(default)]
    pub list_latency_ms: Option<Latency>,
    /// List calls with no good answer (an error status, a timeout, or too many out at once).
    #[serde(default)]
    pub list_errors: u64,
    /// `--proxy-share`: the fraction of bidders that bid by max (0: none).
    #[serde(default)]
    pub proxy_share: f64,
    /// Accepted bids (in `accepted`) that a standing max beat at once: answered `leading: false`,
    /// they raised the price without taking the lead.
    #[serde(default)]
    pub beaten_by_proxy: u64,
}

/// The stalls of the bidders that stopped getting answers within the same 100 ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stall {
    /// The start of those 100 ms, in ms since the Unix epoch: a stall starts when the first
    /// attempt that failed was sent, or when a connection was found lost while no bid was out.
    pub start_unix_ms: u64,
    /// How many stalls started in them.
    pub count: u64,
    /// The longest of them, in seconds from its own start to its bidder's next `bid_accepted` or
    /// `bid_rejected`, or, for a loss noticed while no bid was out, to the snapshot of the new
    /// connection (or to the end of the run, when none came).
    pub max_s: f64,
    /// How many of them lasted to the end of the run.
    pub unfinished: u64,
}

/// One bidder's stall, before merging.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StallSample {
    pub start_unix_ms: u64,
    pub seconds: f64,
    /// Still stalled when the run ended.
    pub unfinished: bool,
}

impl Stall {
    /// Merges samples per 100 ms of start time, in time order.
    pub fn merge(samples: impl IntoIterator<Item = StallSample>) -> Vec<Stall> {
        let mut merged: BTreeMap<u64, Stall> = BTreeMap::new();
        for sample in samples {
            let start_unix_ms = sample.start_unix_ms - sample.start_unix_ms % 100;
            let stall =
                merged.entry(start_unix_ms).or_insert(Stall { start_unix_ms, count: 0, max_s: 0.0, unfinished: 0 });
            stall.count += 1;
            stall.max_s = stall.max_s.max(sample.seconds);
            stall.unfinished += u64::from(sample.unfinished);
        }
        merged.into_values().collect()
    }
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
        let _ = writeln!(out, "  skipped    {:>10}   (slots never sent: their bidder had stopped)", self.skipped);
        if self.proxy_share > 0.0 {
            let _ = writeln!(
                out,
                "  beaten     {:>10}   (accepted, but beaten at once by a proxy; {:.0}% of bidders bid by max)",
                self.beaten_by_proxy,
                self.proxy_share * 100.0
            );
        }
        self.resilience_table(&mut out);
        let _ = writeln!(out);
        let _ = writeln!(out, "  latency (ms)      p50      p90      p99    p99.9      max    count");
        let list = self.list_rate.map(|_| ("list", &self.list_latency_ms));
        let rows = [("ack", &self.ack_latency_ms), ("fan-out", &self.fanout_latency_ms)].into_iter().chain(list);
        for (name, latency) in rows {
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

    /// The lines of the failure counts, only when they are not zero, so that the table of a run
    /// without failures reads as it always did. `accepted_warmup` is left to the JSON: it is not
    /// zero in most runs, and only reconciles `--accepted-out` with `accepted`.
    fn resilience_table(&self, out: &mut String) {
        let counts = [
            ("reconnects", self.reconnects, "(connections made again after a loss)"),
            ("unresolved", self.unresolved, "(bids still in doubt at the end)"),
        ];
        for (name, n, note) in counts {
            if n > 0 {
                let _ = writeln!(out, "  {name:<10} {n:>10}   {note}");
            }
        }
        let stalls: u64 = self.stalls.iter().map(|s| s.count).sum();
        if stalls > 0 {
            let longest = self.stalls.iter().map(|s| s.max_s).fold(0.0, f64::max);
            let unfinished: u64 = self.stalls.iter().map(|s| s.unfinished).sum();
            let _ = writeln!(out, "  stalls     {stalls:>10}   (longest {longest:.1} s, {unfinished} to the end)");
        }
        if let Some(rate) = self.list_rate {
            let _ =
                writeln!(out, "  list errors {:>9}   (list calls at {rate:.0} /s beside the bids)", self.list_errors);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            mode: "open".into(),
            target_rate: Some(100.0),
            concurrency: None,
            nodes: 1,
            auctions: 1,
            bidders: 2,
            watchers: 0,
            warmup_s: 0.0,
            duration_s: 1.0,
            attempted: 10,
            accepted: 10,
            rejected: BTreeMap::new(),
            rejected_total: 0,
            errors: 0,
            skipped: 0,
            achieved_rate: 10.0,
            accepted_rate: 10.0,
            ack_latency_ms: None,
            fanout_latency_ms: None,
            accepted_warmup: 0,
            reconnects: 0,
            unresolved: 0,
            stalls: Vec::new(),
            list_rate: None,
            list_latency_ms: None,
            list_errors: 0,
            proxy_share: 0.0,
            beaten_by_proxy: 0,
        }
    }

    #[test]
    fn stalls_merge_per_100_ms_of_start() {
        let sample = |start_unix_ms, seconds, unfinished| StallSample { start_unix_ms, seconds, unfinished };
        let merged = Stall::merge([sample(1_250, 0.5, false), sample(1_299, 2.0, true), sample(1_100, 0.1, false)]);
        assert_eq!(
            merged,
            [
                Stall { start_unix_ms: 1_100, count: 1, max_s: 0.1, unfinished: 0 },
                Stall { start_unix_ms: 1_200, count: 2, max_s: 2.0, unfinished: 1 },
            ]
        );
    }

    #[test]
    fn the_table_shows_the_failure_counts_only_when_there_are_some() {
        let lines = |table: &str, name: &str| table.lines().filter(|l| l.starts_with(&format!("  {name} "))).count();
        let mut quiet = report();
        quiet.accepted_warmup = 5;
        let quiet = quiet.table();
        for name in ["warm-up", "reconnects", "unresolved", "stalls", "beaten"] {
            assert_eq!(lines(&quiet, name), 0, "{name} in\n{quiet}");
        }
        let mut eventful = report();
        eventful.reconnects = 3;
        eventful.unresolved = 1;
        eventful.stalls = Stall::merge([StallSample { start_unix_ms: 5_000, seconds: 1.25, unfinished: true }]);
        let table = eventful.table();
        assert!(table.contains("  reconnects          3"), "{table}");
        assert!(table.contains("  unresolved          1"), "{table}");
        assert!(table.contains("  stalls              1   (longest 1.2 s, 1 to the end)"), "{table}");
        assert_eq!(lines(&table, "warm-up"), 0, "{table}");
    }

    #[test]
    fn the_table_shows_the_proxy_share_and_beaten_answers_when_bidders_bid_by_max() {
        let mut proxied = report();
        proxied.proxy_share = 0.3;
        proxied.beaten_by_proxy = 4;
        let table = proxied.table();
        assert!(
            table.contains(
                "  beaten              4   (accepted, but beaten at once by a proxy; 30% of bidders bid by max)"
            ),
            "{table}"
        );
    }

    #[test]
    fn a_report_from_before_the_failure_fields_still_reads() {
        let mut json = serde_json::to_value(report()).unwrap();
        for field in [
            "accepted_warmup",
            "reconnects",
            "unresolved",
            "stalls",
            "list_rate",
            "list_latency_ms",
            "list_errors",
            "proxy_share",
            "beaten_by_proxy",
        ] {
            json.as_object_mut().unwrap().remove(field);
        }
        assert_eq!(serde_json::from_value::<Report>(json).unwrap(), report());
    }
}
