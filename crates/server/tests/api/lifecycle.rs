//! The lifecycle: leader election with fencing, the deadline scheduler, extend and cancel,
//! failover (a killed, a paused and a cut-off leader), and bidding that never depends on the
//! leader.
//!
//! Times are measured where they are decided: a log entry's id carries the Redis time at which it
//! was appended ([`log_with_times`]), the leader's `/metrics` has close lateness by Redis time, and
//! the auction hash keeps the epoch of its last transition (`fence`). The test's own clock only
//! bounds how long a test waits, never whether the system was on time, so a loaded machine slows
//! the tests without failing them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use auction_proto::rest::{CreateAuction, LeaderInfo};
use auction_proto::ws::ServerFrame;
use auction_proto::{AuctionId, RejectReason};
use auction_server::store::{Advance, CreateOutcome, Event, Fence, Keys, Live, NewAuction, Received, StoredState};
use chrono::Utc;
use nix::sys::signal::Signal;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::helpers::*;

/// How long one look at an instance (its `/api/v1/leader` or `/metrics`) may take: generous, as a
/// loaded machine may be slow to answer, which is no failure of the lease.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// How soon after a monitor round starts its answers must come to show two beliefs at once: well
/// under the 10% of the TTL (200 ms at the shortest TTL here) that separates one belief from the
/// next (see [`Monitor`]).
const CONCLUSIVE: Duration = Duration::from_millis(150);

/// Waits (up to [`WAIT`]) until one of `apis` answers that it believes it leads; its index and its
/// answer. Any failure of the endpoint fails the test: it must never read as "nobody leads".
async fn believed_leader(apis: &[Api]) -> (usize, LeaderInfo) {
    let deadline = Instant::now() + WAIT;
    loop {
        for (i, api) in apis.iter().enumerate() {
            let info = api.leader_info(PROBE_TIMEOUT).await.unwrap_or_else(|e| panic!("{e}"));
            // The lease (holder and epoch) is read a moment before the belief, so right at a
            // takeover an answer may pair the new belief with the old lease: only an answer
            // naming the believer as the holder carries the believer's epoch.
            if info.answered_by_leader == Some(true) && info.instance_id == info.answered_by {
                return (i, info);
            }
        }
        assert!(Instant::now() < deadline, "no instance believes it leads");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (up to [`WAIT`]) until `api`'s instance believes it leads; its answer.
async fn leads(api: &Api) -> LeaderInfo {
    believed_leader(std::slice::from_ref(api)).await.1
}

/// A counter or gauge from the instance's `/metrics` (0 while it is not there yet).
async fn metric_of(api: &Api, name: &str) -> f64 {
    let text = api.metrics(PROBE_TIMEOUT).await.unwrap_or_else(|e| panic!("{e}"));
    metric(&text, name).unwrap_or(0.0)
}

/// The epoch of the last transition of auction `id` (`advance.lua` writes it as `fence`): which
/// leadership started or ended it.
async fn fence(env: &TestEnv, id: &AuctionId) -> Option<u64> {
    let key = Keys::new(&env.prefix).auction(id).state;
    let mut conn = env.redis_connection().await;
    redis::cmd("HGET").arg(key).arg("fence").query_async(&mut conn).await.unwrap()
}

/// The Redis times (ms) of the `ended` entries on auction `id`'s durable log, with the close in
/// force each ended.
async fn ends(env: &TestEnv, id: &AuctionId) -> Vec<(i64, i64)> {
    let log = log_with_times(env, id).await;
    log.into_iter()
        .filter_map(|(at, event)| match event {
            Event::Ended(ended) => Some((at, ended.end_ms)),
            _ => None,
        })
        .collect()
}

/// Waits (up to [`WAIT`]) until auction `id`'s log has an event of `kind`; the Redis time it was
/// appended and the event.
async fn wait_logged(env: &TestEnv, id: &AuctionId, kind: &str) -> (i64, Event) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(found) = log_with_times(env, id).await.into_iter().find(|(_, e)| e.kind() == kind) {
            return found;
        }
        assert!(Instant::now() < deadline, "{id} has no `{kind}` on its log");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (up to [`WAIT`]) until the scheduler's deadline index no longer holds auction `id`. The
/// scheduler removes an auction once it has ended it; until then another pass could act on it.
async fn wait_unscheduled(env: &TestEnv, id: &AuctionId) {
    let mut conn = env.redis_connection().await;
    let deadlines = Keys::new(&env.prefix).deadlines();
    let deadline = Instant::now() + WAIT;
    loop {
        let score: Option<f64> =
            redis::cmd("ZSCORE").arg(&deadlines).arg(id.as_str()).query_async(&mut conn).await.unwrap();
        let Some(score) = score else { return };
        assert!(Instant::now() < deadline, "{id} is still scheduled (at {score}) after it ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that auction `id` ended exactly once (one `ended` on its durable log, once the
/// scheduler is done with it), not before its close; returns the Redis time of the end and the
/// close it ended at.
async fn ended_once(env: &TestEnv, id: &AuctionId) -> (i64, i64) {
    wait_unscheduled(env, id).await;
    let ends = ends(env, id).await;
    assert_eq!(ends.len(), 1, "{id} must end exactly once: {:?}", log_with_times(env, id).await);
    let (at, close) = ends[0];
    // 1 ms for the entry id, which takes Redis's clock in whole ms, possibly as read when the
    // script began rather than at its `TIME` call.
    assert!(at + 1 >= close, "{id} ended {} ms before its close", close - at);
    (at, close)
}

fn ended_frame(frame: &ServerFrame) -> Option<auction_proto::ws::AuctionEnded> {
    match frame {
        ServerFrame::AuctionEnded(e) => Some(e.clone()),
        _ => None,
    }
}

/// Sends `signal` to a service process (SIGSTOP and SIGCONT to pause and resume it).
fn signal(process: &Process, signal: Signal) {
    let pid = process.child.id().expect("the service is still running");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid"));
    nix::sys::signal::kill(pid, signal).expect("signal the service");
}

/// Where the monitor reads an instance's own belief that it leads.
#[derive(Clone, Copy)]
enum Probe {
    /// `answered_by_leader` of `GET /api/v1/leader`.
    Leader,
    /// `auction_leader` of `GET /metrics`: the same belief, but answered without Redis, for an
    /// instance cut off from it.
    Metrics,
}

impl Probe {
    async fn believes(self, api: &Api) -> Result<bool, String> {
        match self {
            Probe::Leader => {
                let info = api.leader_info(PROBE_TIMEOUT).await?;
                info.answered_by_leader.ok_or_else(|| format!("{}: no answered_by_leader", api.base))
            }
            Probe::Metrics => {
                let text = api.metrics(PROBE_TIMEOUT).await?;
                let value =
                    metric(&text, "auction_leader").ok_or_else(|| format!("{}: no auction_leader", api.base))?;
                Ok(value == 1.0)
            }
        }
    }
}

/// One instance the monitor watches.
struct Watched {
    name: String,
    api: Api,
    probe: Probe,
    /// Set while the test has made the instance unable to answer (killed or paused): a look sent
    /// meanwhile may fail. Any other failure fails the monitor.
    excused: Arc<AtomicBool>,
}

impl Watched {
    fn new(process: &Process, probe: Probe) -> Watched {
        Watched {
            name: process.instance_id.clone(),
            api: process.api.clone(),
            probe,
            excused: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Looks at every instance's own belief at once, every 50 ms, and fails if two believe they lead
/// in the same round. A legitimate handover cannot show two: a belief ends at 90% of the TTL after
/// its last renewal while the lease in Redis lasts the whole TTL, so a new belief starts at least
/// 10% of the TTL (200 ms and more in these tests) after the old one ended. Two "yes" answers that
/// both came within [`CONCLUSIVE`] of the round's start therefore show two beliefs at once; a
/// round whose "yes" answers were slower proves nothing either way and is only counted.
struct Monitor {
    stop: Arc<AtomicBool>,
    /// Rounds with two "yes" answers too slow to prove an overlap.
    inconclusive: Arc<std::sync::atomic::AtomicUsize>,
    /// The leader of the latest round.
    latest: tokio::sync::watch::Receiver<Option<String>>,
    task: JoinHandle<Vec<Option<String>>>,
}

impl Monitor {
    fn start(watched: Vec<Watched>) -> Monitor {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (latest_tx, latest) = tokio::sync::watch::channel(None);
        let inconclusive = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let slow_rounds = inconclusive.clone();
        let task = tokio::spawn(async move {
            let mut rounds = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                let sent = Instant::now();
                let looks = watched.iter().map(|w| async move {
                    let excused = w.excused.load(Ordering::SeqCst);
                    let belief = w.probe.believes(&w.api).await;
                    (w, excused || w.excused.load(Ordering::SeqCst), belief, sent.elapsed())
                });
                let (mut leaders, mut slowest) = (Vec::new(), Duration::ZERO);
                for (w, excused, belief, took) in futures_util::future::join_all(looks).await {
                    match belief {
                        Ok(true) => {
                            leaders.push(w.name.clone());
                            slowest = slowest.max(took);
                        }
                        Ok(false) => {}
                        Err(_) if excused => {}
                        Err(e) => panic!("the leader monitor could not read {}: {e}", w.name),
                    }
                }
                if leaders.len() > 1 && slowest > CONCLUSIVE {
                    slow_rounds.fetch_add(1, Ordering::SeqCst);
                } else {
                    assert!(leaders.len() <= 1, "two instances believe they lead at once: {leaders:?}");
                    latest_tx.send_replace(leaders.first().cloned());
                    rounds.push(leaders.pop());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            rounds
        });
        Monitor { stop, inconclusive, latest, task }
    }

    /// Waits (up to [`WAIT`]) until a round of the monitor has seen `name` lead, so that its
    /// account covers the takeover the test has already seen.
    async fn until_leading(&mut self, name: &str) {
        let seen = tokio::time::timeout(WAIT, self.latest.wait_for(|l| l.as_deref() == Some(name))).await;
        assert!(matches!(seen, Ok(Ok(_))), "the leader monitor never saw {name} lead (or it failed)");
    }

    /// Stops the monitor; the leaders it saw in turn (a repeat only after another led between).
    /// Fails the test if the monitor failed.
    async fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        let rounds = match self.task.await {
            Ok(rounds) => rounds,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        assert!(rounds.len() > 10, "the leader monitor hardly ran: {} rounds", rounds.len());
        let inconclusive = self.inconclusive.load(Ordering::SeqCst);
        if inconclusive > 0 {
            eprintln!("leader monitor: {inconclusive} rounds with two slow \"yes\" answers proved nothing");
        }
        let mut turns: Vec<String> = Vec::new();
        for leader in rounds.into_iter().flatten() {
            if turns.last() != Some(&leader) {
                turns.push(leader);
            }
        }
        turns
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_leader_fails_over_and_the_close_in_the_gap_ends_exactly_once() {
    // A long lease makes a long gap: the close below falls in it with seconds to spare.
    const TTL_MS: i64 = 5000;
    let mut env = TestEnv::new().await;
    env.set("LEADER_TTL", "5s");
    let mut instances = Vec::new();
    for i in 0..3 {
        instances.push(env.auction_process(&format!("inst-{i}")).await);
    }
    let node = env.bidding_service().await;
    let store = env.store().await;
    let apis: Vec<Api> = instances.iter().map(|p| p.api.clone()).collect();
    let (first, first_info) = believed_leader(&apis).await;
    let first_id = instances[first].instance_id.clone();
    let watched: Vec<Watched> = instances.iter().map(|p| Watched::new(p, Probe::Leader)).collect();
    let killed = watched[first].excused.clone();
    let mut monitor = Monitor::start(watched);

    // An auction the first leader starts, with a bid on it.
    let follower = apis[(first + 1) % apis.len()].clone();
    let auction = follower.create_open(3, "10", 0).await;
    let id = auction.auction_id.clone();
    wait_logged(&env, &id, "started").await;
    assert_eq!(fence(&env, &id).await, Some(first_info.epoch), "the first leader started it");
    let (mut alice, _) = node.connect(id.as_str(), "alice").await;
    assert!(matches!(alice.bid("10", None).await, ServerFrame::BidAccepted(_)));
    let (mut watcher, _) = node.connect(id.as_str(), "watcher").await;

    // Kill the leader abruptly. Once it is gone, Redis time and what is left of its lease say
    // whether the close falls after the death and before anyone else can lead.
    killed.store(true, Ordering::SeqCst);
    instances[first].child.start_kill().unwrap();
    instances[first].child.wait().await.unwrap();
    let killed_ms = store.now_ms().await.unwrap();
    let (holder, epoch, lease_ms_left) = store.leader().await.unwrap();
    assert_eq!(
        (holder.as_deref(), epoch),
        (Some(first_id.as_str()), first_info.epoch),
        "the lease outlives its holder"
    );
    let close_ms = auction.end_time.timestamp_millis();
    assert!(killed_ms < close_ms, "the leader died {} ms after the close, not before it", killed_ms - close_ms);
    assert!(
        close_ms < killed_ms + lease_ms_left,
        "the close is not in the gap: the dead leader's lease ran out {} ms before it",
        close_ms - killed_ms - lease_ms_left
    );

    let ended = watcher.next_matching(ended_frame).await;
    assert_eq!(ended.winner.as_ref().map(|w| w.as_str()), Some("alice"));
    assert_eq!(ended.final_price, Some(amount("10")));

    // Another instance took over with a higher epoch and ended it, once, within the TTL.
    let survivors: Vec<Api> = apis.iter().enumerate().filter(|(i, _)| *i != first).map(|(_, a)| a.clone()).collect();
    let (new, new_info) = believed_leader(&survivors).await;
    assert!(
        new_info.epoch > first_info.epoch,
        "the new leader's epoch {} is not above {}",
        new_info.epoch,
        first_info.epoch
    );
    let (ended_ms, _) = ended_once(&env, &id).await;
    assert!(
        ended_ms <= killed_ms + TTL_MS + 1000,
        "ended {} ms after the leader died, with a {TTL_MS} ms lease",
        ended_ms - killed_ms
    );
    assert_eq!(fence(&env, &id).await, Some(new_info.epoch), "the end was not made with the new leader's epoch");
    assert_eq!(metric_of(&survivors[new], "auction_ended_total").await, 1.0, "the new leader's own count");
    assert_eq!(metric_of(&survivors[1 - new], "auction_ended_total").await, 0.0, "the other follower ended nothing");
    eprintln!(
        "failover: killed {} ms before the close, ended {} ms after it, {} ms after the death",
        close_ms - killed_ms,
        ended_ms - close_ms,
        ended_ms - killed_ms
    );

    // The new leader recorded the result (no analytics service runs here).
    let mut conn = env.mysql().await;
    let rows: Vec<(Vec<u8>, rust_decimal::Decimal)> =
        wait_rows(&mut conn, "SELECT winner, final_price FROM auction_results WHERE auction_id = ?", &[id.as_str()], 1)
            .await;
    assert_eq!((rows[0].0.as_slice(), rows[0].1.to_string().as_str()), (b"alice".as_slice(), "10.00"));

    let new_id = new_info.answered_by.unwrap();
    monitor.until_leading(&new_id).await;
    assert_eq!(monitor.finish().await, [first_id, new_id], "the leaders in turn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_wakes_replaced_and_changes_nothing() {
    let mut env = TestEnv::new().await;
    env.set("LEADER_TTL", "2s");
    let instances = [env.auction_process("inst-a").await, env.auction_process("inst-b").await];
    let store = env.store().await;
    let apis: Vec<Api> = instances.iter().map(|p| p.api.clone()).collect();
    let (old, old_info) = believed_leader(&apis).await;
    let (paused, other) = (&instances[old], &instances[1 - old]);
    let watched: Vec<Watched> = instances.iter().map(|p| Watched::new(p, Probe::Leader)).collect();
    let asleep = watched[old].excused.clone();
    let mut monitor = Monitor::start(watched);

    // Two auctions the old leader starts: one closes while it is paused, one after it wakes.
    let early = other.api.create_open(3, "1", 0).await;
    let late = other.api.create_open(7, "1", 0).await;
    for auction in [&early, &late] {
        wait_logged(&env, &auction.auction_id, "started").await;
        assert_eq!(fence(&env, &auction.auction_id).await, Some(old_info.epoch), "the old leader started it");
    }
    let started_before = metric_of(&paused.api, "auction_started_total").await;
    let ended_before = metric_of(&paused.api, "auction_ended_total").await;
    assert_eq!((started_before, ended_before), (2.0, 0.0));

    // Pause the leader's process while nothing is due, past its lease.
    asleep.store(true, Ordering::SeqCst);
    signal(paused, Signal::SIGSTOP);
    let paused_ms = store.now_ms().await.unwrap();
    let early_close = early.end_time.timestamp_millis();
    assert!(paused_ms < early_close, "paused {} ms after the early close", paused_ms - early_close);
    let new_info = leads(&other.api).await;
    assert!(
        new_info.epoch > old_info.epoch,
        "the new leader's epoch {} is not above {}",
        new_info.epoch,
        old_info.epoch
    );
    wait_logged(&env, &early.auction_id, "ended").await;
    signal(paused, Signal::SIGCONT);
    let woke_ms = store.now_ms().await.unwrap();
    asleep.store(false, Ordering::SeqCst);
    let late_close = late.end_time.timestamp_millis();
    assert!(woke_ms < late_close, "woke {} ms after the late close, too late to test anything", woke_ms - late_close);
    assert!(ends(&env, &late.auction_id).await.is_empty(), "the late auction ended before the old leader woke");

    // Awake, it knows at once that it does not lead: its belief ran out while it slept.
    let info = paused.api.leader_info(PROBE_TIMEOUT).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info.answered_by_leader, Some(false), "the woken instance still believes it leads: {info:?}");
    assert_eq!(info.instance_id, new_info.answered_by, "the lease is the new leader's");
    assert_eq!(metric_of(&paused.api, "auction_leader").await, 0.0);

    // Both end once, by the new leadership: no transition by the old epoch landed, before the
    // late close or after it (a woken leader that acted would have written its own epoch).
    wait_logged(&env, &late.auction_id, "ended").await;
    for auction in [&early, &late] {
        ended_once(&env, &auction.auction_id).await;
        assert_eq!(fence(&env, &auction.auction_id).await, Some(new_info.epoch), "{}", auction.auction_id);
    }
    // The old leader's own account: it made no transition after it woke. (A transition it tried
    // would be refused by the fence and counted in auction_transitions_fenced_total; from the
    // code, it does not even try, since its belief has lapsed before its scheduler looks.)
    assert_eq!(metric_of(&paused.api, "auction_started_total").await, started_before);
    assert_eq!(metric_of(&paused.api, "auction_ended_total").await, ended_before);
    assert_eq!(metric_of(&other.api, "auction_ended_total").await, 2.0, "the new leader ended both");
    let fenced = metric_of(&paused.api, "auction_transitions_fenced_total").await;
    eprintln!("paused leader: asleep {} ms, {fenced} transitions fenced after waking", woke_ms - paused_ms);

    monitor.until_leading(&other.instance_id).await;
    let turns = monitor.finish().await;
    assert_eq!(turns, [paused.instance_id.clone(), other.instance_id.clone()], "the leaders in turn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_steps_down_before_another_takes_over() {
    let mut env = TestEnv::new().await;
    env.set("LEADER_TTL", "3s");
    let store = env.store().await;
    // The leader reaches Redis through a proxy the test can cut; the follower directly.
    let proxy = Proxy::start(&redis_target()).await;
    let through = redis_through(proxy.addr);
    let cut = env.process(env!("CARGO_BIN_EXE_auction-service"), "cut-off", &[("REDIS_ADDRESS", &through)]).await;
    let cut_info = leads(&cut.api).await;
    let other = env.auction_process("other").await;
    let mut monitor = Monitor::start(vec![Watched::new(&cut, Probe::Metrics), Watched::new(&other, Probe::Leader)]);

    // Two auctions it starts: one closes while it still believes it leads but cannot act, one
    // after the other instance has taken over.
    let auctions = [other.api.create_open(2, "1", 0).await, other.api.create_open(6, "1", 0).await];
    for auction in &auctions {
        wait_logged(&env, &auction.auction_id, "started").await;
        assert_eq!(fence(&env, &auction.auction_id).await, Some(cut_info.epoch));
    }

    proxy.down();
    // Its renewals fail; its belief lapses and its own /metrics says so.
    let deadline = Instant::now() + WAIT;
    while metric_of(&cut.api, "auction_leader").await != 0.0 {
        assert!(Instant::now() < deadline, "the cut-off leader never stepped down");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let new_info = leads(&other.api).await;
    assert_eq!(new_info.answered_by.as_deref(), Some("other"));
    assert!(
        new_info.epoch > cut_info.epoch,
        "the new leader's epoch {} is not above {}",
        new_info.epoch,
        cut_info.epoch
    );

    for auction in &auctions {
        wait_logged(&env, &auction.auction_id, "ended").await;
        ended_once(&env, &auction.auction_id).await;
        assert_eq!(fence(&env, &auction.auction_id).await, Some(new_info.epoch), "{}", auction.auction_id);
    }
    assert_eq!(metric_of(&cut.api, "auction_ended_total").await, 0.0, "the cut-off leader ended nothing");
    assert_eq!(metric_of(&other.api, "auction_ended_total").await, 2.0, "the new leader ended both");

    // With Redis back, it stays a follower: the lease is the other's.
    proxy.restore();
    let deadline = Instant::now() + WAIT;
    let info = loop {
        match cut.api.leader_info(PROBE_TIMEOUT).await {
            Ok(info) => break info,
            Err(e) => assert!(Instant::now() < deadline, "the cut-off instance never reached Redis again: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((info.answered_by_leader, info.instance_id.as_deref()), (Some(false), Some("other")));
    let (holder, epoch, _) = store.leader().await.unwrap();
    assert_eq!((holder.as_deref(), epoch), (Some("other"), new_info.epoch));

    // Never both at once: the cut-off one had stepped down by the time the other led.
    monitor.until_leading("other").await;
    assert_eq!(monitor.finish().await, ["cut-off", "other"], "the leaders in turn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_start_reaches_watchers_within_a_second_of_its_time() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let now = Utc::now();
    let auction = api
        .create(&CreateAuction {
            title: None,
            start_time: now + chrono::Duration::seconds(2),
            end_time: now + chrono::Duration::seconds(60),
            starting_bid: amount("1"),
            extension_window_s: Some(0),
            extension_s: None,
            buy_now_price: None,
            reserve_price: None,
        })
        .await;
    let id = auction.auction_id.clone();
    let (mut watcher, snapshot) = node.connect(id.as_str(), "watcher").await;
    assert_eq!(snapshot.status.as_str(), "scheduled");

    let started = watcher
        .next_matching(|f| match f {
            ServerFrame::AuctionStarted(s) => Some(s.clone()),
            _ => None,
        })
        .await;
    let (started_ms, event) = wait_logged(&env, &id, "started").await;
    assert_eq!(started.seq, event.seq(), "the frame is the logged start");
    let start_ms = auction.start_time.timestamp_millis();
    // 1 ms for the entry id's clock (see `ended_once`).
    assert!(started_ms + 1 >= start_ms, "started {} ms early", start_ms - started_ms);
    assert!(started_ms - start_ms < 1000, "started {} ms after its start time", started_ms - start_ms);
    assert_eq!(metric_of(&api, "auction_started_total").await, 1.0);
    eprintln!("scheduled start: {} ms after its time", started_ms - start_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mysql_down_the_lifecycle_goes_on_and_mysql_is_right_once_back() {
    let mut env = TestEnv::new().await;
    // MySQL goes away for every service that writes it: the auction service and analytics.
    let proxy = Proxy::start(&mysql_target()).await;
    env.set("MYSQL_DSN", &mysql_through(&env, proxy.addr));
    env.set("ANALYTICS_SWEEP", "200ms");
    let api = env.auction_service().await;
    env.analytics_service().await;
    let node = env.bidding_service().await;

    // Before the outage: an auction that starts and ends during it, and one to cancel during it.
    let now = Utc::now();
    let scheduled = api
        .create(&CreateAuction {
            title: Some("scheduled".into()),
            start_time: now + chrono::Duration::seconds(4),
            end_time: now + chrono::Duration::milliseconds(5500),
            starting_bid: amount("1"),
            extension_window_s: Some(0),
            extension_s: None,
            buy_now_price: None,
            reserve_price: None,
        })
        .await;
    let doomed = api.create_open(600, "1", 0).await;
    let (mut scheduled_ws, snapshot) = node.connect(scheduled.auction_id.as_str(), "watcher").await;
    assert_eq!(snapshot.status.as_str(), "scheduled");
    let (mut doomed_ws, _) = node.connect(doomed.auction_id.as_str(), "watcher").await;

    proxy.down();
    // The operator's calls all answer success: each changes Redis, then fails to copy the change
    // to MySQL, which the service only logs (the change is on the auction's log).
    let health = async {
        let response = api.http.get(api.url("/health")).send().await.unwrap();
        (response.status().as_u16(), response.json::<serde_json::Value>().await.unwrap())
    };
    let create = CreateAuction {
        title: Some("created".into()),
        start_time: Utc::now() - chrono::Duration::seconds(1),
        end_time: Utc::now() + chrono::Duration::seconds(6),
        starting_bid: amount("1"),
        extension_window_s: Some(0),
        extension_s: None,
        buy_now_price: None,
        reserve_price: None,
    };
    let cancel = format!("/api/v1/auctions/{}/cancel", doomed.auction_id);
    let empty = json!({});
    let (health, created, cancelled) = tokio::join!(health, api.create(&create), api.post(&cancel, &empty));
    assert_eq!(health.0, 503, "{}", health.1);
    assert_eq!((health.1["checks"]["redis"].as_str(), health.1["status"].as_str()), (Some("ok"), Some("degraded")));
    assert_ne!(health.1["checks"]["mysql"], "ok", "{}", health.1);
    assert_eq!(cancelled.0, 200, "{}", cancelled.1);
    doomed_ws.next_matching(|f| matches!(f, ServerFrame::AuctionCancelled(_)).then_some(())).await;
    let (mut created_ws, _) = node.connect(created.auction_id.as_str(), "alice").await;
    assert!(matches!(created_ws.bid("5", None).await, ServerFrame::BidAccepted(_)));
    let path = format!("/api/v1/auctions/{}/extend", created.auction_id);
    let (status, body) = api.post(&path, &json!({"seconds": 1})).await;
    assert_eq!(status, 200, "{body}");
    let new_end = created.end_time + chrono::Duration::seconds(1);
    assert_eq!(body["end_time"], json!(new_end));
    created_ws.next_matching(|f| matches!(f, ServerFrame::AuctionExtended(_)).then_some(())).await;

    // The scheduler starts and ends auctions all the same.
    scheduled_ws.next_matching(|f| matches!(f, ServerFrame::AuctionStarted(_)).then_some(())).await;
    let ended = scheduled_ws.next_matching(ended_frame).await;
    assert_eq!((ended.winner, ended.final_price), (None, None));
    let ended = created_ws.next_matching(ended_frame).await;
    assert_eq!(ended.winner.as_ref().map(|w| w.as_str()), Some("alice"));

    // Nothing of it reached MySQL (the outage was real), until MySQL is back.
    let mut conn = env.mysql().await;
    let created_id = created.auction_id.to_string();
    let count = "SELECT COUNT(*) FROM auctions WHERE auction_id = ?";
    let (rows,): (i64,) = sqlx::query_as(count).bind(&created_id).fetch_one(&mut conn).await.unwrap();
    assert_eq!(rows, 0, "the auction created during the outage is in mysql already");
    proxy.restore();

    let expected: HashMap<String, (&str, i64)> = [
        (scheduled.auction_id.to_string(), ("ended", scheduled.end_time.timestamp_millis())),
        (created_id.clone(), ("ended", new_end.timestamp_millis())),
        (doomed.auction_id.to_string(), ("cancelled", doomed.end_time.timestamp_millis())),
    ]
    .into_iter()
    .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows: Vec<(Vec<u8>, String, chrono::NaiveDateTime)> =
            sqlx::query_as("SELECT auction_id, status, end_time FROM auctions").fetch_all(&mut conn).await.unwrap();
        let found: HashMap<String, (&str, i64)> = rows
            .iter()
            .map(|(id, status, end)| {
                let id = String::from_utf8_lossy(id).into_owned();
                (id, (status.as_str(), end.and_utc().timestamp_millis()))
            })
            .collect();
        if found == expected {
            break;
        }
        assert!(Instant::now() < deadline, "mysql has {found:?}, not {expected:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Id columns are ascii_bin, so they arrive as bytes.
    type ResultRow = (Vec<u8>, Option<Vec<u8>>, Option<rust_decimal::Decimal>);
    let results: Vec<ResultRow> = wait_rows(
        &mut conn,
        "SELECT auction_id, winner, final_price FROM auction_results WHERE auction_id = ? OR auction_id = ? \
         ORDER BY auction_id = ?",
        &[created_id.as_str(), scheduled.auction_id.as_str(), created_id.as_str()],
        2,
    )
    .await;
    let results: Vec<(String, Option<String>, Option<String>)> = results
        .into_iter()
        .map(|(id, winner, price)| {
            let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
            (text(id), winner.map(text), price.map(|p| p.to_string()))
        })
        .collect();
    assert_eq!(
        results,
        [
            (scheduled.auction_id.to_string(), None, None),
            (created_id.clone(), Some("alice".to_owned()), Some("5.00".to_owned()))
        ]
    );
    let bids: Vec<(Vec<u8>, rust_decimal::Decimal)> =
        wait_rows(&mut conn, "SELECT bidder, amount FROM bids WHERE auction_id = ?", &[created_id.as_str()], 1).await;
    assert_eq!((bids[0].0.as_slice(), bids[0].1.to_string().as_str()), (b"alice".as_slice(), "5.00"));
}

/// Waits (up to [`WAIT`]) until `query` with `binds` returns `count` rows, which MySQL gets shortly
/// after the lifecycle change itself.
async fn wait_rows<T>(conn: &mut sqlx::MySqlConnection, query: &str, binds: &[&str], count: usize) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::mysql::MySqlRow> + Send + Unpin,
{
    let deadline = Instant::now() + WAIT;
    loop {
        let mut statement = sqlx::query_as(query);
        for bind in binds {
            statement = statement.bind(*bind);
        }
        let rows: Vec<T> = statement.fetch_all(&mut *conn).await.unwrap();
        if rows.len() >= count || Instant::now() > deadline {
            assert_eq!(rows.len(), count, "{query} for {binds:?}");
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The fence is checked in the auction's own slot (on a cluster, often not the lease's node): a
/// leader whose lease ran out can neither end nor start an auction, though no newer leader has
/// touched either yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_leader_is_fenced_out() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let now = store.now_ms().await.unwrap();
    let id = AuctionId::parse("fenced-1").unwrap();
    let new = NewAuction {
        id: &id,
        title: "t",
        start_ms: now - 1000,
        end_ms: now + 100,
        starting_bid: amount("1"),
        extension_window_s: 0,
        extension_s: 30,
        idempotency: None,
        reserve: None,
        buy_now: None,
    };
    assert!(matches!(store.create(&new, now).await.unwrap(), CreateOutcome::Created(_)));
    let later = AuctionId::parse("fenced-2").unwrap();
    let created = store.create(&NewAuction { id: &later, end_ms: now + 600_000, ..new }, now).await.unwrap();
    assert!(matches!(created, CreateOutcome::Created(_)));

    let old = store.lease("old", 300, 0).await.unwrap();
    assert!(old.held);
    let old_fence = old.fence(Duration::from_millis(30));
    // The old leader pauses past its lease: wait for Redis to let it run out.
    let deadline = Instant::now() + WAIT;
    while store.leader().await.unwrap().0.is_some() {
        assert!(Instant::now() < deadline, "the lease never ran out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let new_lease = store.lease("new", 10_000, 0).await.unwrap();
    assert!(new_lease.held);
    assert!(new_lease.epoch > old.epoch);
    // The close has passed: what follows is refused by the fence, not for being early.
    while store.now_ms().await.unwrap() <= new.end_ms {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert_eq!(store.advance(&id, old_fence).await.unwrap(), Advance::Fenced, "a stale leader ended an auction");
    assert!(!store.log_types(&id).await.unwrap().contains(&"ended".to_owned()), "the fenced call changed nothing");
    assert_eq!(store.advance(&later, old_fence).await.unwrap(), Advance::Fenced, "a stale leader started an auction");
    assert_eq!(store.log_types(&later).await.unwrap(), ["created"], "the fenced call changed nothing");
    assert_eq!(store.load(&later).await.unwrap().unwrap().state, StoredState::Open);
    // A renewal by the old leader does not get it back: the lease is someone else's.
    let renewal = store.lease("old", 300, old.epoch).await.unwrap();
    assert!(!renewal.held);
    assert_eq!(renewal.holder, "new");
    let new_fence = new_lease.fence(Duration::from_secs(1));
    assert!(matches!(store.advance(&id, new_fence).await.unwrap(), Advance::Moved(Event::Ended(_))));
    assert_eq!(store.advance(&id, new_fence).await.unwrap(), Advance::Final);
    // An older epoch than one that acted is refused even inside its time.
    let older = Fence { epoch: new_lease.epoch - 1, ..new_fence };
    assert_eq!(store.advance(&id, older).await.unwrap(), Advance::Fenced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_closes_over_ten_seconds_each_end_once_and_on_time() {
    const AUCTIONS: usize = 100;
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let store = env.store().await;
    let mut feed = store.subscribe(Vec::new());
    let channels = feed.feed();

    // Created ten at a time, so that a slow machine still has them all before the first close.
    let base = Utc::now() + chrono::Duration::seconds(3);
    let mut ids = Vec::new();
    for chunk in (0..AUCTIONS).collect::<Vec<_>>().chunks(10) {
        let bodies: Vec<CreateAuction> = chunk
            .iter()
            .map(|i| CreateAuction {
                title: Some(format!("lot {i}")),
                start_time: Utc::now(),
                end_time: base + chrono::Duration::milliseconds(*i as i64 * 100),
                starting_bid: amount("1"),
                extension_window_s: Some(0),
                extension_s: None,
                buy_now_price: None,
                reserve_price: None,
            })
            .collect();
        let creates = bodies.iter().map(|body| api.create(body));
        let created: Vec<AuctionId> =
            futures_util::future::join_all(creates).await.into_iter().map(|a| a.auction_id).collect();
        // Listening on each before its close, which is seconds away.
        for id in &created {
            channels.subscribe(store.live_channel(id)).await.unwrap();
        }
        ids.extend(created);
    }

    // Every auction's `auction_ended` goes out; then each is checked on its durable log.
    let mut ended: HashMap<AuctionId, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ended.len() < AUCTIONS {
        let received = tokio::time::timeout_at(deadline, feed.next()).await.expect("not every auction ended");
        if let Received::Message(Live::Event(Event::Ended(event))) = received {
            *ended.entry(event.auction_id).or_default() += 1;
        }
    }
    assert!(ended.values().all(|n| *n == 1), "an auction ended twice: {ended:?}");
    // Exactly once and on time, by Redis time: the `ended` entry against the close it ended.
    let mut worst = 0;
    for id in &ids {
        let (at, close) = ended_once(&env, id).await;
        assert!(at - close < 1000, "{id} ended {} ms after its close", at - close);
        worst = worst.max(at - close);
    }
    eprintln!("100 closes: the latest ended {worst} ms after its close, by Redis time");
    // The leader's own account, for operators: every close it made, all within a second.
    let text = api.metrics(PROBE_TIMEOUT).await.unwrap();
    let value = |name: &str| metric(&text, name);
    assert_eq!(value("auction_leader"), Some(1.0), "{text}");
    assert!(value("auction_leader_epoch").is_some_and(|epoch| epoch >= 1.0), "{text}");
    assert_eq!(value("auction_ended_total"), Some(AUCTIONS as f64), "{text}");
    assert_eq!(value("auction_close_lateness_seconds_count"), Some(AUCTIONS as f64), "{text}");
    assert_eq!(value(r#"auction_close_lateness_seconds_bucket{le="1"}"#), Some(AUCTIONS as f64), "{text}");

    let mut conn = env.mysql().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let (results, ended_rows): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM auction_results), (SELECT COUNT(*) FROM auctions WHERE status = 'ended')",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if results == AUCTIONS as i64 && ended_rows == AUCTIONS as i64 {
            break;
        }
        assert!(Instant::now() < deadline, "mysql has {results} results and {ended_rows} ended auctions");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_hands_over_the_lease_at_once() {
    // A lease that runs out by itself only after seconds: a handover well within that was a
    // release.
    let mut env = TestEnv::new().await;
    env.set("LEADER_TTL", "10s");
    let store = env.store().await;
    let mut instances = vec![env.auction_process("first").await, env.auction_process("second").await];
    let apis: Vec<Api> = instances.iter().map(|p| p.api.clone()).collect();
    let (old, old_info) = believed_leader(&apis).await;
    let next = apis[1 - old].clone();
    let leader = instances.remove(old);
    let leader_id = leader.instance_id.clone();
    let stopped_at = Instant::now();
    leader.stop().await;
    // It gave the lease up on its way out: Redis no longer names it.
    let (holder, _, _) = store.leader().await.unwrap();
    assert_ne!(holder.as_deref(), Some(leader_id.as_str()), "the stopped leader still holds the lease");
    let info = leads(&next).await;
    assert!(info.epoch > old_info.epoch);
    // Its lease had at least two thirds of its ten seconds left when it stopped.
    assert!(stopped_at.elapsed() < Duration::from_secs(5), "the takeover took {:?}", stopped_at.elapsed());
    eprintln!("graceful handover took {:?}", stopped_at.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_and_cancel() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create_open(600, "10", 0).await;
    let id = auction.auction_id.as_str();
    let (mut watcher, _) = node.connect(id, "watcher").await;

    let (status, body) = api.post(&format!("/api/v1/auctions/{id}/extend"), &json!({"seconds": 30})).await;
    assert_eq!(status, 200, "{body}");
    let new_end = auction.end_time + chrono::Duration::seconds(30);
    assert_eq!(body["end_time"], json!(new_end));
    assert_eq!(body["previous_end_time"], json!(auction.end_time));
    let extended = watcher
        .next_matching(|f| match f {
            ServerFrame::AuctionExtended(e) => Some(e.clone()),
            _ => None,
        })
        .await;
    assert_eq!((extended.end_time, extended.previous_end_time), (new_end, auction.end_time));
    assert_eq!(api.auction(id).await.end_time, new_end);

    for (seconds, code) in [(json!(0), 400), (json!(86_401), 400), (json!(-5), 400), (json!("ten"), 400)] {
        let (status, body) = api.post(&format!("/api/v1/auctions/{id}/extend"), &json!({"seconds": seconds})).await;
        assert_eq!(status, code, "{seconds}: {body}");
        assert_eq!(body["error"]["field"], "seconds");
    }
    let (status, _) = api.post("/api/v1/auctions/nosuch/extend", &json!({"seconds": 5})).await;
    assert_eq!(status, 404);
    assert_eq!(api.auction(id).await.end_time, new_end, "refused extends change nothing");

    let (status, body) = api.post(&format!("/api/v1/auctions/{id}/cancel"), &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    watcher.next_matching(|f| matches!(f, ServerFrame::AuctionCancelled(_)).then_some(())).await;
    match watcher.bid("100", None).await {
        ServerFrame::BidRejected(r) => assert_eq!(r.reason, RejectReason::AuctionCancelled),
        other => panic!("{other:?}"),
    }
    for path in ["cancel", "extend"] {
        let (status, body) = api.post(&format!("/api/v1/auctions/{id}/{path}"), &json!({"seconds": 5})).await;
        assert_eq!(status, 409, "{path} after cancel: {body}");
        assert_eq!(body["error"]["code"], "conflict");
        assert!(body["error"]["message"].as_str().unwrap().contains("cancelled"), "{body}");
    }

    // An ended auction can be neither extended nor cancelled.
    let short = api.create_open(1, "10", 0).await;
    wait_logged(&env, &short.auction_id, "ended").await;
    ended_once(&env, &short.auction_id).await;
    for path in ["extend", "cancel"] {
        let (status, body) =
            api.post(&format!("/api/v1/auctions/{}/{path}", short.auction_id), &json!({"seconds": 5})).await;
        assert_eq!(status, 409, "{path} after end: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("ended"), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bid_extension_moves_the_scheduled_close() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let now = Utc::now();
    let auction = api
        .create(&CreateAuction {
            title: None,
            start_time: now - chrono::Duration::seconds(1),
            end_time: now + chrono::Duration::seconds(2),
            starting_bid: amount("10"),
            extension_window_s: Some(10),
            extension_s: Some(3),
            buy_now_price: None,
            reserve_price: None,
        })
        .await;
    let (mut ws, _) = node.connect(auction.auction_id.as_str(), "alice").await;
    let accepted = match ws.bid("10", None).await {
        ServerFrame::BidAccepted(a) => a,
        other => panic!("{other:?}"),
    };
    // The close moved three seconds past the bid, so at least a second past the old one.
    assert!(accepted.end_time > auction.end_time + chrono::Duration::seconds(1));
    let ended = ws.next_matching(ended_frame).await;
    assert_eq!(ended.winner.as_ref().map(|w| w.as_str()), Some("alice"));
    // By Redis time: ended at the moved close (not before it, so not at the old one), on time.
    let (at, close) = ended_once(&env, &auction.auction_id).await;
    assert_eq!(close, accepted.end_time.timestamp_millis(), "ended at another close than the bid's");
    assert!(at - close < 1000, "ended {} ms after the moved close", at - close);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidding_needs_no_auction_service() {
    let mut env = TestEnv::new().await;
    let node = env.bidding_service().await;
    let store = env.store().await;
    let now = store.now_ms().await.unwrap();
    let id = AuctionId::parse("no-leader-1").unwrap();
    // Margins of a second and more, so that a loaded machine still bids before the start and
    // between start and close.
    let new = NewAuction {
        id: &id,
        title: "t",
        start_ms: now + 1500,
        end_ms: now + 3000,
        starting_bid: amount("1"),
        extension_window_s: 0,
        extension_s: 30,
        idempotency: None,
        reserve: None,
        buy_now: None,
    };
    assert!(matches!(store.create(&new, now).await.unwrap(), CreateOutcome::Created(_)));
    let (mut ws, snapshot) = node.connect("no-leader-1", "alice").await;
    let observed = Instant::now();
    assert_eq!(snapshot.status.as_str(), "scheduled");
    match ws.bid("1", None).await {
        ServerFrame::BidRejected(r) => assert_eq!(r.reason, RejectReason::AuctionNotStarted),
        other => panic!("{other:?}"),
    }
    // No event marks these moments (nothing runs the lifecycle): wait for Redis time to pass them.
    sleep_past(snapshot.start_time, snapshot.server_time, observed).await;
    assert!(matches!(ws.bid("1", None).await, ServerFrame::BidAccepted(_)));
    assert_eq!(ws.sync().await.status.as_str(), "active");
    sleep_past(snapshot.end_time, snapshot.server_time, observed).await;
    match ws.bid("500", Some("late")).await {
        ServerFrame::BidRejected(r) => assert_eq!(r.reason, RejectReason::AuctionEnded),
        other => panic!("{other:?}"),
    }
    let last = ws.sync().await;
    assert_eq!((last.status.as_str(), last.bid_count), ("ended", 1));
    assert!(store.log_types(&id).await.unwrap().iter().all(|t| t != "ended"), "nothing ran to end it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closes_missed_while_nothing_ran_end_on_the_next_leaders_first_pass() {
    let mut env = TestEnv::new().await;
    let first = env.auction_process("first").await;
    let first_info = leads(&first.api).await;
    let node = env.bidding_service().await;
    let store = env.store().await;
    // Three seconds leave a loaded machine time to bid and stop the instance before the close.
    let auction = first.api.create_open(3, "10", 0).await;
    let id = auction.auction_id.clone();
    let (mut ws, _) = node.connect(id.as_str(), "alice").await;
    assert!(matches!(ws.bid("10", None).await, ServerFrame::BidAccepted(_)));
    // The only instance stops (and has exited) before the close; then the close passes.
    first.stop().await;
    let stopped_ms = store.now_ms().await.unwrap();
    let close_ms = auction.end_time.timestamp_millis();
    assert!(stopped_ms < close_ms, "the instance stopped {} ms after the close", stopped_ms - close_ms);
    while store.now_ms().await.unwrap() <= close_ms {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ends(&env, &id).await.is_empty(), "nothing ran to end it");

    let restarted = env.auction_service().await;
    let ended = ws.next_matching(ended_frame).await;
    assert_eq!(ended.winner.as_ref().map(|w| w.as_str()), Some("alice"));
    ended_once(&env, &id).await;
    let info = leads(&restarted).await;
    assert!(info.epoch > first_info.epoch);
    assert_eq!(fence(&env, &id).await, Some(info.epoch), "the next leader ended it");
    assert_eq!(metric_of(&restarted, "auction_ended_total").await, 1.0);
}

/// A transition refused by the fence is not retried in a loop: an auction a newer epoch has acted
/// on (its hash carries that epoch) is left alone until the next renewal of the lease, while every
/// other auction still ends on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_auction_is_left_until_the_next_renewal_and_holds_up_no_other() {
    let mut env = TestEnv::new().await;
    // Renewed every second.
    env.set("LEADER_TTL", "3s");
    let api = env.auction_service().await;
    leads(&api).await;
    let fenced = api.create_open(1, "1", 0).await;
    let state = Keys::new(&env.prefix).auction(&fenced.auction_id).state;
    let mut redis = env.redis_connection().await;
    let _: () = redis::cmd("HSET").arg(&state).arg("fence").arg(1_000_000_000).query_async(&mut redis).await.unwrap();
    let other = api.create_open(2, "1", 0).await;

    let (at, ended) = wait_logged(&env, &other.auction_id, "ended").await;
    let Event::Ended(ended) = ended else { unreachable!() };
    assert!(at - ended.end_ms < 1000, "the other auction ended {} ms after its close", at - ended.end_ms);
    assert!(ends(&env, &fenced.auction_id).await.is_empty(), "the fence was ignored");
    // About two seconds: one refusal at first, then one per renewal.
    let refused = metric_of(&api, "auction_transitions_fenced_total").await;
    assert!((1.0..=6.0).contains(&refused), "{refused} refused transitions in about two seconds");
}

/// Redis answering one auction with an error (its hash is not a hash) neither stops the pass for
/// the others nor sends the scheduler back to re-index everything: an auction due later still ends
/// on time, and the failing one is retried later, backing off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auction_redis_fails_on_holds_up_no_other() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    leads(&api).await;
    let broken = api.create_open(1, "1", 0).await;
    let other = api.create_open(2, "1", 0).await;
    let state = Keys::new(&env.prefix).auction(&broken.auction_id).state;
    let mut redis = env.redis_connection().await;
    let _: () = redis::cmd("DEL").arg(&state).query_async(&mut redis).await.unwrap();
    let _: () = redis::cmd("SET").arg(&state).arg("not a hash").query_async(&mut redis).await.unwrap();

    let (at, ended) = wait_logged(&env, &other.auction_id, "ended").await;
    let Event::Ended(ended) = ended else { unreachable!() };
    assert!(at - ended.end_ms < 1000, "the other auction ended {} ms after its close", at - ended.end_ms);
    // The broken one is still scheduled, for a retry after its close.
    let deadlines = Keys::new(&env.prefix).deadlines();
    let retry: Option<f64> =
        redis::cmd("ZSCORE").arg(&deadlines).arg(broken.auction_id.as_str()).query_async(&mut redis).await.unwrap();
    let retry = retry.expect("the failing auction is still scheduled");
    assert!(retry > broken.end_time.timestamp_millis() as f64, "retried later than its close");
}
