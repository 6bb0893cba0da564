//! The lifecycle: leader election with fencing, the deadline scheduler, extend and cancel,
//! failover, and bidding that never depends on the leader.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use auction_proto::rest::CreateAuction;
use auction_proto::ws::ServerFrame;
use auction_proto::{AuctionId, RejectReason};
use auction_server::store::{Advance, LiveMessage, NewAuction};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde_json::json;
use tokio::time::Instant;

use crate::helpers::*;

/// Waits until some instance holds the lease and returns its id.
async fn wait_for_leader(api: &Api) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(id) = api.leader().await.and_then(|l| l.instance_id) {
            return id;
        }
        assert!(Instant::now() < deadline, "no leader elected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The local instant at which Redis time reaches `at`, from a snapshot's `server_time`.
fn local_instant(at: DateTime<Utc>, server_time: DateTime<Utc>, observed: Instant) -> Instant {
    observed + (at - server_time).to_std().unwrap_or_default()
}

fn ended_frame(frame: &ServerFrame) -> Option<auction_proto::ws::AuctionEnded> {
    match frame {
        ServerFrame::AuctionEnded(e) => Some(e.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_leader_fails_over_and_the_close_in_the_gap_ends_exactly_once() {
    const TTL: Duration = Duration::from_secs(2);
    let mut env = TestEnv::new().await;
    env.set("LEADER_TTL", "2s");
    let mut instances = Vec::new();
    for i in 0..3 {
        instances.push(env.auction_process(&format!("inst-{i}")).await);
    }
    let node = env.bidding_service().await;
    let first_leader = wait_for_leader(&instances[0].api).await;
    let first_epoch = instances[0].api.leader().await.unwrap().epoch;

    // Watch every instance's own belief: never two leaders at once.
    let stop = Arc::new(AtomicBool::new(false));
    let apis: Vec<Api> = instances.iter().map(|p| p.api.clone()).collect();
    let monitor = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut rounds = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut leaders = Vec::new();
                for api in &apis {
                    if let Some(info) = api.leader().await
                        && info.answered_by_leader == Some(true)
                    {
                        leaders.push(info.answered_by);
                    }
                }
                assert!(leaders.len() <= 1, "two instances lead at once: {leaders:?}");
                rounds += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            rounds
        })
    };

    let follower = instances.iter().find(|p| p.instance_id != first_leader).unwrap().api.clone();
    let auction = follower.create_open(2, "10", 0).await;
    let id = auction.auction_id.as_str().to_owned();
    let (mut alice, _) = node.connect(&id, "alice").await;
    assert!(matches!(alice.bid("10", None).await, ServerFrame::BidAccepted(_)));
    let (mut watcher, snapshot) = node.connect(&id, "watcher").await;
    let close = local_instant(snapshot.end_time, snapshot.server_time, Instant::now());

    // Kill the leader abruptly a second before the close: the close falls in the failover gap.
    tokio::time::sleep_until(close - Duration::from_secs(1)).await;
    let leader = instances.iter_mut().find(|p| p.instance_id == first_leader).unwrap();
    leader.child.start_kill().unwrap();
    leader.child.wait().await.unwrap();
    let killed_at = Instant::now();

    let ended = watcher.next_matching(ended_frame).await;
    let ended_at = Instant::now();
    assert_eq!(ended.winner.as_ref().map(|w| w.as_str()), Some("alice"));
    assert_eq!(ended.final_price, Some(amount("10")));
    assert!(ended_at <= close + TTL + Duration::from_secs(1), "ended {:?} after the close", ended_at - close);

    eprintln!(
        "failover: killed {:?} before the close; auction_ended {:?} after the close",
        close.saturating_duration_since(killed_at),
        ended_at.saturating_duration_since(close)
    );
    let new_leader = wait_for_leader(&follower).await;
    assert_ne!(new_leader, first_leader);
    let info = follower.leader().await.unwrap();
    assert!(info.epoch > first_epoch, "a new leader has a higher epoch");
    assert!(killed_at.elapsed() < Duration::from_secs(10));

    // Exactly once: one `ended` on the durable log, one result row, one frame.
    let store = env.store().await;
    let auction_id = AuctionId::parse(&id).unwrap();
    let types = store.log_types(&auction_id).await.unwrap();
    assert_eq!(types.iter().filter(|t| *t == "ended").count(), 1, "{types:?}");
    let mut conn = mysql(&env).await;
    let rows: Vec<(Vec<u8>, rust_decimal::Decimal)> =
        wait_rows(&mut conn, "SELECT winner, final_price FROM auction_results WHERE auction_id = ?", &id, 1).await;
    assert_eq!((rows[0].0.as_slice(), rows[0].1.to_string().as_str()), (b"alice".as_slice(), "10.00"));
    watcher.send(&auction_proto::ClientFrame::Ping).await;
    watcher.next_matching(|f| matches!(f, ServerFrame::Pong).then_some(())).await;
    assert_eq!(watcher.seen.iter().filter_map(ended_frame).count(), 1);

    stop.store(true, Ordering::Relaxed);
    assert!(monitor.await.unwrap() > 10, "the leader monitor hardly ran");
}

async fn mysql(env: &TestEnv) -> sqlx::MySqlConnection {
    <sqlx::MySqlConnection as sqlx::Connection>::connect(&format!(
        "mysql://auction:auction@127.0.0.1:3306/{}",
        env.database
    ))
    .await
    .unwrap()
}

/// Waits (up to [`WAIT`]) until `query` for `id` returns `count` rows, which MySQL gets shortly
/// after the lifecycle change itself.
async fn wait_rows<T>(conn: &mut sqlx::MySqlConnection, query: &str, id: &str, count: usize) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::mysql::MySqlRow> + Send + Unpin,
{
    let deadline = Instant::now() + WAIT;
    loop {
        let rows: Vec<T> = sqlx::query_as(query).bind(id).fetch_all(&mut *conn).await.unwrap();
        if rows.len() >= count || Instant::now() > deadline {
            assert_eq!(rows.len(), count, "{query} for {id}");
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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
    };
    store.create(&new).await.unwrap().unwrap();

    let old = store.lease("old", 300, 0).await.unwrap();
    assert!(old.held);
    // The old leader pauses past its lease; a new leader is elected.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let new_lease = store.lease("new", 10_000, 0).await.unwrap();
    assert!(new_lease.held);
    assert!(new_lease.epoch > old.epoch);

    assert_eq!(store.advance(&id, "old", old.epoch).await.unwrap(), Advance::Fenced);
    assert!(!store.log_types(&id).await.unwrap().contains(&"ended".to_owned()), "the fenced call changed nothing");
    // A renewal by the old leader does not get it back: the lease is someone else's.
    let renewal = store.lease("old", 300, old.epoch).await.unwrap();
    assert!(!renewal.held);
    assert_eq!(renewal.holder, "new");
    assert!(matches!(store.advance(&id, "new", new_lease.epoch).await.unwrap(), Advance::Ended { .. }));
    assert_eq!(store.advance(&id, "new", new_lease.epoch).await.unwrap(), Advance::Final);
    // Even the right holder with an older epoch than one that acted is refused.
    assert_eq!(store.advance(&id, "new", new_lease.epoch - 1).await.unwrap(), Advance::Fenced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_closes_over_ten_seconds_each_end_once_and_on_time() {
    const AUCTIONS: usize = 100;
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let store = env.store().await;
    let pubsub = auction_server::store::subscribe(&env.redis(), &store.keys().live_channel()).await.unwrap();
    let mut messages = pubsub.into_on_message();

    let base = Utc::now() + chrono::Duration::seconds(2);
    let mut ends: HashMap<String, DateTime<Utc>> = HashMap::new();
    for i in 0..AUCTIONS {
        let end = base + chrono::Duration::milliseconds(i as i64 * 100);
        let auction = api
            .create(&CreateAuction {
                title: Some(format!("lot {i}")),
                start_time: Utc::now(),
                end_time: end,
                starting_bid: amount("1"),
                extension_window_s: Some(0),
                extension_s: None,
            })
            .await;
        ends.insert(auction.auction_id.to_string(), auction.end_time);
    }

    let mut ended: HashMap<String, usize> = HashMap::new();
    let mut worst = 0;
    let deadline = Instant::now() + Duration::from_secs(25);
    while ended.len() < AUCTIONS {
        let message =
            tokio::time::timeout_at(deadline, messages.next()).await.expect("not every auction ended").unwrap();
        let payload: String = message.get_payload().unwrap();
        if let Ok(LiveMessage::Ended { auction_id, .. }) = serde_json::from_str(&payload) {
            let received = Utc::now();
            let Some(end) = ends.get(&auction_id) else { continue };
            let late = (received - *end).num_milliseconds();
            assert!((0..1000).contains(&late), "{auction_id} ended {late} ms after its close");
            worst = worst.max(late);
            *ended.entry(auction_id).or_default() += 1;
        }
    }
    // Exactly once, by the durable log and by MySQL.
    for id in ends.keys() {
        let types = store.log_types(&AuctionId::parse(id).unwrap()).await.unwrap();
        assert_eq!(types.iter().filter(|t| *t == "ended").count(), 1, "{id}: {types:?}");
    }
    assert!(ended.values().all(|n| *n == 1), "an auction ended twice: {ended:?}");
    eprintln!("100 closes: latest auction_ended {worst} ms after its close");
    let mut conn = mysql(&env).await;
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
    // The leader's own account, for operators: every close it made, all within a second.
    let text = api.http.get(format!("{}/metrics", api.base)).send().await.unwrap().text().await.unwrap();
    let value = |name: &str| metric(&text, name);
    assert_eq!(value("auction_leader"), Some(1.0), "{text}");
    assert!(value("auction_leader_epoch").is_some_and(|epoch| epoch >= 1.0), "{text}");
    assert_eq!(value("auction_ended_total"), Some(AUCTIONS as f64), "{text}");
    assert_eq!(value("auction_close_lateness_seconds_count"), Some(AUCTIONS as f64), "{text}");
    assert_eq!(value(r#"auction_close_lateness_seconds_bucket{le="1"}"#), Some(AUCTIONS as f64), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_hands_over_the_lease_at_once() {
    let mut env = TestEnv::new().await;
    let (first, first_id, first_stop) = env.auction_instance().await;
    let (second, second_id, second_stop) = env.auction_instance().await;
    let leader = wait_for_leader(&first).await;
    let (stop, next, next_id) =
        if leader == first_id { (first_stop, second, second_id) } else { (second_stop, first, first_id) };
    let stopped_at = Instant::now();
    stop.cancel();
    loop {
        let info = next.leader().await.unwrap();
        if info.answered_by_leader == Some(true) {
            assert_eq!(info.instance_id.as_deref(), Some(next_id.as_str()));
            break;
        }
        assert!(stopped_at.elapsed() < Duration::from_secs(1), "no takeover within a second of a graceful stop");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(stopped_at.elapsed() < Duration::from_secs(1));
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
    let sent = Instant::now();
    let (mut w, snapshot) = node.connect(short.auction_id.as_str(), "w").await;
    w.next_matching(ended_frame).await;
    // The snapshot's server time was read after `sent`, so the close is no earlier than this.
    assert!(Instant::now() >= local_instant(snapshot.end_time, snapshot.server_time, sent), "ended before the close");
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
            end_time: now + chrono::Duration::seconds(1),
            starting_bid: amount("10"),
            extension_window_s: Some(10),
            extension_s: Some(3),
        })
        .await;
    // The snapshot's server time was read between `sent` and `observed`: local times derived
    // from it are bounded by the two.
    let sent = Instant::now();
    let (mut ws, snapshot) = node.connect(auction.auction_id.as_str(), "alice").await;
    let observed = Instant::now();
    let accepted = match ws.bid("10", None).await {
        ServerFrame::BidAccepted(a) => a,
        other => panic!("{other:?}"),
    };
    assert!(accepted.end_time > auction.end_time + chrono::Duration::seconds(1));
    let old_close = local_instant(auction.end_time, snapshot.server_time, observed);
    let earliest_close = local_instant(accepted.end_time, snapshot.server_time, sent);
    let latest_close = local_instant(accepted.end_time, snapshot.server_time, observed);
    let ended = ws.next_matching(ended_frame).await;
    let at = Instant::now();
    // 2 ms for the millisecond rounding of the two server times.
    assert!(
        at + Duration::from_millis(2) >= earliest_close,
        "ended {:?} before the extended close",
        earliest_close - at
    );
    assert!(at > old_close + Duration::from_secs(1), "ended at the old close");
    assert!(at < latest_close + Duration::from_secs(1), "ended {:?} late", at - latest_close);
    assert_eq!(ended.winner.as_ref().map(|w| w.as_str()), Some("alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidding_needs_no_auction_service() {
    let mut env = TestEnv::new().await;
    let node = env.bidding_service().await;
    let store = env.store().await;
    let now = store.now_ms().await.unwrap();
    let id = AuctionId::parse("no-leader-1").unwrap();
    let new = NewAuction {
        id: &id,
        title: "t",
        start_ms: now + 700,
        end_ms: now + 1400,
        starting_bid: amount("1"),
        extension_window_s: 0,
        extension_s: 30,
    };
    store.create(&new).await.unwrap().unwrap();
    let (mut ws, snapshot) = node.connect("no-leader-1", "alice").await;
    let observed = Instant::now();
    assert_eq!(snapshot.status.as_str(), "scheduled");
    match ws.bid("1", None).await {
        ServerFrame::BidRejected(r) => assert_eq!(r.reason, RejectReason::AuctionNotStarted),
        other => panic!("{other:?}"),
    }
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closes_missed_while_nothing_ran_end_on_the_next_leaders_first_pass() {
    let mut env = TestEnv::new().await;
    let (api, _, stop) = env.auction_instance().await;
    let node = env.bidding_service().await;
    let auction = api.create_open(1, "10", 0).await;
    let id = auction.auction_id.as_str().to_owned();
    let (mut ws, snapshot) = node.connect(&id, "alice").await;
    let observed = Instant::now();
    assert!(matches!(ws.bid("10", None).await, ServerFrame::BidAccepted(_)));
    stop.cancel();
    sleep_past(snapshot.end_time, snapshot.server_time, observed).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let store = env.store().await;
    let auction_id = AuctionId::parse(&id).unwrap();
    assert!(!store.log_types(&auction_id).await.unwrap().contains(&"ended".to_owned()), "nothing ran to end it");

    let _restarted = env.auction_service().await;
    let ended = ws.next_matching(ended_frame).await;
    assert_eq!(ended.winner.as_ref().map(|w| w.as_str()), Some("alice"));
    let types = store.log_types(&auction_id).await.unwrap();
    assert_eq!(types.iter().filter(|t| *t == "ended").count(), 1);
}
