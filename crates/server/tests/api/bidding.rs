//! One test per bid rule of the bid script (docs/protocol.md, "The bid script"), through the real
//! WebSocket.

use auction_proto::rest::CreateAuction;
use auction_proto::ws::{BidAccepted, BidRejected, ServerFrame};
use auction_proto::{BidRules, RejectReason};
use chrono::Utc;

use crate::helpers::*;

fn accepted(frame: ServerFrame) -> BidAccepted {
    match frame {
        ServerFrame::BidAccepted(a) => a,
        other => panic!("expected bid_accepted, got {other:?}"),
    }
}

fn rejected(frame: ServerFrame, reason: RejectReason) -> BidRejected {
    match frame {
        ServerFrame::BidRejected(r) if r.reason == reason => r,
        other => panic!("expected bid_rejected {reason:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_low_carries_min_next_bid() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create_open(600, "100.00", 0).await;
    let id = auction.auction_id.as_str();
    let (mut alice, _) = node.connect(id, "alice").await;
    let (mut bob, _) = node.connect(id, "bob").await;

    let r = rejected(alice.bid("99.99", None).await, RejectReason::BidTooLow);
    assert_eq!(r.min_next_bid, Some(amount("100.00")));
    assert_eq!(r.current_bid, None);
    assert!(r.message.contains("100.00"), "{}", r.message);

    accepted(alice.bid("100.00", None).await);
    // 100.00 is in the 100-249.99 band: the increment is 2.50.
    let r = rejected(bob.bid("102.49", Some("b1")).await, RejectReason::BidTooLow);
    assert_eq!(r.min_next_bid, Some(amount("102.50")));
    assert_eq!(r.current_bid, Some(amount("100.00")));
    // The same, decided from the node's cache without a client id.
    let r = rejected(bob.bid("100.00", None).await, RejectReason::BidTooLow);
    assert_eq!(r.min_next_bid, Some(amount("102.50")));
    accepted(bob.bid("102.50", None).await);
    assert_eq!(api.auction(id).await.bid_count, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_started() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let now = Utc::now();
    let auction = api
        .create(&CreateAuction {
            title: None,
            start_time: now + chrono::Duration::hours(1),
            end_time: now + chrono::Duration::hours(2),
            starting_bid: amount("10"),
            extension_window_s: None,
            extension_s: None,
            buy_now_price: None,
            reserve_price: None,
        })
        .await;
    assert_eq!(auction.status.as_str(), "scheduled");
    let (mut ws, snapshot) = node.connect(auction.auction_id.as_str(), "alice").await;
    assert_eq!(snapshot.status.as_str(), "scheduled");
    rejected(ws.bid("10", None).await, RejectReason::AuctionNotStarted);
    assert_eq!(ws.sync().await.bid_count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create_open(1, "10", 0).await;
    let (mut ws, snapshot) = node.connect(auction.auction_id.as_str(), "alice").await;
    let observed = tokio::time::Instant::now();
    accepted(ws.bid("10", None).await);
    sleep_past(snapshot.end_time, snapshot.server_time, observed).await;
    let (mut bob, snapshot) = node.connect(auction.auction_id.as_str(), "bob").await;
    assert_eq!(snapshot.status.as_str(), "ended");
    rejected(bob.bid("500", None).await, RejectReason::AuctionEnded);
    let after = api.auction(auction.auction_id.as_str()).await;
    assert_eq!(after.status.as_str(), "ended");
    assert_eq!((after.bid_count, after.winner.as_ref().map(|w| w.as_str())), (1, Some("alice")));
    assert_eq!(after.final_price, Some(amount("10")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn already_highest_bidder() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create_open(600, "10", 0).await;
    let (mut ws, _) = node.connect(auction.auction_id.as_str(), "alice").await;
    accepted(ws.bid("10", None).await);
    let r = rejected(ws.bid("50", None).await, RejectReason::AlreadyHighestBidder);
    assert_eq!(r.current_bid, Some(amount("10")));
    assert_eq!(ws.sync().await.current_bid, Some(amount("10")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retry() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let first = env.bidding_service().await;
    let second = env.bidding_service().await;
    let auction = api.create_open(600, "10", 0).await;
    let id = auction.auction_id.as_str();
    let (mut alice, _) = first.connect(id, "alice").await;
    let original = accepted(alice.bid("10", Some("retry-1")).await);
    let (mut bob, _) = first.connect(id, "bob").await;
    accepted(bob.bid("20", None).await);

    // A retry after reconnecting to another node, with the price moved on: the original outcome.
    let (mut again, _) = second.connect(id, "alice").await;
    let replay = accepted(again.bid("10", Some("retry-1")).await);
    assert_eq!(replay, original);
    // Even with another amount: the id names the bid, not the amount.
    assert_eq!(accepted(again.bid("35", Some("retry-1")).await), original);
    // A rejected bid replays its rejection.
    let low = rejected(again.bid("1", Some("retry-2")).await, RejectReason::BidTooLow);
    assert_eq!(rejected(again.bid("1000", Some("retry-2")).await, RejectReason::BidTooLow), low);
    // The same id from another user is another bid.
    let (mut carol, _) = second.connect(id, "carol").await;
    accepted(carol.bid("40", Some("retry-1")).await);

    let state = api.auction(id).await;
    assert_eq!(state.bid_count, 3);
    assert_eq!(state.current_bid, Some(amount("40")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extension_moves_end_time_for_every_watcher() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let a = env.bidding_service().await;
    let b = env.bidding_service().await;
    // Closes in 10 s: inside the default 30 s window, so the first bid extends to now + 30 s.
    let auction = api.create_open(10, "10", 30).await;
    let id = auction.auction_id.as_str();
    let (mut bidder, _) = a.connect(id, "alice").await;
    let (mut watcher_a, _) = a.connect(id, "watcher-a").await;
    let (mut watcher_b, _) = b.connect(id, "watcher-b").await;

    let bid = accepted(bidder.bid("10", None).await);
    assert!(bid.end_time > auction.end_time);
    for watcher in [&mut watcher_a, &mut watcher_b] {
        let placed = watcher
            .next_matching(|f| match f {
                ServerFrame::BidPlaced(p) => Some(p.clone()),
                _ => None,
            })
            .await;
        let extended = watcher
            .next_matching(|f| match f {
                ServerFrame::AuctionExtended(e) => Some(e.clone()),
                _ => None,
            })
            .await;
        assert_eq!(extended.previous_end_time, auction.end_time);
        assert_eq!(extended.end_time, bid.end_time);
        assert_eq!(extended.seq, bid.seq);
        // now + extension, both by Redis time: the bid's time in microseconds, the close in ms.
        let gap = (extended.end_time - placed.placed_at).num_microseconds().unwrap();
        assert!((29_999_000..=30_000_000).contains(&gap), "end - placed_at = {gap} us");
    }
    assert_eq!(api.auction(id).await.end_time, bid.end_time);

    // Outside the window nothing moves: a 10-minute auction keeps its close.
    let long = api.create_open(600, "10", 30).await;
    let (mut ws, _) = a.connect(long.auction_id.as_str(), "alice").await;
    assert_eq!(accepted(ws.bid("10", None).await).end_time, long.end_time);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increment_bands() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create_open(600, "0.90", 0).await;
    let id = auction.auction_id.as_str();
    let (mut alice, _) = node.connect(id, "alice").await;
    let (mut bob, _) = node.connect(id, "bob").await;
    accepted(alice.bid("0.90", None).await);
    // Under 1.00 the increment is 0.05.
    assert_eq!(rejected(bob.bid("0.94", Some("x1")).await, RejectReason::BidTooLow).min_next_bid, Some(amount("0.95")));
    accepted(bob.bid("1.00", None).await);
    // From 1.00 it is 0.25.
    assert_eq!(
        rejected(alice.bid("1.20", Some("x2")).await, RejectReason::BidTooLow).min_next_bid,
        Some(amount("1.25"))
    );
    accepted(alice.bid("1.25", None).await);
    assert_eq!(bob.sync().await.min_next_bid, amount("1.50"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_changed_at_run_time_apply_to_the_next_bid() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create_open(600, "10", 0).await;
    let id = auction.auction_id.as_str();
    let (mut alice, _) = node.connect(id, "alice").await;
    let (mut bob, _) = node.connect(id, "bob").await;
    accepted(alice.bid("10", None).await);
    assert_eq!(bob.sync().await.min_next_bid, amount("10.50"));

    let flat: BidRules = serde_json::from_str(r#"{"increments":[{"from":"0.00","increment":"5.00"}]}"#).unwrap();
    let response = api.http.put(api.url("/api/v1/rules")).json(&flat).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (_, rules) = api.get("/api/v1/rules").await;
    assert_eq!(rules["increments"][0]["increment"], "5.00");
    // The node pushes a fresh snapshot to its watchers once it holds the new rules.
    let min_next = bob
        .next_matching(|f| match f {
            ServerFrame::Snapshot(s) if s.min_next_bid == amount("15.00") => Some(s.min_next_bid),
            _ => None,
        })
        .await;
    assert_eq!(min_next, amount("15.00"));
    let r = rejected(bob.bid("14.99", Some("after-change")).await, RejectReason::BidTooLow);
    assert_eq!(r.min_next_bid, Some(amount("15.00")));
    accepted(bob.bid("15.00", None).await);
    // And a node started later reads them at start.
    let late = env.bidding_service().await;
    let (_, snapshot) = late.connect(id, "carol").await;
    assert_eq!(snapshot.min_next_bid, amount("20.00"));
}

/// A bid at `MAX_BID` (here the largest amount there is) leaves nothing to raise to: the next
/// bid is refused as `max_bid_reached`, without a price above the maximum, and a retry of it gets
/// the very same answer; snapshots and the REST view never show a minimum above the maximum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bid_at_the_maximum_leaves_max_bid_reached() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let max = amount("100000000000.00");
    let auction = api.create_open(600, "100000000000.00", 0).await;
    let id = auction.auction_id.as_str();
    let (mut alice, _) = node.connect(id, "alice").await;
    let (mut bob, _) = node.connect(id, "bob").await;
    accepted(alice.bid("100000000000.00", Some("a-max")).await);

    let refused = rejected(bob.bid("100000000000.00", Some("b-max")).await, RejectReason::MaxBidReached);
    assert_eq!((refused.min_next_bid, refused.current_bid), (None, Some(max)));
    assert!(refused.message.contains("maximum"), "{}", refused.message);
    let again = rejected(bob.bid("100000000000.00", Some("b-max")).await, RejectReason::MaxBidReached);
    assert_eq!(again, refused);
    // Without a client id the node's own early answer says the same.
    rejected(bob.bid("100000000000.00", None).await, RejectReason::MaxBidReached);
    assert_eq!(bob.sync().await.min_next_bid, max);
    assert_eq!(api.auction(id).await.min_next_bid, max);
}

/// With a lower `MAX_BID`, the last raise may be smaller than the increment: the minimum is
/// capped at the maximum, a bid there is accepted, and after it nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_raise_is_capped_at_max_bid() {
    let mut env = TestEnv::new().await;
    env.set("MAX_BID", "100.00");
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let max = amount("100.00");
    let auction = api.create_open(600, "99.50", 0).await;
    let id = auction.auction_id.as_str();
    let (mut alice, _) = node.connect(id, "alice").await;
    let (mut bob, _) = node.connect(id, "bob").await;
    accepted(alice.bid("99.50", None).await);
    // 99.50 plus the increment of 1.00 would be 100.50, above the maximum.
    let low = rejected(bob.bid("99.99", Some("b-low")).await, RejectReason::BidTooLow);
    assert_eq!(low.min_next_bid, Some(max));
    assert_eq!(bob.sync().await.min_next_bid, max);
    assert_eq!(api.auction(id).await.min_next_bid, max);
    accepted(bob.bid("100.00", Some("b-max")).await);

    let refused = rejected(alice.bid("100.00", Some("a-more")).await, RejectReason::MaxBidReached);
    assert_eq!((refused.min_next_bid, refused.current_bid), (None, Some(max)));
    assert_eq!(rejected(alice.bid("100.00", Some("a-more")).await, RejectReason::MaxBidReached), refused);
    let holder = rejected(bob.bid("100.00", Some("b-again")).await, RejectReason::AlreadyHighestBidder);
    assert_eq!((holder.min_next_bid, holder.current_bid), (None, Some(max)));
    assert_eq!(alice.sync().await.min_next_bid, max);
    assert_eq!(api.auction(id).await.min_next_bid, max);
}

/// Pub/sub may drop a rules notice, leaving a node on the old table for up to the 15 s re-read.
/// Once a bid on an auction was judged by the new table, a bid there through that node must be
/// judged by the new one too, not by the old: the bid script refuses the older version, and the
/// node re-reads the table and places the bid again, the client none the wiser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_missed_a_rules_change_judges_by_the_newer_table() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let stale = env.bidding_service().await;
    // A bid shown through the node's live subscription: its listener has handled the
    // subscription's start (which re-reads the rules) before it, so the table is settled.
    let elsewhere = api.create_open(600, "1", 0).await;
    let (mut probe, _) = stale.connect(elsewhere.auction_id.as_str(), "probe").await;
    accepted(probe.bid("1", None).await);
    probe.next_matching(|f| matches!(f, ServerFrame::BidPlaced(_)).then_some(())).await;
    let flat: BidRules = serde_json::from_str(r#"{"increments":[{"from":"0.00","increment":"5.00"}]}"#).unwrap();
    env.store().await.set_rules_unannounced(&flat).await.unwrap();
    let fresh = env.bidding_service().await;
    let auction = api.create_open(600, "10", 0).await;
    let id = auction.auction_id.as_str();
    let (mut alice, _) = fresh.connect(id, "alice").await;
    accepted(alice.bid("10", Some("a-1")).await);

    // The stale node still holds the defaults, under which 10.50 would do.
    let (mut bob, snapshot) = stale.connect(id, "bob").await;
    assert_eq!(snapshot.min_next_bid, amount("10.50"));
    let r = rejected(bob.bid("10.50", Some("b-1")).await, RejectReason::BidTooLow);
    assert_eq!(r.min_next_bid, Some(amount("15.00")));
    // It re-read the table on the way, and its snapshots say so.
    assert_eq!(bob.sync().await.min_next_bid, amount("15.00"));
    accepted(bob.bid("15.00", Some("b-2")).await);
    assert_eq!(api.auction(id).await.bid_count, 2);
}

/// A table newer than the one in Redis can only have been lost (a failover): bids are then judged
/// by the table Redis holds, not refused for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rules_version_lost_from_redis_does_not_stop_bidding() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create_open(600, "10", 0).await;
    let id = auction.auction_id.as_str();
    let key = auction_server::store::Keys::new(&env.prefix).auction(&auction.auction_id).state;
    let mut redis = env.redis_connection().await;
    let _: () =
        redis::cmd("HSET").arg(&key).arg("rules_v").arg("9000000000000000").query_async(&mut redis).await.unwrap();
    let (mut alice, _) = node.connect(id, "alice").await;
    accepted(alice.bid("10", Some("a-1")).await);
    let (mut bob, _) = node.connect(id, "bob").await;
    // The defaults, the table Redis holds, decide.
    let r = rejected(bob.bid("10.25", Some("b-1")).await, RejectReason::BidTooLow);
    assert_eq!(r.min_next_bid, Some(amount("10.50")));
    let applied: String = redis::cmd("HGET").arg(&key).arg("rules_v").query_async(&mut redis).await.unwrap();
    assert_eq!(applied, "0");
}
