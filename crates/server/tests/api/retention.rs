//! Retention: a finished auction's Redis keys expire once MySQL has all of it, the global indexes
//! forget it, reads of it then come from MySQL, and the analytics sweep looks only at the work
//! index.

use std::time::Duration;

use auction_proto::rest::{AuctionList, BidsPage, CreateAuction};
use auction_proto::ws::ServerFrame;
use auction_proto::{Amount, AuctionId, AuctionStatus, BidId, RejectReason, UserId};
use auction_server::store::{
    BidOutcome, ChangeRequest, CreateOutcome, Keys, NewAuction, NewBid, Retire, RulesInForce, Store,
};
use auction_server::testing::{TestEnv, mysql_base};
use chrono::Utc;
use tokio::time::Instant;

use crate::helpers::*;

/// Keys that may stay under a test's prefix once every auction is gone: the leader lease and its
/// epoch, the work index's seeding mark, the increment table.
const LASTING: [&str; 5] =
    ["{leader}", "{leader}:epoch", "log_work:seeded", "auctions:status_indexed", "bid_validation_rules"];

/// An environment whose finished auctions expire after a second, swept often, with the bidding
/// service able to read finished auctions from MySQL.
async fn short_retention() -> TestEnv {
    let mut env = TestEnv::new().await;
    env.set("ENDED_RETENTION", "1s");
    env.set("ANALYTICS_SWEEP", "200ms");
    let dsn = format!("{}/{}", mysql_base(), env.database);
    env.set("MYSQL_READ_DSN", &dsn);
    env
}

/// Which of auction `id`'s keys exist.
async fn auction_keys_left(env: &TestEnv, id: &str) -> Vec<String> {
    let keys = Keys::new(&env.prefix).auction(&AuctionId::parse(id).unwrap());
    let mut conn = env.redis_connection().await;
    let mut left = Vec::new();
    for key in [keys.state, keys.recent, keys.outcomes, keys.log, keys.log_owner] {
        let exists: bool = redis::cmd("EXISTS").arg(&key).query_async(&mut conn).await.unwrap();
        if exists {
            left.push(key);
        }
    }
    left
}

/// Polls `check` every 100 ms until it returns true, for at most `within`.
async fn until(within: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn in_index(env: &TestEnv, key: String, id: &str) -> bool {
    let score: Option<f64> =
        redis::cmd("ZSCORE").arg(key).arg(id).query_async(&mut env.redis_connection().await).await.unwrap();
    score.is_some()
}

#[tokio::test]
async fn finished_auction_keys_expire_and_reads_come_from_mysql() {
    let mut env = short_retention().await;
    let (auction_addr, _, _) = env.start_auction().await;
    let node = Node { addr: env.start_bidding().await };
    env.start_analytics().await;
    let api = Api::new(auction_addr);
    let auction = api.create_open(2, "1.00", 0).await;
    let id = auction.auction_id.to_string();
    let (mut alice, _) = node.connect(&id, "alice").await;
    let (mut bob, _) = node.connect(&id, "bob").await;
    assert!(matches!(alice.bid("1.00", Some("a-1")).await, ServerFrame::BidAccepted(_)));
    assert!(matches!(bob.bid("5.00", Some("b-1")).await, ServerFrame::BidAccepted(_)));
    drop((alice, bob));

    let keys = Keys::new(&env.prefix);
    until(Duration::from_secs(20), "the auction's keys expire and the list index forgets it", async || {
        auction_keys_left(&env, &id).await.is_empty() && !in_index(&env, keys.index(), &id).await
    })
    .await;
    assert!(!in_index(&env, keys.work(), &id).await, "left in the work index");
    assert!(!in_index(&env, keys.deadlines(), &id).await, "left in the deadlines");

    let got = api.auction(&id).await;
    assert_eq!(got.status, AuctionStatus::Ended);
    assert_eq!(got.winner.as_ref().map(UserId::as_str), Some("bob"));
    assert_eq!(got.final_price, Some(amount("5.00")));
    assert_eq!(got.bid_count, 2);
    assert_eq!(got.recent_bids.len(), 2);
    assert_eq!(got.title, auction.title);
    assert_eq!(got.created_at, auction.created_at);

    let (status, page) = api.get(&format!("/api/v1/auctions/{id}/bids")).await;
    assert_eq!(status, 200, "{page}");
    let page: BidsPage = serde_json::from_value(page).unwrap();
    assert_eq!(page.bids.iter().map(|b| b.bid_id.as_str()).collect::<Vec<_>>(), ["a-1", "b-1"]);

    for query in ["", "?status=ended"] {
        let (status, list) = api.get(&format!("/api/v1/auctions{query}")).await;
        assert_eq!(status, 200, "{list}");
        let list: AuctionList = serde_json::from_value(list).unwrap();
        let listed = list.auctions.iter().find(|a| a.auction_id.as_str() == id).expect("listed");
        assert_eq!(listed.status, AuctionStatus::Ended, "list{query}");
        assert_eq!((&listed.winner, listed.final_price), (&got.winner, got.final_price), "list{query}");
    }
    let (_, active) = api.get("/api/v1/auctions?status=active").await;
    assert!(!active.to_string().contains(&id), "listed as active: {active}");

    let (_, snapshot) = node.connect(&id, "carol").await;
    assert_eq!(snapshot.status, AuctionStatus::Ended);
    assert_eq!(snapshot.current_bid, Some(amount("5.00")));
    assert_eq!(snapshot.highest_bidder.as_ref().map(UserId::as_str), Some("bob"));

    // Reading it from MySQL made no Redis key again.
    assert_eq!(auction_keys_left(&env, &id).await, Vec::<String>::new());
}

#[tokio::test]
async fn retired_auction_is_not_found_by_a_bidding_node_without_mysql() {
    let mut env = short_retention().await;
    let (auction_addr, _, _) = env.start_auction().await;
    env.start_analytics().await;
    env.unset("MYSQL_READ_DSN");
    let node = Node { addr: env.start_bidding().await };
    let api = Api::new(auction_addr);
    let id = api.create_open(1, "1.00", 0).await.auction_id.to_string();
    until(Duration::from_secs(20), "the auction's keys expire", async || auction_keys_left(&env, &id).await.is_empty())
        .await;
    assert_eq!(node.refused_status(&format!("/ws/auction/{id}?user_id=carol")).await, 404);
    assert_eq!(api.auction(&id).await.status, AuctionStatus::Ended);
}

fn new_auction<'a>(id: &'a AuctionId, now_ms: i64, seconds: i64) -> NewAuction<'a> {
    NewAuction {
        id,
        title: "Lot",
        start_ms: now_ms - 1000,
        end_ms: now_ms + seconds * 1000,
        starting_bid: amount("1.00"),
        extension_window_s: 0,
        extension_s: 0,
        idempotency: None,
        reserve: None,
        buy_now: None,
    }
}

/// Creates an auction straight in the store, as the service would.
async fn create_in(store: &Store, auction: &NewAuction<'_>) {
    let now_ms = store.now_ms().await.unwrap();
    assert!(matches!(store.create(auction, now_ms).await.unwrap(), CreateOutcome::Created(_)));
}

#[tokio::test]
async fn sweep_looks_only_at_the_work_index() {
    let mut env = short_retention().await;
    env.start_analytics().await;
    let store = env.store().await;
    let keys = Keys::new(&env.prefix);
    until(Duration::from_secs(10), "the first sweep seeds the work index", async || {
        let seeded: bool =
            redis::cmd("EXISTS").arg(keys.work_seeded()).query_async(&mut env.redis_connection().await).await.unwrap();
        seeded
    })
    .await;
    let now_ms = store.now_ms().await.unwrap();
    // In the list index only, as an auction made by hand (not through the service) would be.
    let outside = AuctionId::parse("outside").unwrap();
    create_in(&store, &new_auction(&outside, now_ms, 60)).await;
    let _: i64 = redis::cmd("ZREM")
        .arg(keys.work())
        .arg("outside")
        .query_async(&mut env.redis_connection().await)
        .await
        .unwrap();
    // In the work index only.
    let inside = AuctionId::parse("inside").unwrap();
    store.mark_work(&inside, 0).await.unwrap();
    create_in(&store, &new_auction(&inside, now_ms, 60)).await;
    let _: i64 = redis::cmd("ZREM")
        .arg(keys.index())
        .arg("inside")
        .query_async(&mut env.redis_connection().await)
        .await
        .unwrap();

    let mut conn = env.mysql().await;
    until(Duration::from_secs(10), "the auction in the work index reaches mysql", async || {
        let rows: Vec<(i64,)> =
            sqlx::query_as("SELECT 1 FROM auctions WHERE auction_id = 'inside'").fetch_all(&mut conn).await.unwrap();
        !rows.is_empty()
    })
    .await;
    let groups: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(keys.auction(&outside).log)
        .query_async(&mut env.redis_connection().await)
        .await
        .unwrap();
    assert!(groups.is_empty(), "the sweep read the log of an auction outside the work index");
    let rows: Vec<(i64,)> =
        sqlx::query_as("SELECT 1 FROM auctions WHERE auction_id = 'outside'").fetch_all(&mut conn).await.unwrap();
    assert!(rows.is_empty());
}

#[tokio::test]
async fn outcomes_are_stored_only_for_bids_a_client_can_retry() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let now_ms = store.now_ms().await.unwrap();
    let (open, closed) = (AuctionId::parse("open").unwrap(), AuctionId::parse("closed").unwrap());
    create_in(&store, &new_auction(&open, now_ms, 60)).await;
    // Closed by Redis time four seconds ago.
    create_in(&store, &new_auction(&closed, now_ms - 5000, 1)).await;
    let rules = RulesInForce::default();
    let bid = async |store: &Store, auction: &AuctionId, bid_id: &str, cents: &str, keep_outcome: bool| {
        let (bidder, bid_id) = (UserId::parse("alice").unwrap(), BidId::parse(bid_id).unwrap());
        let new = NewBid {
            auction,
            bidder: &bidder,
            bid_id: &bid_id,
            amount: amount(cents),
            max_amount: None,
            rules: &rules,
            max_bid: Amount::MAX,
            older_rules: false,
            keep_outcome,
        };
        store.place_bid(&new).await.unwrap()
    };
    let fields = async |auction: &AuctionId| -> Vec<String> {
        let outcomes = Keys::new(&env.prefix).auction(auction).outcomes;
        redis::cmd("HKEYS").arg(&outcomes).query_async(&mut env.redis_connection().await).await.unwrap()
    };
    assert!(matches!(bid(&store, &open, "server-made", "1.00", false).await, BidOutcome::Accepted(_)));
    assert_eq!(fields(&open).await, Vec::<String>::new(), "a server-made id's outcome was stored");
    let first = bid(&store, &open, "mine", "9.00", true).await;
    assert!(matches!(first, BidOutcome::Rejected { .. }), "{first:?}");
    assert_eq!(fields(&open).await, ["alice:mine"]);
    assert_eq!(bid(&store, &open, "mine", "9.00", true).await, first, "a retry got another answer");

    let late = bid(&store, &closed, "late", "20.00", true).await;
    assert!(matches!(late, BidOutcome::Rejected { reason: RejectReason::AuctionEnded, .. }), "{late:?}");
    assert_eq!(fields(&closed).await, Vec::<String>::new(), "a bid on an ended auction stored an outcome");
    assert_eq!(bid(&store, &closed, "late", "20.00", true).await, late, "a retry got another answer");
    store.change(&open, ChangeRequest::Cancel).await.unwrap();
    let cancelled = bid(&store, &open, "after", "20.00", true).await;
    assert!(matches!(cancelled, BidOutcome::Rejected { reason: RejectReason::AuctionCancelled, .. }), "{cancelled:?}");
    assert_eq!(fields(&open).await, ["alice:mine"], "a bid on a cancelled auction stored an outcome");
}

#[tokio::test]
async fn retire_waits_for_the_final_event_to_be_acknowledged_and_never_extends() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let now_ms = store.now_ms().await.unwrap();
    let id = AuctionId::parse("lot").unwrap();
    let hour = Duration::from_secs(3600);
    assert_eq!(store.retire(&id, hour).await.unwrap(), Retire::Gone);
    create_in(&store, &new_auction(&id, now_ms, 60)).await;
    // The creation is not yet in MySQL: the log has work (no group yet).
    assert_eq!(store.retire(&id, hour).await.unwrap(), Retire::Work);
    let drain = async || {
        assert!(store.ensure_group(&id).await.unwrap());
        let entries = store.read_new(&id, "test", 100).await.unwrap();
        let ids: Vec<String> = entries.into_iter().map(|e| e.id).collect();
        store.ack(&id, &ids).await.unwrap();
    };
    drain().await;
    assert_eq!(store.retire(&id, hour).await.unwrap(), Retire::Live);
    store.change(&id, ChangeRequest::Cancel).await.unwrap();
    // The cancellation is delivered but not acknowledged: still work.
    assert!(store.ensure_group(&id).await.unwrap());
    let pending = store.read_new(&id, "test", 100).await.unwrap();
    assert_eq!(store.retire(&id, hour).await.unwrap(), Retire::Work);
    store.ack(&id, &pending.into_iter().map(|e| e.id).collect::<Vec<_>>()).await.unwrap();
    let Retire::Retired { expires_ms } = store.retire(&id, hour).await.unwrap() else { panic!("not retired") };
    let now_ms = store.now_ms().await.unwrap();
    assert!((now_ms + 3_590_000..=now_ms + 3_600_000).contains(&expires_ms), "{expires_ms} vs now {now_ms}");
    let keys = Keys::new(&env.prefix);
    let mut conn = env.redis_connection().await;
    for key in [keys.auction(&id).state, keys.auction(&id).log] {
        let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.unwrap();
        assert!(ttl > 3_590_000, "{key}: {ttl}");
    }
    assert!(in_index(&env, keys.retired(), "lot").await);
    assert!(!in_index(&env, keys.work(), "lot").await);
    // Again, with a longer retention: the expiry stays.
    let Retire::Retired { expires_ms: again } = store.retire(&id, hour * 2).await.unwrap() else {
        panic!("not retired")
    };
    assert!((again - expires_ms).abs() <= 2, "the retention moved from {expires_ms} to {again}");
}

#[tokio::test]
async fn many_short_auctions_leave_no_keys_behind() {
    let mut env = short_retention().await;
    let (auction_addr, _, _) = env.start_auction().await;
    env.start_analytics().await;
    let api = Api::new(auction_addr);
    let store = env.store().await;
    let now = Utc::now();
    let mut ids = Vec::new();
    for n in 0..60 {
        let auction = api
            .create(&CreateAuction {
                title: Some(format!("Lot {n}")),
                start_time: now - chrono::Duration::seconds(1),
                end_time: now + chrono::Duration::seconds(3),
                starting_bid: amount("1.00"),
                extension_window_s: Some(0),
                extension_s: Some(1),
                buy_now_price: None,
                reserve_price: None,
            })
            .await;
        ids.push(auction.auction_id);
    }
    let rules = RulesInForce::default();
    let bidders = [UserId::parse("alice").unwrap(), UserId::parse("bob").unwrap()];
    for id in &ids {
        for round in 0..5u32 {
            let bid_id = BidId::parse(&format!("b{round}")).unwrap();
            let cents = format!("{}.00", round + 1);
            let bidder = &bidders[round as usize % 2];
            let new = NewBid {
                auction: id,
                bidder,
                bid_id: &bid_id,
                amount: amount(&cents),
                max_amount: None,
                rules: &rules,
                max_bid: Amount::MAX,
                older_rules: false,
                keep_outcome: true,
            };
            assert!(matches!(store.place_bid(&new).await.unwrap(), BidOutcome::Accepted(_)));
        }
    }
    let lasting: Vec<String> = LASTING.iter().map(|k| format!("{}{k}", env.prefix)).collect();
    let mut left = Vec::new();
    until(Duration::from_secs(25), "every auction's keys and index entries go", async || {
        left = store.all_keys().await.unwrap().into_iter().filter(|k| !lasting.contains(k)).collect();
        left.is_empty()
    })
    .await;
    let mut conn = env.mysql().await;
    let (ended, bids): (i64, i64) =
        sqlx::query_as("SELECT (SELECT COUNT(*) FROM auctions WHERE status = 'ended'), (SELECT COUNT(*) FROM bids)")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!((ended, bids), (60, 300), "mysql misses what redis dropped");
}
