//! Faults between a bidding node and Redis, and in its fan-out: the node's live subscription cut
//! under it while bids flow, a watcher that falls a whole queue behind, and Redis unreachable or
//! silent for the node. Each ends with every watcher consistent, without a restart.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use auction_proto::ws::{BidAccepted, ServerFrame, Snapshot};
use auction_proto::{Amount, BidRules, RejectReason};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::helpers::*;

/// What the test lets the background bidders do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    Go,
    Pause,
    Stop,
}

/// How far the background bidders got.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    accepted: usize,
    last_seq: u64,
    /// Paused, with no bid under way.
    idle: bool,
}

/// Two bidders outbidding each other at the minimum on one node, in the background, until told
/// to pause or stop; every bid must be accepted.
struct Flow {
    run: watch::Sender<Run>,
    progress: watch::Receiver<Progress>,
    task: JoinHandle<Vec<(String, BidAccepted)>>,
}

impl Flow {
    async fn start(node: Node, auction: &str) -> Flow {
        let clients = [("ann", node.connect(auction, "ann").await.0), ("ben", node.connect(auction, "ben").await.0)];
        let (run, mut orders) = watch::channel(Run::Go);
        let (report, progress) = watch::channel(Progress::default());
        let task = tokio::spawn(async move {
            let mut clients = clients;
            let (mut accepted, mut next) = (Vec::new(), amount("1.00"));
            loop {
                let order = *orders.borrow_and_update();
                match order {
                    Run::Stop => break,
                    Run::Go => {}
                    Run::Pause => {
                        report.send_modify(|p| p.idle = true);
                        if orders.changed().await.is_err() {
                            break;
                        }
                        report.send_modify(|p| p.idle = false);
                        continue;
                    }
                }
                let (name, ws) = &mut clients[accepted.len() % 2];
                match ws.bid(&next.to_string(), Some(&format!("{name}-{}", accepted.len()))).await {
                    ServerFrame::BidAccepted(a) => {
                        next = BidRules::default().min_next_bid(a.amount, Some(a.amount));
                        report.send_modify(|p| (p.accepted, p.last_seq) = (accepted.len() + 1, a.seq));
                        accepted.push((name.to_string(), a));
                    }
                    other => panic!("{name}: {other:?}"),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            accepted
        });
        Flow { run, progress, task }
    }

    /// Waits until `more` bids beyond those accepted so far are accepted; their progress.
    async fn more(&mut self, more: usize) -> Progress {
        let target = self.progress.borrow().accepted + more;
        let reached = tokio::time::timeout(WAIT, self.progress.wait_for(|p| p.accepted >= target)).await;
        *reached.expect("the bidders stalled").expect("the bidders stopped")
    }

    /// Pauses the bidders once the bid under way is answered; the seq of the last accepted.
    async fn pause(&mut self) -> u64 {
        self.run.send_replace(Run::Pause);
        let paused = tokio::time::timeout(WAIT, self.progress.wait_for(|p| p.idle)).await;
        paused.expect("the bidders never paused").expect("the bidders stopped").last_seq
    }

    fn resume(&self) {
        self.run.send_replace(Run::Go);
    }

    /// Stops the bidders; every bid accepted, with its bidder.
    async fn stop(self) -> Vec<(String, BidAccepted)> {
        self.run.send_replace(Run::Stop);
        tokio::time::timeout(WAIT, self.task).await.expect("the bidders never stopped").expect("bidder task")
    }
}

/// Starts a bidding node that reaches Redis through `relay`; everything else, the test's own
/// cleanup included, still reaches it directly.
async fn behind(env: &mut TestEnv, relay: &Relay) -> Node {
    env.set("REDIS_ADDRESS", &relay.addr.to_string());
    let node = env.bidding_service().await;
    env.set("REDIS_ADDRESS", &auction_server::testing::redis_address());
    node
}

/// A connection of the test's own to Redis, for `CLIENT LIST` and `CLIENT KILL`.
async fn redis_admin(env: &TestEnv) -> auction_server::store::Conn {
    env.redis_connection().await
}

/// The ids of Redis's subscribed clients (`CLIENT LIST TYPE pubsub`, the `P` flag) that connect
/// through `relay`: the subscriptions of the service behind it, and no other test's.
async fn subscribers_through(redis: &mut auction_server::store::Conn, relay: &Relay) -> Vec<u64> {
    let through: HashSet<String> = relay.upstream().iter().map(ToString::to_string).collect();
    let list: String = redis::cmd("CLIENT").arg("LIST").arg("TYPE").arg("pubsub").query_async(redis).await.unwrap();
    list.lines()
        .filter_map(|line| {
            let fields: HashMap<&str, &str> = line.split(' ').filter_map(|f| f.split_once('=')).collect();
            through.contains(*fields.get("addr")?).then(|| fields.get("id")?.parse().ok())?
        })
        .collect()
}

/// What a watcher was shown, checked: frames in `seq` order, each change once and none skipped
/// except where a snapshot stands in for them (never going back); every bid as accepted.
struct Shown {
    /// The last version shown.
    seq: u64,
    /// Snapshots after the first, by version.
    resyncs: Vec<Snapshot>,
    /// Bids shown as `bid_placed`.
    bids: HashSet<u64>,
}

fn check_shown(seen: &[ServerFrame], accepted: &BTreeMap<u64, (String, Amount)>) -> Shown {
    let mut frames = seen.iter().filter(|f| !matches!(f, ServerFrame::BidAccepted(_) | ServerFrame::BidRejected(_)));
    let mut shown = match frames.next() {
        Some(ServerFrame::Snapshot(s)) => Shown { seq: s.seq, resyncs: Vec::new(), bids: HashSet::new() },
        other => panic!("expected a snapshot first, got {other:?}"),
    };
    for frame in frames {
        match frame {
            ServerFrame::Snapshot(s) => {
                assert!(s.seq >= shown.seq, "a snapshot went back from {} to {}", shown.seq, s.seq);
                if let Some((bidder, amount)) = accepted.range(..=s.seq).next_back().map(|(_, b)| b) {
                    let state = (s.highest_bidder.as_ref().map(|b| b.as_str()), s.current_bid);
                    assert_eq!(state, (Some(bidder.as_str()), Some(*amount)), "snapshot at {}", s.seq);
                }
                shown.seq = s.seq;
                shown.resyncs.push(s.clone());
            }
            other => {
                let Some(seq) = other.seq() else { continue };
                assert_eq!(seq, shown.seq + 1, "{other:?} applied out of order, after {}", shown.seq);
                shown.seq = seq;
                if let ServerFrame::BidPlaced(p) = other {
                    let (bidder, amount) = &accepted[&p.seq];
                    assert_eq!((p.bidder.as_str(), p.amount), (bidder.as_str(), *amount), "bid seq {}", p.seq);
                    shown.bids.insert(p.seq);
                }
            }
        }
    }
    shown
}

fn by_seq(accepted: &[(String, BidAccepted)]) -> BTreeMap<u64, (String, Amount)> {
    accepted.iter().map(|(bidder, a)| (a.seq, (bidder.clone(), a.amount))).collect()
}

/// Reads until a frame of version `seq` or later (not an answer to a bid) has arrived.
async fn catch_up(ws: &mut Ws, seq: u64) {
    let caught_up = |f: &ServerFrame| f.seq() >= Some(seq) && !matches!(f, ServerFrame::BidAccepted(_));
    if !ws.seen.iter().any(caught_up) {
        ws.next_matching(|f| caught_up(f).then_some(())).await;
    }
}

/// Redis can drop a subscriber (its output buffer limit, a failover, an operator's `CLIENT
/// KILL`), and what is published meanwhile is gone for that node. Its hubs must notice and
/// resync their watchers from a snapshot, never showing them a frame past a gap; here the
/// subscription stays away while bids go by on another node, then comes back with the bids
/// paused, so nothing but the re-subscription itself can bring the watchers up to date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_loses_its_live_subscription_resyncs_its_watchers() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let direct = env.bidding_service().await;
    let relay = Relay::start(&auction_server::testing::redis_address()).await;
    let node = behind(&mut env, &relay).await;
    let auction = api.create_open(600, "1", 0).await;
    let id = auction.auction_id.to_string();
    let mut watchers = [node.connect(&id, "watcher-1").await.0, node.connect(&id, "watcher-2").await.0];

    let mut flow = Flow::start(direct, &id).await;
    flow.more(5).await;
    // Cut the node's subscription while bids flow, and keep it from coming back for a while.
    relay.set(Link::RefuseNew);
    let mut redis = redis_admin(&env).await;
    let subscribers = subscribers_through(&mut redis, &relay).await;
    assert_eq!(subscribers.len(), 1, "the node's one live subscription: {subscribers:?}");
    let killed: u64 =
        redis::cmd("CLIENT").arg("KILL").arg("ID").arg(subscribers[0]).query_async(&mut redis).await.unwrap();
    assert_eq!(killed, 1);
    let cut_at = flow.more(0).await.last_seq;
    let missed_to = flow.more(10).await.last_seq;
    assert_eq!(subscribers_through(&mut redis, &relay).await, [] as [u64; 0], "it re-subscribed meanwhile");
    let paused_at = flow.pause().await;

    relay.set(Link::Up);
    for ws in &mut watchers {
        let snapshot = ws
            .next_matching(|f| match f {
                ServerFrame::Snapshot(s) => Some(s.clone()),
                _ => None,
            })
            .await;
        assert_eq!(snapshot.seq, paused_at, "the resync shows the state as it is now");
    }
    assert_eq!(subscribers_through(&mut redis, &relay).await.len(), 1, "subscribed again");
    flow.resume();
    flow.more(5).await;
    let accepted = by_seq(&flow.stop().await);
    let last = *accepted.keys().next_back().unwrap();

    for ws in &mut watchers {
        catch_up(ws, last).await;
        let shown = check_shown(&ws.seen, &accepted);
        assert_eq!(shown.seq, last);
        assert!(shown.resyncs.iter().any(|s| s.seq == paused_at), "no snapshot stood in for the lost bids");
        // Placed after the kill, with the node unsubscribed: they cannot have reached it.
        assert!(accepted.range(cut_at + 1..=missed_to).all(|(seq, _)| !shown.bids.contains(seq)));
        assert!(accepted.range(paused_at + 1..).all(|(seq, _)| shown.bids.contains(seq)), "live again after it");
    }
    // The hubs resynced the watchers; none of them fell behind on its own.
    assert_eq!(scrape(node.addr, "bidding_watcher_resyncs_total").await, 0.0);
    eprintln!("subscription lost from seq {cut_at} to {missed_to}; resynced at {paused_at}, last {last}");
}

/// A watcher whose connection waits on a client that stopped reading falls behind the hub's
/// queue (`WS_WATCHER_QUEUE`, 4 here); short of the send timeout it is not dropped but resynced:
/// counted, shown a snapshot in place of what it missed, and consistent from there on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_falls_a_queue_behind_is_resynced_and_consistent() {
    const BIDS: usize = 200;
    let mut env = TestEnv::new().await;
    env.set("WS_WATCHER_QUEUE", "4");
    env.set("WS_SEND_BUFFER", "4096");
    env.set("WS_SEND_TIMEOUT", "10m");
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create_open(600, "1", 0).await;
    let id = auction.auction_id.to_string();
    let mut slow = stuck_client(node, &id, "slow").await;

    let mut flow = Flow::start(node, &id).await;
    flow.more(BIDS).await;
    let accepted = by_seq(&flow.stop().await);
    let last = *accepted.keys().next_back().unwrap();
    // Ann and Ben read every frame as they bid, and kept up.
    assert_eq!(scrape(node.addr, "bidding_watcher_resyncs_total").await, 0.0, "a bidder fell behind");

    catch_up(&mut slow, last).await;
    let shown = check_shown(&slow.seen, &accepted);
    assert_eq!(shown.seq, last);
    assert_eq!(shown.resyncs.len(), 1, "one resync for one fall behind: {:?}", shown.resyncs);
    assert!(shown.bids.len() < accepted.len(), "it was shown every bid: it never fell behind");
    assert_eq!(scrape(node.addr, "bidding_watcher_resyncs_total").await, 1.0);
    assert_eq!(scrape(node.addr, "bidding_slow_clients_dropped_total").await, 0.0, "dropped, not resynced");
    let now = slow.sync().await;
    assert_eq!((now.seq, now.current_bid), (last, Some(accepted[&last].1)));
    eprintln!(
        "slow watcher: shown {} of {} bids, resynced at {}",
        shown.bids.len(),
        accepted.len(),
        shown.resyncs[0].seq
    );
}

/// Redis gone (connections cut and refused) or silent (a partition: nothing answers, nothing
/// closes) for one bidding node: its bids are refused as `unavailable` within the Redis timeout
/// instead of hanging, its health says which check fails, and once Redis is back the node bids
/// and fans out again without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_unreachable_for_a_node_answers_unavailable_and_recovers_without_a_restart() {
    const TIMEOUT: Duration = Duration::from_millis(500);
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let relay = Relay::start(&auction_server::testing::redis_address()).await;
    env.set("REDIS_TIMEOUT", "500ms");
    let node = behind(&mut env, &relay).await;
    let health = format!("http://{}/health", node.addr);
    let auction = api.create_open(600, "1", 0).await;
    let id = auction.auction_id.to_string();
    let (mut watcher, _) = node.connect(&id, "watcher").await;
    let mut bidders = [node.connect(&id, "ann").await.0, node.connect(&id, "ben").await.0];
    let (mut next, mut accepted) = (amount("1.00"), Vec::new());

    for (round, link) in [Link::Down, Link::Stalled].into_iter().enumerate() {
        let bidder = &mut bidders[round % 2];
        let bid_id = format!("during-{link:?}");
        relay.set(link);
        let sent = std::time::Instant::now();
        match bidder.bid(&next.to_string(), Some(&bid_id)).await {
            ServerFrame::BidRejected(r) => assert_eq!(r.reason, RejectReason::Unavailable, "{link:?}: {r:?}"),
            other => panic!("{link:?}: {other:?}"),
        }
        // The timeout decides; the rest is this loaded machine's scheduling.
        let took = sent.elapsed();
        assert!(took < TIMEOUT + Duration::from_secs(2), "{link:?}: the bid took {took:?} to be refused");
        let response = reqwest::get(&health).await.unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(status, 503, "{link:?}: {body}");
        assert_ne!(body["checks"]["redis"], "ok", "{link:?}: the failing check is redis's: {body}");
        assert_eq!(node.refused_status(&format!("/ws/auction/{id}?user_id=newcomer")).await, 503, "{link:?}");

        relay.set(Link::Up);
        if link == Link::Down {
            // The cut subscription comes back, and the watcher is resynced (nothing changed).
            let resync = watcher
                .next_matching(|f| match f {
                    ServerFrame::Snapshot(s) => Some(s.clone()),
                    _ => None,
                })
                .await;
            assert_eq!(resync.bid_count, accepted.len() as u64);
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        while reqwest::get(&health).await.unwrap().status() != 200 {
            assert!(tokio::time::Instant::now() < deadline, "{link:?}: never healthy again");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The refused bid again: decided afresh, or (after the stall, whose call reached Redis
        // late) the verdict of that call; accepted either way, once.
        let bid = match bidder.bid(&next.to_string(), Some(&bid_id)).await {
            ServerFrame::BidAccepted(a) => a,
            other => panic!("{link:?}: no recovery: {other:?}"),
        };
        let placed = watcher
            .next_matching(|f| match f {
                ServerFrame::BidPlaced(p) => Some(p.clone()),
                _ => None,
            })
            .await;
        assert_eq!((placed.seq, placed.amount, placed.bid_id.as_str()), (bid.seq, next, bid_id.as_str()));
        next = BidRules::default().min_next_bid(bid.amount, Some(bid.amount));
        accepted.push((["ann", "ben"][round % 2].to_owned(), bid));
    }
    let now = watcher.sync().await;
    assert_eq!(now.bid_count, 2, "each refused bid accepted once when retried");
    check_shown(&watcher.seen, &by_seq(&accepted));
}

/// A node's first watcher of an auction reads its snapshot once the node listens on the
/// auction's channel, and the node's new hub starts only afterwards: every event published in
/// between must still reach that watcher, in order, as the events themselves. The node here holds
/// the handshake in exactly that window while bids go by on another node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_hubs_first_watcher_gets_every_event_after_its_snapshot() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let other = env.bidding_service().await;
    let (addr, gate) = env.start_bidding_gated().await;
    let gated = Node { addr };
    let auction = api.create_open(600, "1", 0).await;
    let id = auction.auction_id.to_string();
    let mut flow = Flow::start(other, &id).await;
    flow.more(3).await;
    flow.pause().await;

    let watcher = tokio::spawn({
        let id = id.clone();
        async move { gated.connect(&id, "watcher").await }
    });
    tokio::time::timeout(WAIT, gate.reached(1)).await.expect("the handshake never read its snapshot");
    flow.resume();
    flow.more(5).await;
    flow.pause().await;
    gate.open();
    let (mut ws, snapshot) = watcher.await.expect("watcher task");
    assert_eq!(snapshot.bid_count, 3, "the snapshot was read before the window's bids");

    flow.resume();
    flow.more(3).await;
    let accepted = by_seq(&flow.stop().await);
    let last = *accepted.keys().next_back().unwrap();
    catch_up(&mut ws, last).await;
    let shown = check_shown(&ws.seen, &accepted);
    assert_eq!(shown.seq, last);
    assert!(shown.resyncs.is_empty(), "a snapshot stood in for events: {:?}", shown.resyncs);
    let missing: Vec<u64> =
        accepted.range(snapshot.seq + 1..).map(|(seq, _)| *seq).filter(|seq| !shown.bids.contains(seq)).collect();
    assert!(missing.is_empty(), "bids never shown to the first watcher: {missing:?}");
}
