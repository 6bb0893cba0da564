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

/// One point of a latency distribution: `ms` is the latency that `percentile` percent of the
/// samples did not exceed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentile {
    /// From 0 to 100; 100 is the largest sample.
    pub percentile: f64,
    pub ms: f64,
}

/// Where the points of a distribution fall within each factor of ten of the tail (`1 - q`): at
/// 1, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2 and 0.15 times it, so about evenly on a log scale of
/// `1 / (1 - q)`: p0, p20, p40, p50, p60, p70, p80, p85, then p90, p92, ..., p98.5, then p99,
/// p99.2, ... and so on.
const TAIL_STEPS: [f64; 8] = [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.15];

impl Percentile {
    /// The distribution of a histogram recorded in microseconds, for percentile plots: the
    /// points of [`TAIL_STEPS`] from p0 on, as far into the tail as there are samples to resolve
    /// it (a tail of at least one sample: `1 - q >= 1 / count`), then the largest sample as p100.
    /// `None` when the histogram is empty.
    pub fn distribution(h: &Histogram<u64>) -> Option<Vec<Percentile>> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        #[allow(clippy::cast_precision_loss)]
        let smallest_tail = 1.0 / h.len() as f64;
        let mut points = Vec::new();
        'decades: for decade in 0..20 {
            for step in TAIL_STEPS {
                let tail = step / 10f64.powi(decade);
                if tail < smallest_tail {
                    break 'decades;
                }
                // The percentile in as many decimals as its decade needs, as a whole number of
                // those decimals, so that it and its quantile are each the nearest f64 to the
                // decimal (p99.85, not p99.85000000000001; q 0.999 exactly as `Latency` asks).
                let places = 10f64.powi(decade + 1);
                let units = ((100.0 - tail * 100.0) * places).round();
                let quantile = units / (100.0 * places);
                points.push(Percentile { percentile: units / places, ms: ms(h.value_at_quantile(quantile)) });
            }
        }
        points.push(Percentile { percentile: 100.0, ms: ms(h.max()) });
        Some(points)
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
    /// The distribution behind `ack_latency_ms`, for plotting (`auction-loadgen plot`): see
    /// [`Percentile::distribution`].
    #[serde(default)]
    pub ack_distribution_ms: Option<Vec<Percentile>>,
    /// The distribution behind `fanout_latency_ms`, likewise.
    #[serde(default)]
    pub fanout_distribution_ms: Option<Vec<Percentile>>,
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
            ack_distribution_ms: None,
            fanout_distribution_ms: None,
        }
    }

    /// Samples of 1, 2, ... `n` ms.
    fn ramp(n: u64) -> Histogram<u64> {
        let mut h = crate::run::histogram();
        for ms in 1..=n {
            h.record(ms * 1000).unwrap();
        }
        h
    }

    #[test]
    fn the_distribution_runs_from_p0_as_far_into_the_tail_as_the_samples_reach_then_the_max() {
        let h = ramp(1000);
        let points = Percentile::distribution(&h).unwrap();
        let percentiles: Vec<f64> = points.iter().map(|p| p.percentile).collect();
        assert_eq!(
            percentiles,
            [
                0.0, 20.0, 40.0, 50.0, 60.0, 70.0, 80.0, 85.0, 90.0, 92.0, 94.0, 95.0, 96.0, 97.0, 98.0, 98.5, 99.0,
                99.2, 99.4, 99.5, 99.6, 99.7, 99.8, 99.85, 99.9, 100.0
            ],
            "1,000 samples resolve a tail down to one of them (p99.9), not p99.92"
        );
        // Each point is the histogram's own value at that quantile (within its 3 significant
        // figures of the ramp's true values), and it agrees with the summary.
        let at = |p: f64| points.iter().find(|x| x.percentile == p).unwrap().ms;
        assert!((at(0.0) - 1.0).abs() < 0.01, "{points:?}");
        assert!((at(50.0) - 500.0).abs() < 1.0, "{points:?}");
        assert!((at(99.85) - 999.0).abs() < 1.0, "{points:?}");
        let summary = Latency::from_histogram(&h).unwrap();
        assert_eq!((at(50.0), at(90.0), at(99.0), at(99.9)), (summary.p50, summary.p90, summary.p99, summary.p99_9));
        assert_eq!(at(100.0), summary.max);
        assert!(
            points.windows(2).all(|w| w[0].ms <= w[1].ms),
            "latency never falls as the percentile rises: {points:?}"
        );
    }

    #[test]
    fn the_distribution_of_few_samples_is_short_and_of_none_is_absent() {
        assert_eq!(Percentile::distribution(&crate::run::histogram()), None);
        let one = Percentile::distribution(&ramp(1)).unwrap();
        assert_eq!(one.iter().map(|p| p.percentile).collect::<Vec<_>>(), [0.0, 100.0]);
        assert_eq!(Percentile::distribution(&ramp(10)).unwrap().len(), TAIL_STEPS.len() + 2, "p0..p85, p90, p100");
        // A hundred thousand samples reach p99.999.
        let many = Percentile::distribution(&ramp(100_000)).unwrap();
        assert_eq!(many.iter().rev().nth(1).unwrap().percentile, 99.999);
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
            "ack_distribution_ms",
            "fanout_distribution_ms",
        ] {
            json.as_object_mut().unwrap().remove(field);
        }
        assert_eq!(serde_json::from_value::<Report>(json).unwrap(), report());
    }
}
