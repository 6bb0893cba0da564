//! `auction-loadgen` against the real stack: a short, gentle run whose report has the documented
//! shape and balanced books; a run through a node frozen for a second, which must show in p99
//! with no slot skipped; and `--reconnect` runs through a killed node and a silent Redis,
//! whose `--accepted-out` file must be exactly the bids the auctions' durable logs hold.

use auction_loadgen::opt::Opt;
use clap::Parser;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_reports_consistent_numbers() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let a = env.bidding_service().await;
    let b = env.bidding_service().await;
    let opt = Opt::parse_from([
        "auction-loadgen",
        "--api-url",
        &api.base,
        "--ws-url",
        &format!("ws://{},ws://{}", a.addr, b.addr),
        "--auctions",
        "2",
        "--bidders",
        "8",
        "--watchers",
        "4",
        "--rate",
        "100",
        "--warmup",
        "500ms",
        "--duration",
        "2s",
    ]);
    let report = auction_loadgen::run(opt).await.expect("loadgen run");
    let json = serde_json::to_value(&report).unwrap();
    let n = |k: &str| json[k].as_u64().unwrap();
    assert_eq!(n("accepted") + n("rejected_total") + n("errors"), n("attempted"), "{json}");
    assert_eq!(
        json["rejected"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>(),
        n("rejected_total")
    );
    assert_eq!((n("nodes"), n("auctions"), n("bidders"), n("watchers")), (2, 2, 8, 4));
    assert!(n("attempted") >= 100, "{json}");
    assert!(n("accepted") > 0, "{json}");
    assert_eq!(n("errors"), 0, "{json}");
    assert_eq!(json["ack_latency_ms"]["count"].as_u64().unwrap(), n("attempted"));
    assert!(json["fanout_latency_ms"]["count"].as_u64().unwrap() > 0, "{json}");
    // Everything the run saw as accepted is in Redis.
    let (_, list) = api.get("/api/v1/auctions").await;
    let bids: u64 = list["auctions"].as_array().unwrap().iter().map(|a| a["bid_count"].as_u64().unwrap()).sum();
    assert!(bids >= n("accepted"), "{bids} bids in redis, {} accepted", n("accepted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_list_rate_a_run_lists_auctions_beside_the_bids_and_reports_it() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let opt = Opt::parse_from([
        "auction-loadgen",
        "--api-url",
        &api.base,
        "--ws-url",
        &format!("ws://{}", node.addr),
        "--bidders",
        "2",
        "--rate",
        "20",
        "--list-rate",
        "20",
        "--list-query",
        "status=active&limit=10",
        "--warmup",
        "500ms",
        "--duration",
        "1s",
    ]);
    let report = auction_loadgen::run(opt).await.expect("loadgen run");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["list_rate"], 20.0, "{json}");
    assert_eq!(json["list_errors"], 0, "{json}");
    let calls = json["list_latency_ms"]["count"].as_u64().unwrap();
    assert!((15..=25).contains(&calls), "{calls} list calls in a measured second at 20/s: {json}");
    assert!(report.table().contains("  list "), "{}", report.table());
}

/// One accepted bid: (auction, bid id, amount in cents, seq), as `--accepted-out` writes it or as
/// an auction's durable log holds it.
type Accepted = (String, String, i64, u64);

/// The lines of an `--accepted-out` file, in order.
fn accepted_lines(path: &std::path::Path) -> Vec<Accepted> {
    let text = std::fs::read_to_string(path).expect("read the accepted bids");
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields.len(), 5, "auction_id bid_id amount_cents seq accepted_unix_ms: {line:?}");
            let unix_ms: u64 = fields[4].parse().unwrap();
            assert!(unix_ms > 1_700_000_000_000, "a Unix time in ms: {line:?}");
            (fields[0].to_owned(), fields[1].to_owned(), fields[2].parse().unwrap(), fields[3].parse().unwrap())
        })
        .collect()
}

/// Every bid in the durable logs of this test's auctions.
async fn durable_bids(env: &TestEnv, api: &Api) -> Vec<Accepted> {
    let (_, list) = api.get("/api/v1/auctions").await;
    let mut bids = Vec::new();
    for auction in list["auctions"].as_array().unwrap() {
        let id = auction_proto::AuctionId::parse(auction["auction_id"].as_str().unwrap()).unwrap();
        for (_, event) in log_with_times(env, &id).await {
            if let auction_server::store::Event::Bid(bid) = event {
                bids.push((id.to_string(), bid.bid_id.to_string(), bid.amount.cents(), bid.seq));
            }
        }
    }
    bids
}

/// The books of a run with `--accepted-out`: each bid written once, the file exactly the bids
/// the auctions' logs hold (none in doubt was left out or placed twice), and as many lines as the
/// report's accepted bids, warm-up included.
async fn check_accepted_file(env: &TestEnv, api: &Api, path: &std::path::Path, report: &serde_json::Value) {
    let n = |k: &str| report[k].as_u64().unwrap();
    let lines = accepted_lines(path);
    let mut ids: Vec<&str> = lines.iter().map(|(_, bid_id, _, _)| bid_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), lines.len(), "a bid written twice");
    assert_eq!(lines.len() as u64, n("accepted") + n("accepted_warmup"), "{report}");
    let mut written = lines;
    written.sort();
    let mut durable = durable_bids(env, api).await;
    durable.sort();
    let missing: Vec<_> = durable.iter().filter(|bid| written.binary_search(bid).is_err()).collect();
    let unknown: Vec<_> = written.iter().filter(|bid| durable.binary_search(bid).is_err()).collect();
    assert!(missing.is_empty(), "accepted in redis, not in the file: {missing:?}");
    assert!(unknown.is_empty(), "in the file, not in redis: {unknown:?}");
}

/// A file name of this test's own, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(env: &TestEnv) -> TempFile {
        TempFile(std::env::temp_dir().join(format!("{}-accepted.txt", env.database)))
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Waits until the bidding node at `addr` has counted `metric` up to `at_least`.
async fn wait_for_count(addr: std::net::SocketAddr, metric: &str, at_least: f64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while scrape(addr, metric).await < at_least {
        assert!(tokio::time::Instant::now() < deadline, "{metric} of {addr} never reached {at_least}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Sends `signal` to a service process (SIGSTOP and SIGCONT to freeze and thaw it).
fn signal(process: &Process, signal: nix::sys::signal::Signal) {
    let pid = process.child.id().expect("the service is still running");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid"));
    nix::sys::signal::kill(pid, signal).expect("signal the service");
}

/// One of two bidding nodes frozen (SIGSTOP) for a second in the middle of an open-loop run: the
/// stall shows in the ack p99, and every slot of the measured period ends in a measured bid.
///
/// The numbers: 200 bids/s for 6 s measured is 1200 slots, so p99 is about the 12th slowest.
/// Slot `j` goes to bidder `j % 4`, and bidder `i` is on node `i % 2` bidding on auction `i % 2`,
/// so the frozen node's two bidders own every other slot and the whole of one auction. The
/// freeze covers 200 slots, 100 of them theirs: the first waits in flight, the rest queue behind
/// it, each waiting from its own slot until the node wakes, from a second down to nothing, so
/// about 50 wait 500 ms or more: four times what p99 needs. A generator that skips the slots
/// whose bidder holds the high bid measures only a few of them: once the woken node answers the
/// bids in flight, one bidder leads and skips its queue before news of the other's next bid
/// arrives, then the other does the same, and p99 stays in milliseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_frozen_mid_run_shows_in_the_ack_p99_and_no_slot_is_skipped() {
    use nix::sys::signal::Signal;
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let frozen = env.process(env!("CARGO_BIN_EXE_bidding-service"), "frozen-node", &[]).await;
    let steady = env.process(env!("CARGO_BIN_EXE_bidding-service"), "steady-node", &[]).await;
    let opt = Opt::parse_from([
        "auction-loadgen",
        "--api-url",
        &api.base,
        "--ws-url",
        &format!("ws://{},ws://{}", frozen.addr, steady.addr),
        "--auctions",
        "2",
        "--bidders",
        "4",
        "--rate",
        "200",
        "--warmup",
        "500ms",
        "--duration",
        "6s",
    ]);
    let run = tokio::spawn(auction_loadgen::run(opt));
    // About a second into the run (the frozen node takes 100 bids/s), past the warm-up.
    wait_for_count(frozen.addr, "bidding_bids_accepted_total", 100.0).await;
    signal(&frozen, Signal::SIGSTOP);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    signal(&frozen, Signal::SIGCONT);
    assert!(!run.is_finished(), "the run ended before the node woke: the freeze was not in it");
    let report = serde_json::to_value(run.await.unwrap().expect("loadgen run")).unwrap();
    let n = |k: &str| report[k].as_u64().unwrap();
    assert_eq!((n("skipped"), n("errors")), (0, 0), "{report}");
    // Every slot from 0.5 s to 6.5 s at 200/s, each measured.
    assert_eq!(n("attempted"), 1200, "{report}");
    assert_eq!(report["ack_latency_ms"]["count"], 1200, "{report}");
    assert_eq!(n("accepted") + n("rejected_total"), n("attempted"), "{report}");
    let p99 = report["ack_latency_ms"]["p99"].as_f64().unwrap();
    assert!(p99 >= 500.0, "a one-second freeze left p99 at {p99} ms: {report}");
    eprintln!(
        "node frozen 1 s: ack p50 {} ms, p99 {p99} ms, max {} ms; rejected {}",
        report["ack_latency_ms"]["p50"], report["ack_latency_ms"]["max"], report["rejected"]
    );
}

/// A bidding node killed (SIGKILL) in the middle of a `--reconnect` run: its bidders connect to
/// the other node and bid on, the run completes, and the `--accepted-out` file is exactly the
/// bids that the auctions' durable logs hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_reconnect_a_node_killed_mid_run_loses_no_accepted_bid() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let mut doomed = env.process(env!("CARGO_BIN_EXE_bidding-service"), "doomed-node", &[]).await;
    let survivor = env.bidding_service().await;
    let out = TempFile::new(&env);
    let opt = Opt::parse_from([
        "auction-loadgen",
        "--api-url",
        &api.base,
        "--ws-url",
        &format!("ws://{},ws://{}", doomed.addr, survivor.addr),
        "--auctions",
        "2",
        "--bidders",
        "8",
        "--watchers",
        "2",
        "--rate",
        "100",
        "--warmup",
        "500ms",
        "--duration",
        "4s",
        "--timeout",
        "2s",
        "--reconnect",
        "--accepted-out",
        out.arg(),
    ]);
    let run = tokio::spawn(auction_loadgen::run(opt));
    // Bids flow on the doomed node before it dies.
    wait_for_count(doomed.addr, "bidding_bids_accepted_total", 20.0).await;
    doomed.child.kill().await.unwrap();
    let report = serde_json::to_value(run.await.unwrap().expect("loadgen run")).unwrap();
    let n = |k: &str| report[k].as_u64().unwrap();
    assert_eq!(n("accepted") + n("rejected_total") + n("errors"), n("attempted"), "{report}");
    // Half the bidders and one watcher were on the doomed node.
    assert!(n("reconnects") >= 5, "{report}");
    assert_eq!(n("unresolved"), 0, "{report}");
    assert!(report["duration_s"].as_f64().unwrap() >= 3.9, "the run stopped early: {report}");
    let stalls = report["stalls"].as_array().unwrap();
    assert!(stalls.iter().map(|s| s["count"].as_u64().unwrap()).sum::<u64>() >= 1, "{report}");
    // The bidders that moved bid on: accepted bids on the survivor outnumber its own bidders'.
    assert!(scrape(survivor.addr, "bidding_bids_accepted_total").await > 0.0);
    check_accepted_file(&env, &api, &out.0, &report).await;
    eprintln!(
        "node killed: {} reconnects, {} errors, {} accepted (+{} in warm-up), stalls {}",
        n("reconnects"),
        n("errors"),
        n("accepted"),
        n("accepted_warmup"),
        report["stalls"]
    );
}

/// A bidding node whose Redis goes silent for a while answers its bids `unavailable`, though
/// their script calls, held up, run once Redis hears them. With `--reconnect` each such bid is
/// in doubt and sent again with its own `bid_id` until it has a certain answer, which is then the
/// outcome Redis stored: the `--accepted-out` file is exactly the bids Redis holds. (A retry
/// under a new `bid_id` would leave out the bids whose late call was accepted.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_reconnect_bids_refused_as_unavailable_are_settled_by_retries_with_their_bid_ids() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let relay = Relay::start(&auction_server::testing::redis_address()).await;
    env.set("REDIS_TIMEOUT", "500ms");
    env.set("REDIS_ADDRESS", &relay.addr.to_string());
    let node = env.bidding_service().await;
    let out = TempFile::new(&env);
    let opt = Opt::parse_from([
        "auction-loadgen",
        "--api-url",
        &api.base,
        "--ws-url",
        &format!("ws://{}", node.addr),
        "--auctions",
        "1",
        "--bidders",
        "4",
        "--rate",
        "40",
        "--warmup",
        "0s",
        "--duration",
        "4s",
        "--timeout",
        "3s",
        "--reconnect",
        "--accepted-out",
        out.arg(),
    ]);
    let run = tokio::spawn(auction_loadgen::run(opt));
    wait_for_count(node.addr, "bidding_bids_accepted_total", 5.0).await;
    // Silence, until the node has refused a few bids (nothing else is refused meanwhile).
    relay.set(Link::Stalled);
    let refused = scrape(node.addr, "bidding_bids_rejected_total").await;
    wait_for_count(node.addr, "bidding_bids_rejected_total", refused + 4.0).await;
    relay.set(Link::Up);
    let report = serde_json::to_value(run.await.unwrap().expect("loadgen run")).unwrap();
    let n = |k: &str| report[k].as_u64().unwrap();
    assert_eq!(n("accepted") + n("rejected_total") + n("errors"), n("attempted"), "{report}");
    assert!(n("errors") >= 1, "the refusals are failed attempts: {report}");
    assert!(report["rejected"].get("unavailable").is_none(), "`unavailable` is no verdict: {report}");
    assert_eq!(n("unresolved"), 0, "{report}");
    check_accepted_file(&env, &api, &out.0, &report).await;
    eprintln!(
        "redis silent: {} errors, {} accepted, {} rejected, stalls {}",
        n("errors"),
        n("accepted"),
        n("rejected_total"),
        report["stalls"]
    );
}
