//! The list endpoint: per-status indexes, so a status list costs O(limit) whatever the other
//! statuses hold, and auctions move between them as their status changes.

use std::time::{Duration, Instant};

use auction_proto::AuctionStatus;
use auction_proto::rest::CreateAuction;
use auction_server::store::{Keys, STATUSES};
use chrono::Utc;
use futures_util::StreamExt;

use crate::helpers::*;
use auction_proto::ws::ServerFrame;

/// The ids a list call answers, in order.
async fn list_ids(api: &Api, query: &str) -> Vec<String> {
    let (status, list) = api.get(&format!("/api/v1/auctions{query}")).await;
    assert_eq!(status, 200, "{list}");
    list["auctions"].as_array().unwrap().iter().map(|a| a["auction_id"].as_str().unwrap().to_owned()).collect()
}

/// How many auctions the service's list calls have loaded so far.
async fn list_loads(api: &Api) -> f64 {
    let text = api.metrics(WAIT).await.unwrap();
    metric(&text, "auction_list_loads_total").unwrap_or(0.0)
}

/// The statuses whose index holds auction `id`.
async fn indexed_as(env: &TestEnv, id: &str) -> Vec<AuctionStatus> {
    let keys = Keys::new(&env.prefix);
    let mut conn = env.redis_connection().await;
    let mut found = Vec::new();
    for (status, index) in keys.status_indexes() {
        let score: Option<f64> = redis::cmd("ZSCORE").arg(index).arg(id).query_async(&mut conn).await.unwrap();
        if score.is_some() {
            found.push(status);
        }
    }
    found
}

/// Waits (up to [`WAIT`]) until auction `id` is indexed as exactly `status`.
async fn wait_indexed(env: &TestEnv, id: &str, status: AuctionStatus) {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = indexed_as(env, id).await;
        if found == [status] {
            return;
        }
        assert!(Instant::now() < deadline, "{id} is indexed as {found:?}, not {status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An auction that starts in an hour: scheduled.
fn later() -> CreateAuction {
    let now = Utc::now();
    CreateAuction {
        title: Some("Later".into()),
        start_time: now + chrono::Duration::hours(1),
        end_time: now + chrono::Duration::hours(2),
        starting_bid: amount("1"),
        extension_window_s: Some(0),
        extension_s: None,
        buy_now_price: None,
        reserve_price: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_list_loads_about_its_limit_however_many_auctions_have_other_statuses() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    // The active ones first, so that a search from the newest has 300 others to pass.
    let mut active = Vec::new();
    for _ in 0..3 {
        active.push(api.create_open(600, "1", 0).await.auction_id.to_string());
    }
    active.reverse();
    let cancelled: Vec<String> = futures_util::stream::iter(0..300)
        .map(|_| {
            let api = api.clone();
            async move {
                let id = api.create(&later()).await.auction_id.to_string();
                let (status, body) = api.post(&format!("/api/v1/auctions/{id}/cancel"), &serde_json::json!({})).await;
                assert_eq!(status, 200, "{body}");
                id
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert_eq!(cancelled.len(), 300);

    let before = list_loads(&api).await;
    assert_eq!(list_ids(&api, "?status=active&limit=5").await, active);
    let loaded = list_loads(&api).await - before;
    assert!(loaded <= 5.0 * 4.0 + 16.0, "a list of at most 5 active auctions loaded {loaded} auctions");

    let before = list_loads(&api).await;
    assert_eq!(list_ids(&api, "?status=cancelled&limit=5").await.len(), 5);
    assert_eq!(list_ids(&api, "?limit=5").await.len(), 5);
    let loaded = list_loads(&api).await - before;
    assert!(loaded <= 10.0 + 16.0, "two lists of 5 loaded {loaded} auctions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auctions_move_between_status_indexes_on_start_end_and_cancel() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let now = Utc::now();
    let soon = api
        .create(&CreateAuction {
            title: Some("Soon".into()),
            start_time: now + chrono::Duration::seconds(2),
            end_time: now + chrono::Duration::seconds(4),
            starting_bid: amount("1"),
            extension_window_s: Some(0),
            extension_s: None,
            buy_now_price: None,
            reserve_price: None,
        })
        .await
        .auction_id
        .to_string();
    let open = api.create_open(600, "1", 0).await.auction_id.to_string();
    let doomed = api.create_open(600, "1", 0).await.auction_id.to_string();
    assert_eq!(indexed_as(&env, &soon).await, [AuctionStatus::Scheduled]);
    assert_eq!(indexed_as(&env, &open).await, [AuctionStatus::Active]);
    assert_eq!(list_ids(&api, "?status=scheduled").await, std::slice::from_ref(&soon));
    assert_eq!(list_ids(&api, "?status=active").await, [doomed.clone(), open.clone()]);

    let (status, body) = api.post(&format!("/api/v1/auctions/{doomed}/cancel"), &serde_json::json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(indexed_as(&env, &doomed).await, [AuctionStatus::Cancelled]);
    assert_eq!(list_ids(&api, "?status=cancelled").await, std::slice::from_ref(&doomed));
    assert_eq!(list_ids(&api, "?status=active").await, std::slice::from_ref(&open));

    wait_indexed(&env, &soon, AuctionStatus::Active).await;
    assert_eq!(list_ids(&api, "?status=active").await, [open.clone(), soon.clone()]);
    assert_eq!(list_ids(&api, "?status=scheduled").await, Vec::<String>::new());
    wait_indexed(&env, &soon, AuctionStatus::Ended).await;
    assert_eq!(list_ids(&api, "?status=ended").await, std::slice::from_ref(&soon));
    assert_eq!(list_ids(&api, "?status=active").await, std::slice::from_ref(&open));
    assert_eq!(list_ids(&api, "").await, [doomed, open, soon]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_left_behind_are_moved_by_readers_and_entries_without_an_auction_are_skipped() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let open = api.create_open(600, "1", 0).await.auction_id.to_string();
    let keys = Keys::new(&env.prefix);
    let mut conn = env.redis_connection().await;
    // As if the move after its start had failed: still in the scheduled index.
    let score: f64 = redis::cmd("ZSCORE").arg(keys.index()).arg(&open).query_async(&mut conn).await.unwrap();
    let scheduled = keys.status_index(AuctionStatus::Scheduled);
    let active = keys.status_index(AuctionStatus::Active);
    let (): () = redis::cmd("ZREM").arg(&active).arg(&open).query_async(&mut conn).await.unwrap();
    let (): () = redis::cmd("ZADD").arg(&scheduled).arg(score).arg(&open).query_async(&mut conn).await.unwrap();
    // And entries of a create that failed after its index entries.
    for index in [keys.index(), scheduled.clone(), active.clone()] {
        let (): () = redis::cmd("ZADD")
            .arg(index)
            .arg(score + 1.0)
            .arg("0123456789abcdef")
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    assert_eq!(list_ids(&api, "?status=active").await, Vec::<String>::new(), "not indexed as active");
    assert_eq!(list_ids(&api, "?status=scheduled").await, Vec::<String>::new(), "listed by its status only");
    assert_eq!(indexed_as(&env, &open).await, [AuctionStatus::Active], "the reader moved it");
    assert_eq!(list_ids(&api, "?status=active").await, std::slice::from_ref(&open));
    assert_eq!(list_ids(&api, "").await, [open]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auctions_created_before_the_status_indexes_are_filled_in_once_at_start() {
    let mut env = TestEnv::new().await;
    let (api, _, first) = env.auction_instance().await;
    let open = api.create_open(600, "1", 0).await.auction_id.to_string();
    let gone = api.create(&later()).await.auction_id.to_string();
    let (status, body) = api.post(&format!("/api/v1/auctions/{gone}/cancel"), &serde_json::json!({})).await;
    assert_eq!(status, 200, "{body}");
    first.cancel();
    // What a deployment from before the status indexes has: the list index only.
    let keys = Keys::new(&env.prefix);
    let mut conn = env.redis_connection().await;
    for status in STATUSES {
        let (): () = redis::cmd("DEL").arg(keys.status_index(status)).query_async(&mut conn).await.unwrap();
    }
    let (): () = redis::cmd("DEL").arg(keys.status_indexes_ready()).query_async(&mut conn).await.unwrap();
    assert_eq!(indexed_as(&env, &open).await, []);

    let api = env.auction_service().await;
    wait_indexed(&env, &open, AuctionStatus::Active).await;
    wait_indexed(&env, &gone, AuctionStatus::Cancelled).await;
    assert_eq!(list_ids(&api, "?status=active").await, [open]);
    assert_eq!(list_ids(&api, "?status=cancelled").await, [gone]);
    let ready: bool = redis::cmd("EXISTS").arg(keys.status_indexes_ready()).query_async(&mut conn).await.unwrap();
    assert!(ready, "the backfill is marked done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_answers_are_cached_per_query_and_a_change_through_the_service_shows_at_once() {
    let mut env = TestEnv::new().await;
    env.set("LIST_CACHE", "1h");
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let first = api.create_open(600, "1", 0).await.auction_id.to_string();

    let before = list_loads(&api).await;
    assert_eq!(list_ids(&api, "?status=active&limit=10").await, std::slice::from_ref(&first));
    let polls: Vec<Vec<String>> =
        futures_util::future::join_all((0..20).map(|_| list_ids(&api, "?status=active&limit=10"))).await;
    assert!(polls.iter().all(|ids| *ids == [first.clone()]), "{polls:?}");
    assert_eq!(list_loads(&api).await - before, 1.0, "21 lists of one query loaded the auction once");

    // A bid is made elsewhere: the cached answer stands until it expires.
    let (mut ws, _) = node.connect(&first, "alice").await;
    assert!(matches!(ws.bid("5.00", Some("b1")).await, ServerFrame::BidAccepted(_)));
    let (_, list) = api.get("/api/v1/auctions?status=active&limit=10").await;
    assert_eq!(list["auctions"][0]["current_bid"], serde_json::Value::Null, "the cached answer: {list}");
    let (_, list) = api.get("/api/v1/auctions?status=active&limit=9").await;
    assert_eq!(list["auctions"][0]["current_bid"], "5.00", "another query loads afresh: {list}");

    // A create through this service makes every cached answer stale.
    let second = api.create_open(600, "1", 0).await.auction_id.to_string();
    assert_eq!(list_ids(&api, "?status=active&limit=10").await, [second, first.clone()]);
    let (_, list) = api.get("/api/v1/auctions?status=active&limit=10").await;
    assert_eq!(list["auctions"][1]["current_bid"], "5.00", "{list}");
}
