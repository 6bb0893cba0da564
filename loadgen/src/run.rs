//! One load run: set up auctions and connections, send bids on schedule, gather the histograms.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use auction_proto::rest::{Auction, CreateAuction};
use auction_proto::ws::{PlaceBid, ServerFrame};
use auction_proto::{Amount, BidId, ClientFrame};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::opt::Opt;
use crate::report::{Latency, Report};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What every task shares: the clock origin, the measured window and live counters for progress.
struct Shared {
    /// The origin of scheduled times; bid ids carry their scheduled time relative to it, so a
    /// watcher can compute fan-out latency without any shared table.
    epoch: Instant,
    run: String,
    measure_from: Instant,
    stop_at: Instant,
    bid_budget: Option<u64>,
    sent: AtomicU64,
    accepted: AtomicU64,
    stopping: AtomicBool,
    timeout: Duration,
}

impl Shared {
    fn measured(&self, at: Instant) -> bool {
        at >= self.measure_from
    }

    /// Takes one bid from the budget; false when the run is over.
    fn take_bid(&self, at: Instant) -> bool {
        if !self.measured(at) {
            return true;
        }
        let sent = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        if self.bid_budget.is_some_and(|budget| sent >= budget) {
            self.stopping.store(true, Ordering::Relaxed);
        }
        self.bid_budget.is_none_or(|budget| sent <= budget)
    }

    fn bid_id(&self, worker: usize, n: u64, scheduled: Instant) -> String {
        let us = scheduled.saturating_duration_since(self.epoch).as_micros();
        format!("{}-{worker}-{n}-{us}", self.run)
    }

    /// The scheduled time a bid id of this run carries.
    fn scheduled_of(&self, bid_id: &str) -> Option<Instant> {
        let rest = bid_id.strip_prefix(&self.run)?.strip_prefix('-')?;
        let us: u64 = rest.rsplit('-').next()?.parse().ok()?;
        Some(self.epoch + Duration::from_micros(us))
    }
}

/// One bidder's tallies.
struct Tally {
    attempted: u64,
    accepted: u64,
    rejected: BTreeMap<String, u64>,
    errors: u64,
    skipped: u64,
    ack: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    // 1 us to 10 minutes at 3 significant figures.
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| unreachable!("valid bounds"))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Runs the load described by `opt` and returns the report.
pub async fn run(opt: Opt) -> anyhow::Result<Report> {
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
    let auctions = auctions(&opt).await?;

    let connect_started = Instant::now();
    let mut bidder_sockets = Vec::with_capacity(bidders);
    for i in 0..bidders {
        let url = ws_url(&opt, &auctions, i, &format!("lg-b{i}"));
        bidder_sockets.push(connect(&url).await?);
    }
    let mut watcher_sockets = Vec::with_capacity(opt.watchers);
    for i in 0..opt.watchers {
        let url = ws_url(&opt, &auctions, i, &format!("lg-w{i}"));
        watcher_sockets.push(connect(&url).await?);
    }
    let _ = connect_started;

    let epoch = Instant::now();
    let shared = Arc::new(Shared {
        epoch,
        run: format!("lg{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        measure_from: epoch + opt.warmup,
        stop_at: epoch + opt.warmup + opt.duration,
        bid_budget: opt.bids,
        sent: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
        stopping: AtomicBool::new(false),
        timeout: opt.timeout,
    });
    let (watchers_done, done) = watch::channel(false);
    let watcher_tasks: Vec<_> =
        watcher_sockets.into_iter().map(|socket| tokio::spawn(watch(socket, shared.clone(), done.clone()))).collect();
    // Open loop: one clock hands every slot of the schedule to its bidder, in turn.
    let mut slot_senders = Vec::new();
    let bidder_tasks: Vec<_> = bidder_sockets
        .into_iter()
        .enumerate()
        .map(|(i, socket)| {
            let slots = rate.is_some().then(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                slot_senders.push(tx);
                rx
            });
            tokio::spawn(bid(socket, i, shared.clone(), slots))
        })
        .collect();
    let pacer = rate.map(|rate| {
        let shared = shared.clone();
        std::thread::spawn(move || pace(&shared, rate, &slot_senders))
    });
    let progress = std::io::stderr().is_terminal().then(|| tokio::spawn(progress(shared.clone())));

    let mut attempted = 0;
    let mut accepted = 0;
    let mut errors = 0;
    let mut skipped = 0;
    let mut rejected: BTreeMap<String, u64> = BTreeMap::new();
    let mut ack = histogram();
    for task in bidder_tasks {
        let tally = task.await.context("a bidder task failed")?;
        attempted += tally.attempted;
        accepted += tally.accepted;
        errors += tally.errors;
        skipped += tally.skipped;
        for (reason, n) in tally.rejected {
            *rejected.entry(reason).or_default() += n;
        }
        ack.add(&tally.ack).context("merging latency histograms")?;
    }
    if let Some(pacer) = pacer {
        let joined = tokio::task::spawn_blocking(move || pacer.join()).await.context("joining the open-loop clock")?;
        joined.map_err(|_| anyhow::anyhow!("the open-loop clock failed"))?;
    }
    let measured_for = Instant::now().min(shared.stop_at).saturating_duration_since(shared.measure_from);
    // Fan-out of the last bids may still be on its way.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = watchers_done.send(true);
    let mut fanout = histogram();
    for task in watcher_tasks {
        for sample in task.await.context("a watcher task failed")? {
            let _ = fanout.record(sample);
        }
    }
    if let Some(progress) = progress {
        progress.abort();
        eprintln!();
    }
    let seconds = measured_for.as_secs_f64().max(1e-9);
    let rejected_total = rejected.values().sum();
    Ok(Report {
        mode: mode.to_owned(),
        target_rate: rate,
        concurrency: opt.concurrency,
        nodes: opt.ws_urls.len(),
        auctions: auctions.len(),
        bidders,
        watchers: opt.watchers,
        warmup_s: opt.warmup.as_secs_f64(),
        duration_s: measured_for.as_secs_f64(),
        attempted,
        accepted,
        rejected,
        rejected_total,
        errors,
        skipped,
        achieved_rate: attempted as f64 / seconds,
        accepted_rate: accepted as f64 / seconds,
        ack_latency_ms: Latency::from_histogram(&ack),
        fanout_latency_ms: Latency::from_histogram(&fanout),
    })
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

fn ws_url(opt: &Opt, auctions: &[String], i: usize, user: &str) -> String {
    let base = opt.ws_urls[i % opt.ws_urls.len()].trim_end_matches('/');
    let mut url = format!("{base}/ws/auction/{}?user_id={user}", auctions[i % auctions.len()]);
    let token = opt.auth_secret.as_ref().zip(auction_proto::UserId::parse(user).ok()).and_then(|(secret, user)| {
        let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
        auction_proto::auth::mint(secret.as_bytes(), &user, now, 24 * 3600).ok()
    });
    if let Some(token) = token {
        url.push_str(&format!("&token={token}"));
    }
    url
}

async fn connect(url: &str) -> anyhow::Result<Socket> {
    // A small read buffer: tungstenite zeroes the free part of it on every read, and at the 128 KiB
    // default that costs thousands of watchers far more than the frames they read.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4 * 1024);
    let (socket, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .with_context(|| format!("cannot connect to {url}"))?;
    Ok(socket)
}

/// What a bidder knows of its auction, from every frame it has read.
struct Knowledge {
    me: String,
    /// The lowest acceptable bid as last seen.
    min_next: Option<Amount>,
    /// Whether this bidder holds the high bid (then bidding again would only be refused).
    highest: bool,
}

impl Knowledge {
    fn raise(&mut self, amount: Option<Amount>) {
        if let Some(amount) = amount {
            self.min_next = Some(self.min_next.map_or(amount, |m| m.max(amount)));
        }
    }

    fn learn(&mut self, frame: &ServerFrame) {
        match frame {
            ServerFrame::Snapshot(s) => {
                self.min_next = Some(s.min_next_bid);
                self.highest = s.highest_bidder.as_ref().is_some_and(|b| b.as_str() == self.me);
            }
            ServerFrame::BidPlaced(p) => {
                self.raise(p.min_next_bid.or(Amount::from_cents(p.amount.cents() + 1)));
                self.highest = p.bidder.as_str() == self.me;
            }
            ServerFrame::BidAccepted(a) => {
                self.raise(Amount::from_cents(a.amount.cents() + 1));
                self.highest = true;
            }
            ServerFrame::BidRejected(r) => {
                self.raise(r.min_next_bid);
                self.highest = r.reason == auction_proto::RejectReason::AlreadyHighestBidder;
            }
            _ => {}
        }
    }
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
    for j in 0u64.. {
        if budget_spent() {
            return;
        }
        #[allow(clippy::cast_precision_loss)]
        let slot = shared.epoch + Duration::from_secs_f64(j as f64 / rate);
        if slot >= shared.stop_at {
            break;
        }
        sleep_until(slot);
        // A bidder that has stopped (its connection failed) misses its slots; the others go on.
        let bidder = usize::try_from(j % bidders.len() as u64).unwrap_or_default();
        if bidders[bidder].send(slot).is_err() && all_gone() {
            return;
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

/// One bidder: on each slot it is given (or right after each answer, closed loop) it bids the
/// lowest amount it knows to be acceptable, and records the latency from the slot. It never bids
/// against itself: a slot that finds it holding the high bid is skipped (closed loop: it waits to
/// be outbid).
async fn bid(
    mut socket: Socket,
    worker: usize,
    shared: Arc<Shared>,
    mut slots: Option<mpsc::UnboundedReceiver<Instant>>,
) -> Tally {
    let mut tally =
        Tally { attempted: 0, accepted: 0, rejected: BTreeMap::new(), errors: 0, skipped: 0, ack: histogram() };
    let mut known = Knowledge { me: format!("lg-b{worker}"), min_next: None, highest: false };
    let mut n: u64 = 0;
    let open_loop = slots.is_some();
    loop {
        let scheduled = match &mut slots {
            Some(slots) => match slots.recv().await {
                Some(slot) => slot,
                None => break,
            },
            None => Instant::now(),
        };
        if shared.stopping.load(Ordering::Relaxed) || scheduled >= shared.stop_at {
            break;
        }
        // Catch up on what others did since the last answer.
        if !drain_ready(&mut socket, &mut known) {
            break;
        }
        if known.min_next.is_none() || (known.highest && !open_loop) {
            // Closed loop: wait for news (first snapshot, or being outbid) rather than spin.
            match tokio::time::timeout(Duration::from_millis(200), next_frame(&mut socket, shared.timeout)).await {
                Ok(Some(frame)) => known.learn(&frame),
                Ok(None) => break,
                Err(_) => {}
            }
            continue;
        }
        if known.highest {
            tally.skipped += u64::from(shared.measured(scheduled));
            continue;
        }
        if !shared.take_bid(scheduled) {
            break;
        }
        n += 1;
        let measured = shared.measured(scheduled);
        let Some(amount) = known.min_next else { continue };
        let Ok(bid_id) = BidId::parse(&shared.bid_id(worker, n, scheduled)) else { break };
        let frame = ClientFrame::PlaceBid(PlaceBid { amount: amount.into(), bid_id: Some(bid_id) });
        if measured {
            tally.attempted += 1;
        }
        if socket.send(Message::text(frame.encode())).await.is_err() {
            tally.errors += u64::from(measured);
            break;
        }
        let answer = outcome(&mut socket, &mut known, shared.timeout).await;
        let latency = micros(scheduled.elapsed());
        match answer {
            Some(Ok(())) if measured => {
                tally.accepted += 1;
                shared.accepted.fetch_add(1, Ordering::Relaxed);
                let _ = tally.ack.record(latency);
            }
            Some(Err(reason)) if measured => {
                *tally.rejected.entry(reason).or_default() += 1;
                let _ = tally.ack.record(latency);
            }
            Some(_) => {}
            None => {
                tally.errors += u64::from(measured);
                break;
            }
        }
    }
    let _ = socket.close(None).await;
    tally
}

/// Reads every frame already received without waiting; false if the connection is gone.
fn drain_ready(socket: &mut Socket, known: &mut Knowledge) -> bool {
    use futures_util::FutureExt;
    loop {
        match socket.next().now_or_never() {
            None => return true,
            Some(Some(Ok(Message::Text(text)))) => {
                if let Ok(frame) = serde_json::from_str::<ServerFrame>(&text) {
                    known.learn(&frame);
                }
            }
            Some(Some(Ok(Message::Close(_))) | Some(Err(_)) | None) => return false,
            Some(Some(Ok(_))) => {}
        }
    }
}

/// Reads frames until the bid's answer, learning from everything on the way. `Ok` for accepted,
/// `Err(reason)` for rejected, `None` when the connection failed or timed out.
async fn outcome(socket: &mut Socket, known: &mut Knowledge, timeout: Duration) -> Option<Result<(), String>> {
    loop {
        let frame = next_frame(socket, timeout).await?;
        known.learn(&frame);
        match frame {
            ServerFrame::BidAccepted(_) => return Some(Ok(())),
            ServerFrame::BidRejected(r) => return Some(Err(r.reason.as_str().to_owned())),
            _ => {}
        }
    }
}

async fn next_frame(socket: &mut Socket, timeout: Duration) -> Option<ServerFrame> {
    loop {
        match tokio::time::timeout(timeout, socket.next()).await.ok()?? {
            Ok(Message::Text(text)) => return serde_json::from_str(&text).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// One watcher: records, for each `bid_placed` of this run, the time since its scheduled send.
/// It must stay cheap, since thousands run at once on the machine being measured: it waits on its
/// socket and the end of the run only (no timers), and keeps raw samples, merged into one
/// histogram at the end (a full HdrHistogram each would page in megabytes per bid).
async fn watch(mut socket: Socket, shared: Arc<Shared>, mut done: watch::Receiver<bool>) -> Vec<u64> {
    let mut fanout = Vec::new();
    loop {
        let frame = tokio::select! {
            _ = done.changed() => break,
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => break,
            },
        };
        // A watcher with thousands of siblings must be cheap: find the bid id without parsing
        // the whole frame (ids hold no quotes or escapes, by the id rule).
        if let Some(scheduled) = placed_bid_id(&frame).and_then(|id| shared.scheduled_of(id))
            && shared.measured(scheduled)
        {
            fanout.push(micros(scheduled.elapsed()));
        }
    }
    let _ = socket.close(None).await;
    fanout
}

/// The `bid_id` of a `bid_placed` frame, found by scanning rather than parsing.
fn placed_bid_id(frame: &str) -> Option<&str> {
    if !frame.contains(r#""type":"bid_placed""#) {
        return None;
    }
    let start = frame.find(r#""bid_id":""#)? + r#""bid_id":""#.len();
    let len = frame[start..].find('"')?;
    Some(&frame[start..start + len])
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
