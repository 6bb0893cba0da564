//! One load run: set up auctions and connections, send bids on schedule, gather the histograms.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use auction_proto::Amount;
use auction_proto::rest::{Auction, CreateAuction};
use futures_util::{StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::accepted::AcceptedLog;
use crate::bidder::{Bidder, Headroom, Tally};
use crate::link::{Dialer, Socket, ws_urls};
use crate::opt::Opt;
use crate::report::{Latency, Percentile, Report, Stall, StallSample};
use crate::watcher::watch;

/// What every task shares: the clock origin, the measured window and live counters for progress.
pub(crate) struct Shared {
    /// The origin of scheduled times; bid ids carry their scheduled time relative to it, so a
    /// watcher can compute fan-out latency without any shared table.
    pub(crate) epoch: Instant,
    pub(crate) run: String,
    pub(crate) measure_from: Instant,
    pub(crate) stop_at: Instant,
    pub(crate) bid_budget: Option<u64>,
    pub(crate) sent: AtomicU64,
    pub(crate) accepted: AtomicU64,
    /// Open-loop slots of the measured period never sent: their bidder had stopped for good.
    pub(crate) skipped: AtomicU64,
    pub(crate) stopping: AtomicBool,
    pub(crate) timeout: Duration,
    /// `--reconnect`: connections are made again and bids in doubt sent again.
    pub(crate) reconnect: bool,
    pub(crate) accepted_log: Option<AcceptedLog>,
}

impl Shared {
    pub(crate) fn measured(&self, at: Instant) -> bool {
        at >= self.measure_from
    }

    /// Counts slot `at` as never sent, because its bidder stopped for good; unless the run is
    /// over (a slot the bid budget or the end of the run cut off is no loss) or it was warm-up.
    pub(crate) fn unsent(&self, at: Instant) {
        if self.measured(at) && at < self.stop_at && !self.stopping.load(Ordering::Relaxed) {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes one bid from the budget; false when the run is over.
    pub(crate) fn take_bid(&self, at: Instant) -> bool {
        if !self.measured(at) {
            return true;
        }
        let sent = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        if self.bid_budget.is_some_and(|budget| sent >= budget) {
            self.stopping.store(true, Ordering::Relaxed);
        }
        self.bid_budget.is_none_or(|budget| sent <= budget)
    }

    pub(crate) fn bid_id(&self, worker: usize, n: u64, scheduled: Instant) -> String {
        let us = scheduled.saturating_duration_since(self.epoch).as_micros();
        format!("{}-{worker}-{n}-{us}", self.run)
    }

    /// The scheduled time a bid id of this run carries.
    pub(crate) fn scheduled_of(&self, bid_id: &str) -> Option<Instant> {
        let rest = bid_id.strip_prefix(&self.run)?.strip_prefix('-')?;
        let us: u64 = rest.rsplit('-').next()?.parse().ok()?;
        Some(self.epoch + Duration::from_micros(us))
    }
}

pub(crate) fn histogram() -> Histogram<u64> {
    // 1 us to 10 minutes at 3 significant figures.
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| unreachable!("valid bounds"))
}

pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// The wall-clock time of `at` (now or in the past), in ms since the Unix epoch.
pub(crate) fn unix_ms(at: Instant) -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let then = now.saturating_sub(at.elapsed());
    u64::try_from(then.as_millis()).unwrap_or(u64::MAX)
}

/// Runs the load described by `opt` and returns the report.
pub async fn run(opt: Opt) -> anyhow::Result<Report> {
    let plan = Plan::check(&opt)?;
    let accepted_log = opt.accepted_out.as_deref().map(AcceptedLog::create).transpose()?;
    let auctions = auctions(&opt).await?;
    let bidder_links = connect_all(&opt, &auctions, plan.bidders, "lg-b").await?;
    let watcher_links = connect_all(&opt, &auctions, opt.watchers, "lg-w").await?;

    let epoch = Instant::now();
    let shared = Arc::new(Shared {
        epoch,
        run: format!("lg{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        measure_from: epoch + opt.warmup,
        stop_at: epoch + opt.warmup + opt.duration,
        bid_budget: opt.bids,
        sent: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
        skipped: AtomicU64::new(0),
        stopping: AtomicBool::new(false),
        timeout: opt.timeout,
        reconnect: opt.reconnect,
        accepted_log,
    });
    let (watchers_done, done) = watch::channel(false);
    let watcher_tasks: Vec<_> = watcher_links
        .into_iter()
        .map(|(socket, dialer)| tokio::spawn(watch(socket, dialer, shared.clone(), done.clone())))
        .collect();
    // Open loop: one clock hands every slot of the schedule to its bidder, in turn.
    let mut slot_senders = Vec::new();
    let bidder_tasks: Vec<_> = bidder_links
        .into_iter()
        .enumerate()
        .map(|(i, (socket, dialer))| {
            let slots = plan.rate.is_some().then(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                slot_senders.push(tx);
                rx
            });
            let proxy =
                bids_by_max(by_auction(i, plan.bidders, auctions.len()), plan.proxy_share).then(|| Headroom::new(i));
            tokio::spawn(Bidder::new(i, shared.clone(), socket, dialer, proxy).run(slots))
        })
        .collect();
    let pacer = plan.rate.map(|rate| {
        let shared = shared.clone();
        std::thread::spawn(move || pace(&shared, rate, &slot_senders))
    });
    let lister = plan.list_rate.map(|rate| {
        let url = format!("{}/api/v1/auctions?{}", opt.api_url.trim_end_matches('/'), opt.list_query);
        tokio::spawn(crate::lister::hammer(url, rate, shared.clone()))
    });
    let progress = std::io::stderr().is_terminal().then(|| tokio::spawn(progress(shared.clone())));

    let mut tallies = Vec::with_capacity(bidder_tasks.len());
    for task in bidder_tasks {
        tallies.push(task.await.context("a bidder task failed")?);
    }
    let mut totals = Totals::new();
    let ended = Instant::now();
    for tally in tallies {
        totals.add(tally, ended)?;
    }
    totals.skipped = shared.skipped.load(Ordering::Relaxed);
    if let Some(pacer) = pacer {
        let joined = tokio::task::spawn_blocking(move || pacer.join()).await.context("joining the open-loop clock")?;
        joined.map_err(|_| anyhow::anyhow!("the open-loop clock failed"))?;
    }
    if let Some(lister) = lister {
        let tally = lister.await.context("the list task failed")?;
        totals.list_errors = tally.errors;
        totals.list = Some(tally.latency);
    }
    let measured_for = Instant::now().min(shared.stop_at).saturating_duration_since(shared.measure_from);
    // Fan-out of the last bids may still be on its way.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = watchers_done.send(true);
    let mut fanout = histogram();
    for task in watcher_tasks {
        let (samples, reconnects) = task.await.context("a watcher task failed")?;
        for sample in samples {
            let _ = fanout.record(sample);
        }
        totals.reconnects += reconnects;
    }
    if let Some(progress) = progress {
        progress.abort();
        eprintln!();
    }
    if let Some(log) = &shared.accepted_log {
        log.finish()?;
    }
    Ok(totals.report(&opt, &plan, auctions.len(), measured_for, &fanout))
}

/// What the options ask for, checked.
struct Plan {
    /// `open` (fixed arrival rate) or `closed` (fixed concurrency).
    mode: &'static str,
    bidders: usize,
    /// Bids per second, open loop.
    rate: Option<f64>,
    /// List calls per second.
    list_rate: Option<f64>,
    /// The fraction of bidders that bid by max.
    proxy_share: f64,
}

/// Whether the bidder at place `p` (see [`by_auction`]) is one of those that bid by max:
/// `floor(n × share)` of the first `n` places are, for every `n`, so they are spread evenly.
fn bids_by_max(p: usize, share: f64) -> bool {
    #[allow(clippy::cast_precision_loss)]
    let upto = |n: usize| (n as f64 * share).floor();
    upto(p + 1) > upto(p)
}

/// Bidder `i`'s place when the bidders are ordered by auction (bidder `i` bids on auction
/// `i % auctions`), so that [`bids_by_max`] spreads those bidding by max over the auctions as
/// well as over the bidders of each: ordered by `i`, the share would fall on the same few
/// auctions whenever it repeats with the number of auctions.
fn by_auction(i: usize, bidders: usize, auctions: usize) -> usize {
    let auctions = auctions.max(1);
    let (per, extra) = (bidders / auctions, bidders % auctions);
    let auction = i % auctions;
    auction * per + auction.min(extra) + i / auctions
}

impl Plan {
    fn check(opt: &Opt) -> anyhow::Result<Plan> {
        if opt.ws_urls.is_empty() {
            bail!("--ws-url needs at least one URL");
        }
        if let Some(rate) = opt.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            bail!("--rate must be a positive number of bids per second");
        }
        let (mode, bidders) = match opt.concurrency {
            Some(0) => bail!("--concurrency must be at least 1"),
            Some(c) => ("closed", c),
            None => ("open", opt.bidders),
        };
        let auction_count = if opt.auction_ids.is_empty() { opt.auctions } else { opt.auction_ids.len() };
        if bidders < 2 * auction_count {
            bail!("{bidders} bidders for {auction_count} auctions: each auction needs at least 2 bidders to compete");
        }
        let rate = if mode == "open" { Some(opt.rate.unwrap_or(100.0)) } else { None };
        if let Some(list_rate) = opt.list_rate
            && !(list_rate.is_finite() && list_rate > 0.0)
        {
            bail!("--list-rate must be a positive number of calls per second");
        }
        if opt.max_connecting == 0 {
            bail!("--max-connecting must be at least 1");
        }
        if !(0.0..=1.0).contains(&opt.proxy_share) {
            bail!("--proxy-share must be a fraction from 0 to 1 (got {})", opt.proxy_share);
        }
        Ok(Plan { mode, bidders, rate, list_rate: opt.list_rate, proxy_share: opt.proxy_share })
    }
}

/// Opens `count` connections, each as user `{user}{i}` on its node and auction, at most
/// `--max-connecting` at once (one after another, 10,000 watchers would take seconds to connect;
/// all at once, they would overflow the nodes' accept queues). They come back in order,
/// connection `i` at `i`. A first connection that fails fails the run, except with `--reconnect`:
/// then the connection starts without a socket and is made during the run.
async fn connect_all(
    opt: &Opt,
    auctions: &[String],
    count: usize,
    user: &str,
) -> anyhow::Result<Vec<(Option<Socket>, Dialer)>> {
    let connect = |i: usize| async move {
        let dialer = Dialer::new(ws_urls(opt, auctions, i, &format!("{user}{i}")), opt.timeout);
        let socket = match dialer.first().await {
            Ok(socket) => Some(socket),
            Err(_) if opt.reconnect => None,
            Err(e) => return Err(e),
        };
        Ok((socket, dialer))
    };
    futures_util::stream::iter(0..count).map(connect).buffered(opt.max_connecting.max(1)).try_collect().await
}

/// The bidders' tallies, added up.
struct Totals {
    attempted: u64,
    accepted: u64,
    accepted_warmup: u64,
    errors: u64,
    /// Set from [`Shared::skipped`] once every bidder is done.
    skipped: u64,
    reconnects: u64,
    unresolved: u64,
    beaten: u64,
    rejected: BTreeMap<String, u64>,
    ack: Histogram<u64>,
    stalls: Vec<StallSample>,
    /// The list calls' latency, with `--list-rate`.
    list: Option<Histogram<u64>>,
    list_errors: u64,
}

impl Totals {
    fn new() -> Totals {
        Totals {
            attempted: 0,
            accepted: 0,
            accepted_warmup: 0,
            errors: 0,
            skipped: 0,
            reconnects: 0,
            unresolved: 0,
            beaten: 0,
            rejected: BTreeMap::new(),
            ack: histogram(),
            stalls: Vec::new(),
            list: None,
            list_errors: 0,
        }
    }

    /// Adds one bidder's tally; a stall still on counts until `ended`, the end of the run.
    fn add(&mut self, tally: Tally, ended: Instant) -> anyhow::Result<()> {
        self.attempted += tally.attempted;
        self.accepted += tally.accepted;
        self.accepted_warmup += tally.accepted_warmup;
        self.errors += tally.errors;
        self.reconnects += tally.reconnects;
        self.unresolved += tally.unresolved;
        self.beaten += tally.beaten;
        for (reason, n) in tally.rejected {
            *self.rejected.entry(reason).or_default() += n;
        }
        self.ack.add(&tally.ack).context("merging latency histograms")?;
        let finished = tally.stalls.into_iter().map(|(start_unix_ms, seconds)| StallSample {
            start_unix_ms,
            seconds,
            unfinished: false,
        });
        let unfinished = tally.stalled.map(|(at, start_unix_ms)| StallSample {
            start_unix_ms,
            seconds: ended.saturating_duration_since(at).as_secs_f64(),
            unfinished: true,
        });
        self.stalls.extend(finished.chain(unfinished));
        Ok(())
    }

    fn report(
        self,
        opt: &Opt,
        plan: &Plan,
        auctions: usize,
        measured_for: Duration,
        fanout: &Histogram<u64>,
    ) -> Report {
        let seconds = measured_for.as_secs_f64().max(1e-9);
        let rejected_total = self.rejected.values().sum();
        Report {
            mode: plan.mode.to_owned(),
            target_rate: plan.rate,
            concurrency: opt.concurrency,
            nodes: opt.ws_urls.len(),
            auctions,
            bidders: plan.bidders,
            watchers: opt.watchers,
            warmup_s: opt.warmup.as_secs_f64(),
            duration_s: measured_for.as_secs_f64(),
            attempted: self.attempted,
            accepted: self.accepted,
            rejected: self.rejected,
            rejected_total,
            errors: self.errors,
            skipped: self.skipped,
            achieved_rate: self.attempted as f64 / seconds,
            accepted_rate: self.accepted as f64 / seconds,
            ack_latency_ms: Latency::from_histogram(&self.ack),
            fanout_latency_ms: Latency::from_histogram(fanout),
            accepted_warmup: self.accepted_warmup,
            reconnects: self.reconnects,
            unresolved: self.unresolved,
            stalls: Stall::merge(self.stalls),
            list_rate: plan.list_rate,
            list_latency_ms: self.list.as_ref().and_then(Latency::from_histogram),
            list_errors: self.list_errors,
            proxy_share: plan.proxy_share,
            beaten_by_proxy: self.beaten,
            ack_distribution_ms: Percentile::distribution(&self.ack),
            fanout_distribution_ms: Percentile::distribution(fanout),
        }
    }
}

/// The auctions to bid on: the given ids, or new ones created over REST.
async fn auctions(opt: &Opt) -> anyhow::Result<Vec<String>> {
    if !opt.auction_ids.is_empty() {
        return Ok(opt.auction_ids.clone());
    }
    if opt.auctions == 0 {
        bail!("--auctions must be at least 1");
    }
    let starting_bid = Amount::parse(&opt.starting_bid).context("--starting-bid")?;
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/auctions", opt.api_url.trim_end_matches('/'));
    let now = chrono::Utc::now();
    let length = chrono::Duration::from_std(opt.warmup + opt.duration + Duration::from_secs(3600))?;
    let mut ids = Vec::with_capacity(opt.auctions);
    for i in 0..opt.auctions {
        let body = CreateAuction {
            title: Some(format!("loadgen lot {i}")),
            start_time: now - chrono::Duration::seconds(1),
            end_time: now + length,
            starting_bid,
            // No extensions: the run controls its own length.
            extension_window_s: Some(0),
            extension_s: None,
            reserve_price: None,
            buy_now_price: None,
        };
        let response = http
            .post(&url)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("cannot reach the auction service at {url}"))?;
        if !response.status().is_success() {
            bail!("creating an auction failed: {} {}", response.status(), response.text().await.unwrap_or_default());
        }
        let auction: Auction = response.json().await.context("unreadable auction")?;
        ids.push(auction.auction_id.to_string());
    }
    Ok(ids)
}

/// The open loop's clock, on its own thread: slot `j` of the whole schedule falls at
/// `epoch + j / rate` and belongs to bidder `j % bidders`. It sleeps on the kernel's
/// high-resolution timer, since tokio's timers tick in whole milliseconds: a bidder sleeping on
/// one would send up to a millisecond late, and latency counts from the slot, so the tool's own
/// lateness would be charged to the server. A bidder still busy with an earlier bid finds its
/// slots queued, each keeping its own time, so a slow server is charged in full.
/// The run lasts until `stop_at` even when the last slot falls earlier (a low rate), so that
/// every connection is held for the whole run.
fn pace(shared: &Shared, rate: f64, bidders: &[mpsc::UnboundedSender<Instant>]) {
    let budget_spent = || shared.stopping.load(Ordering::Relaxed);
    let all_gone = || bidders.iter().all(mpsc::UnboundedSender::is_closed);
    // Once every bidder has stopped, the rest of the schedule is counted unsent without waiting.
    let mut gone = false;
    for j in 0u64.. {
        if budget_spent() {
            return;
        }
        #[allow(clippy::cast_precision_loss)]
        let slot = shared.epoch + Duration::from_secs_f64(j as f64 / rate);
        if slot >= shared.stop_at {
            break;
        }
        if !gone {
            sleep_until(slot);
        }
        // A bidder that has stopped (its connection failed) misses its slots, counted unsent;
        // the others go on.
        let bidder = usize::try_from(j % bidders.len() as u64).unwrap_or_default();
        if bidders[bidder].send(slot).is_err() {
            shared.unsent(slot);
            gone = gone || all_gone();
        }
    }
    // Wait out the rest of the run in short naps, in case a bid budget ends it first.
    while !budget_spent() && !all_gone() && Instant::now() < shared.stop_at {
        sleep_until(shared.stop_at.min(Instant::now() + Duration::from_millis(50)));
    }
}

/// Sleeps the calling thread until `at` on the kernel's high-resolution timer.
fn sleep_until(at: Instant) {
    let wait = at.saturating_duration_since(Instant::now());
    if !wait.is_zero() {
        std::thread::sleep(wait);
    }
}

/// Prints a line of progress every second (only when stderr is a terminal).
async fn progress(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let elapsed = shared.epoch.elapsed().as_secs_f64();
        eprint!(
            "\r{elapsed:>6.1}s  sent {:>10}  accepted {:>10}",
            shared.sent.load(Ordering::Relaxed),
            shared.accepted.load(Ordering::Relaxed)
        );
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// How many bidders of each auction bid by max.
    fn proxies_per_auction(bidders: usize, auctions: usize, share: f64) -> Vec<usize> {
        let mut per = vec![0; auctions];
        for i in 0..bidders {
            per[i % auctions] += usize::from(bids_by_max(by_auction(i, bidders, auctions), share));
        }
        per
    }

    #[test]
    fn connecting_none_at_once_is_refused_by_name() {
        let opt = Opt::try_parse_from(["auction-loadgen", "--max-connecting", "0"]).unwrap();
        let err = Plan::check(&opt).err().expect("refused").to_string();
        assert_eq!(err, "--max-connecting must be at least 1");
        let opt = Opt::try_parse_from(["auction-loadgen", "--max-connecting", "1"]).unwrap();
        assert!(Plan::check(&opt).is_ok());
    }

    #[test]
    fn places_by_auction_are_each_bidder_once() {
        for (bidders, auctions) in [(5, 2), (200, 100), (7, 7), (10, 1), (101, 10)] {
            let mut places: Vec<usize> = (0..bidders).map(|i| by_auction(i, bidders, auctions)).collect();
            places.sort_unstable();
            assert_eq!(places, (0..bidders).collect::<Vec<_>>(), "{bidders} bidders, {auctions} auctions");
        }
    }

    #[test]
    fn the_share_that_bids_by_max_is_spread_over_the_auctions() {
        // Two bidders an auction, as in the benchmark: 60 auctions get one bidding by max (and
        // one bidding plainly), none gets two.
        let per = proxies_per_auction(200, 100, 0.3);
        assert_eq!(per.iter().sum::<usize>(), 60);
        assert_eq!(per.iter().filter(|n| **n == 1).count(), 60, "{per:?}");
        // One hot auction: the share of its bidders.
        assert_eq!(proxies_per_auction(10, 1, 0.3), [3]);
        assert_eq!(proxies_per_auction(10, 1, 0.0), [0]);
        assert_eq!(proxies_per_auction(10, 1, 1.0), [10]);
        // Four bidders an auction at a half: two each.
        assert!(proxies_per_auction(40, 10, 0.5).iter().all(|n| *n == 2));
    }
}
