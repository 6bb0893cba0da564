//! The durable log and the analytics service: every accepted bid reaches MySQL exactly once,
//! whatever dies and whenever MySQL is down.

use std::collections::BTreeMap;
use std::time::Duration;

use auction_proto::rest::BidsPage;
use auction_proto::ws::ServerFrame;
use auction_proto::{Amount, AuctionId, RejectReason};
use auction_server::store::Event;
use rust_decimal::Decimal;
use sqlx::Connection;
use tokio::time::Instant;

use crate::helpers::*;

/// One accepted bid as the bidder saw it.
#[derive(Debug, Clone, PartialEq)]
struct Accepted {
    seq: u64,
    bid_id: String,
    bidder: String,
    amount: Amount,
}

/// Bidders `names` take turns outbidding each other on `auction` for `rounds` rounds.
async fn bid_rounds(node: Node, auction: &str, names: &[&str], rounds: usize) -> Vec<Accepted> {
    let mut clients = Vec::new();
    for name in names {
        clients.push((name.to_string(), node.connect(auction, name).await.0));
    }
    let mut accepted = Vec::new();
    let mut next = None::<Amount>;
    for round in 0..rounds {
        let (name, ws) = &mut clients[round % names.len()];
        let amount = next.unwrap_or(amount("1.00"));
        match ws.bid(&amount.to_string(), Some(&format!("{name}-{round}"))).await {
            ServerFrame::BidAccepted(a) => {
                accepted.push(Accepted {
                    seq: a.seq,
                    bid_id: a.bid_id.to_string(),
                    bidder: name.clone(),
                    amount: a.amount,
                });
                next = Some(auction_proto::BidRules::default().min_next_bid(a.amount, Some(a.amount)));
            }
            other => panic!("{other:?}"),
        }
    }
    accepted
}

/// (count, sum, max) of an auction's bids in MySQL.
async fn mysql_totals(conn: &mut sqlx::MySqlConnection, auction: &str) -> (i64, Option<Decimal>, Option<Decimal>) {
    sqlx::query_as("SELECT COUNT(*), SUM(amount), MAX(amount) FROM bids WHERE auction_id = ?")
        .bind(auction)
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Every bid of `auction` in MySQL, in `seq` order, as the bidders were told of them.
async fn mysql_bids(conn: &mut sqlx::MySqlConnection, auction: &str) -> Vec<Accepted> {
    let rows = mysql_bid_rows(conn, auction).await;
    rows.into_iter().map(|r| Accepted { seq: r.seq, bid_id: r.bid_id, bidder: r.bidder, amount: r.amount }).collect()
}

/// `analytics_events_written_total` of the analytics instance at `addr`.
async fn events_written(addr: std::net::SocketAddr) -> f64 {
    scrape(addr, "analytics_events_written_total").await
}

/// Waits until every entry of `auction`'s log has been written and acknowledged.
async fn wait_acknowledged(store: &auction_server::store::Store, auction: &AuctionId) {
    wait_backlog(store, auction, 0).await;
}

/// Waits until exactly `left` entries of `auction`'s log are not yet written and acknowledged.
async fn wait_backlog(store: &auction_server::store::Store, auction: &AuctionId, left: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let backlog = store.log_backlog(auction).await.unwrap();
        if backlog == left {
            return;
        }
        assert!(Instant::now() < deadline, "the log of {auction} still holds {backlog} entries, not {left}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn totals(accepted: &[Accepted]) -> (i64, Option<Decimal>, Option<Decimal>) {
    let sum: i64 = accepted.iter().map(|a| a.amount.cents()).sum();
    let max = accepted.iter().map(|a| a.amount).max();
    (accepted.len() as i64, Some(Decimal::new(sum, 2)), max.map(Amount::to_decimal))
}

/// Waits until MySQL holds exactly `accepted` for `auction`, then checks the totals.
async fn wait_in_mysql(env: &TestEnv, auction: &str, accepted: &[Accepted], within: Duration) {
    let mut conn = env.mysql().await;
    let deadline = Instant::now() + within;
    loop {
        let found = mysql_totals(&mut conn, auction).await;
        if found.0 >= accepted.len() as i64 || Instant::now() > deadline {
            assert_eq!(found, totals(accepted), "count, sum and max of {auction} in mysql");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bids_made_while_analytics_is_down_all_arrive_once_it_starts() {
    let mut env = TestEnv::new().await;
    // Batches smaller than the backlog: the consumer works through it in several reads.
    env.set("ANALYTICS_BATCH", "16");
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let mut all = Vec::new();
    for _ in 0..3 {
        let auction = api.create_open(600, "1", 0).await;
        let id = auction.auction_id.to_string();
        all.push((id.clone(), bid_rounds(node, &id, &["ann", "ben", "cat"], 40).await));
    }
    let mut conn = env.mysql().await;
    for (id, _) in &all {
        assert_eq!(mysql_totals(&mut conn, id).await.0, 0, "nothing is written without analytics");
    }
    let store = env.store().await;
    let backlog = store.log_backlog(&AuctionId::parse(&all[0].0).unwrap()).await.unwrap();
    assert_eq!(backlog, 42, "the creation, the start and 40 bids wait in the log");

    env.analytics_service().await;
    for (id, accepted) in &all {
        wait_in_mysql(&env, id, accepted, WAIT).await;
        let record = api.auction(id).await;
        assert_eq!(record.bid_count, accepted.len() as u64);
        assert_eq!(record.current_bid, accepted.last().map(|a| a.amount));
    }
    // Written and acknowledged means trimmed: the log does not keep growing.
    for (id, _) in &all {
        let id = AuctionId::parse(id).unwrap();
        assert_eq!(store.log_backlog(&id).await.unwrap(), 0);
        assert!(store.log_fields(&id).await.unwrap().len() <= 1, "the log was not trimmed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_commit_and_ack_duplicates_nothing() {
    let mut env = TestEnv::new().await;
    env.set("ANALYTICS_CLAIM_TTL", "500ms");
    env.set("ANALYTICS_SWEEP", "200ms");
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create_open(600, "1", 0).await;
    let id = auction.auction_id.to_string();
    let accepted = bid_rounds(node, &id, &["ann", "ben"], 30).await;

    let mut doomed =
        env.doomed_process(env!("CARGO_BIN_EXE_analytics-service"), "doomed", &[("ANALYTICS_CRASH_AFTER_COMMIT", "1")]);
    let status = tokio::time::timeout(WAIT, doomed.wait()).await.expect("it should crash").unwrap();
    assert!(!status.success(), "the failpoint aborts the process");
    let mut conn = env.mysql().await;
    assert_eq!(mysql_totals(&mut conn, &id).await, totals(&accepted), "committed before the crash");
    let store = env.store().await;
    let auction_id = AuctionId::parse(&id).unwrap();
    // The creation, the start and 30 bids.
    assert_eq!(store.log_backlog(&auction_id).await.unwrap(), 32, "but never acknowledged");

    // A healthy instance reclaims the dead one's pending entries and writes them again, in
    // claims smaller than what is pending.
    env.set("ANALYTICS_BATCH", "16");
    let healthy = env.analytics_service().await;
    wait_acknowledged(&store, &auction_id).await;
    // The rows were already there, so only its count shows that it wrote the entries it
    // acknowledged (counted at each commit): every pending one, once.
    assert_eq!(events_written(healthy).await, 32.0, "the healthy instance wrote exactly what was pending");
    assert_eq!(mysql_bids(&mut conn, &id).await, accepted, "no duplicates after redelivery");
    let (auctions,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM auctions WHERE auction_id = ?")
        .bind(&id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(auctions, 1);
}

/// The other side of acknowledging only after the commit: an instance that dies holding a batch
/// it read but never committed leaves nothing in MySQL, and its entries stay pending for whoever
/// takes its auctions over, which writes each accepted bid once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_read_and_commit_loses_nothing() {
    let mut env = TestEnv::new().await;
    env.set("ANALYTICS_CLAIM_TTL", "500ms");
    env.set("ANALYTICS_SWEEP", "200ms");
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create_open(600, "1", 0).await;
    let id = auction.auction_id.to_string();
    let accepted = bid_rounds(node, &id, &["ann", "ben"], 30).await;

    let mut doomed = env.doomed_process(
        env!("CARGO_BIN_EXE_analytics-service"),
        "doomed",
        &[("ANALYTICS_CRASH_BEFORE_COMMIT", "1")],
    );
    let status = tokio::time::timeout(WAIT, doomed.wait()).await.expect("it should crash").unwrap();
    assert!(!status.success(), "the failpoint aborts the process");
    let mut conn = env.mysql().await;
    assert_eq!(mysql_bids(&mut conn, &id).await, [], "nothing was committed before the crash");
    // It did read them: the creation, the start and 30 bids wait, delivered to the dead instance.
    let store = env.store().await;
    let auction_id = AuctionId::parse(&id).unwrap();
    let log = auction_server::store::Keys::new(&env.prefix).auction(&auction_id).log;
    let mut redis = env.redis_connection().await;
    let pending: redis::streams::StreamPendingReply =
        redis::AsyncCommands::xpending(&mut redis, &log, "analytics").await.unwrap();
    let holders: Vec<(String, usize)> = match pending {
        redis::streams::StreamPendingReply::Data(data) => {
            data.consumers.into_iter().map(|c| (c.name, c.pending)).collect()
        }
        _ => Vec::new(),
    };
    assert_eq!(holders, [("doomed".to_owned(), 32)], "the read batch is pending for the dead instance");

    env.set("ANALYTICS_BATCH", "16");
    let healthy = env.analytics_service().await;
    wait_acknowledged(&store, &auction_id).await;
    assert_eq!(mysql_bids(&mut conn, &id).await, accepted, "every accepted bid once, nothing else");
    assert_eq!(events_written(healthy).await, 32.0, "the healthy instance wrote every pending entry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_outage_opens_the_breaker_without_touching_bidding_and_loses_nothing() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let mysql_addr = mysql_base().rsplit('@').next().unwrap().to_owned();
    let proxy = Proxy::start(&mysql_addr).await;
    let creds = mysql_base().rsplit_once('@').unwrap().0.to_owned();
    env.set("MYSQL_DSN", &format!("{creds}@{}/{}", proxy.addr, env.database));
    env.set("ANALYTICS_SWEEP", "200ms");
    let (analytics, _) = env.analytics_instance().await;
    let health = format!("http://{analytics}/health");
    let auction = api.create_open(600, "1", 0).await;
    let id = auction.auction_id.to_string();

    // Bid continuously in the background, counting the accepted bids as they come.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (count, mut counted) = tokio::sync::watch::channel(0_usize);
    let bidding = {
        let (stop, id) = (stop.clone(), id.clone());
        tokio::spawn(async move {
            let (mut a, _) = node.connect(&id, "ann").await;
            let (mut b, _) = node.connect(&id, "ben").await;
            let (mut accepted, mut next) = (Vec::new(), amount("1.00"));
            let mut round = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (name, ws) = if round % 2 == 0 { ("ann", &mut a) } else { ("ben", &mut b) };
                match ws.bid(&next.to_string(), Some(&format!("{name}-{round}"))).await {
                    ServerFrame::BidAccepted(x) => {
                        accepted.push(Accepted {
                            seq: x.seq,
                            bid_id: x.bid_id.to_string(),
                            bidder: name.to_owned(),
                            amount: x.amount,
                        });
                        next = auction_proto::BidRules::default().min_next_bid(x.amount, Some(x.amount));
                        count.send_replace(accepted.len());
                    }
                    ServerFrame::BidRejected(r) => panic!("bid refused during the mysql outage: {r:?}"),
                    other => panic!("{other:?}"),
                }
                round += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            accepted
        })
    };
    // Waits until `more` bids beyond those counted now were accepted.
    let mut accept_more = async |more: usize| {
        let target = *counted.borrow() + more;
        let waited = tokio::time::timeout(WAIT, counted.wait_for(|n| *n >= target)).await;
        *waited.expect("bidding stalled").expect("the bidders stopped")
    };

    let mut conn = env.mysql().await;
    let deadline = Instant::now() + WAIT;
    while mysql_totals(&mut conn, &id).await.0 == 0 {
        assert!(Instant::now() < deadline, "analytics never wrote anything");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.down();
    let deadline = Instant::now() + WAIT;
    loop {
        let response = api.http.get(&health).send().await.unwrap();
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap();
        if body["checks"]["mysql_breaker"] == "open" {
            assert_eq!(status, 503, "an open breaker makes the service degraded");
            break;
        }
        assert!(Instant::now() < deadline, "the breaker never opened: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = api.http.get(format!("http://{analytics}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("analytics_mysql_breaker_state 2"), "{metrics}");
    // Bidding goes on while MySQL is away: bids are accepted with MySQL unreachable (how fast is
    // the benchmark's business; that they are at all, and every one of them, is this test's).
    let at_open = accept_more(0).await;
    let during = accept_more(20).await - at_open;
    proxy.restore();
    accept_more(10).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let accepted = bidding.await.unwrap();
    let restored = Instant::now();
    wait_in_mysql(&env, &id, &accepted, Duration::from_secs(20)).await;
    assert_eq!(mysql_bids(&mut conn, &id).await, accepted, "every accepted bid once, nothing else");
    eprintln!(
        "mysql outage: {} bids accepted, {during} while mysql was unreachable, backlog written {:?} after restore",
        accepted.len(),
        restored.elapsed()
    );
    let body: serde_json::Value = api.http.get(&health).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["checks"]["mysql_breaker"], "ok", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_analytics_instances_split_the_work_without_duplicates() {
    let mut env = TestEnv::new().await;
    env.set("ANALYTICS_SWEEP", "200ms");
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let (first, _) = env.analytics_instance().await;
    let (second, _) = env.analytics_instance().await;
    let mut all = Vec::new();
    for _ in 0..16 {
        let auction = api.create_open(600, "1", 0).await;
        let id = auction.auction_id.to_string();
        all.push((id.clone(), bid_rounds(node, &id, &["ann", "ben"], 6).await));
    }
    for (id, accepted) in &all {
        wait_in_mysql(&env, id, accepted, WAIT).await;
    }
    // Rows are visible at the commit, a moment before the entries are acknowledged: wait for
    // every log to be acknowledged, after which every write has been counted.
    let store = env.store().await;
    let deadline = Instant::now() + WAIT;
    for (id, _) in &all {
        let id = AuctionId::parse(id).unwrap();
        while store.log_backlog(&id).await.unwrap() > 0 {
            assert!(Instant::now() < deadline, "the log of {id} was never fully acknowledged");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut counts = Vec::new();
    for addr in [first, second] {
        let text = api.http.get(format!("http://{addr}/metrics")).send().await.unwrap().text().await.unwrap();
        counts.push(metric(&text, "analytics_events_written_total").unwrap_or(0.0));
    }
    assert!(counts.iter().all(|n| *n > 0.0), "one instance did all the work: {counts:?}");
    // Per auction: the creation, the start and 6 bids.
    assert_eq!(counts.iter().sum::<f64>(), f64::from(16 * 8), "every event written once: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bids_endpoint_pages_through_the_accepted_bids_in_order() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    env.analytics_service().await;
    let auction = api.create_open(600, "1", 0).await;
    let id = auction.auction_id.to_string();
    let accepted = bid_rounds(node, &id, &["ann", "ben", "cat"], 10).await;
    // A rejected bid is not in the history.
    let (mut dan, _) = node.connect(&id, "dan").await;
    match dan.bid("1.00", Some("too-low")).await {
        ServerFrame::BidRejected(r) => assert_eq!(r.reason, RejectReason::BidTooLow),
        other => panic!("{other:?}"),
    }
    wait_in_mysql(&env, &id, &accepted, WAIT).await;

    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("/api/v1/auctions/{id}/bids?limit=3&cursor={c}"),
            None => format!("/api/v1/auctions/{id}/bids?limit=3"),
        };
        let (status, body) = api.get(&query).await;
        assert_eq!(status, 200, "{body}");
        let page: BidsPage = serde_json::from_value(body).unwrap();
        assert!(page.bids.len() <= 3);
        pages.push(page.bids.len());
        let got: Vec<Accepted> = page
            .bids
            .iter()
            .map(|b| Accepted {
                seq: b.seq,
                bid_id: b.bid_id.to_string(),
                bidder: b.bidder.to_string(),
                amount: b.amount,
            })
            .collect();
        cursor = page.next_cursor;
        let start = pages.iter().sum::<usize>() - got.len();
        assert_eq!(got, accepted[start..start + got.len()]);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(pages, [3, 3, 3, 1]);
    let (_, all) = api.get(&format!("/api/v1/auctions/{id}/bids")).await;
    assert_eq!(all["bids"].as_array().unwrap().len(), 10);
    assert_eq!(all["next_cursor"], serde_json::Value::Null);
    let by_seq: BTreeMap<u64, &Accepted> = accepted.iter().map(|a| (a.seq, a)).collect();
    assert_eq!(by_seq.len(), 10);

    for (query, field) in
        [("limit=0", "limit"), ("limit=5000", "limit"), ("cursor=abc", "cursor"), ("cursor=%2B3", "cursor")]
    {
        let (status, body) = api.get(&format!("/api/v1/auctions/{id}/bids?{query}")).await;
        assert_eq!((status, body["error"]["field"].as_str()), (400, Some(field)), "{query}");
    }
    let (status, _) = api.get("/api/v1/auctions/nosuch/bids").await;
    assert_eq!(status, 404);
}

/// Polls the `auctions` row of `auction` until `done` holds of its status, within `WAIT`; returns
/// the status and the close.
async fn wait_for_row(
    conn: &mut sqlx::MySqlConnection,
    auction: &str,
    done: impl Fn(&str) -> bool,
) -> (String, chrono::NaiveDateTime) {
    let deadline = Instant::now() + WAIT;
    loop {
        let row: Option<(String, chrono::NaiveDateTime)> =
            sqlx::query_as("SELECT status, end_time FROM auctions WHERE auction_id = ?")
                .bind(auction)
                .fetch_optional(&mut *conn)
                .await
                .unwrap();
        match row {
            Some(row) if done(&row.0) => return row,
            row if Instant::now() > deadline => panic!("row of {auction} is {row:?}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The auction service writes its own changes to MySQL at once, and the analytics service writes
/// them again from the log: both through the one set of guarded statements. An extension whose
/// write arrives after the end (a slow copy, or the log replayed) must neither make the ended
/// auction active again nor move its close; nor may a late start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_written_after_the_end_leaves_the_row_ended() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let auction = api.create_open(1, "1", 0).await;
    let id = auction.auction_id.to_string();
    let (status, body) = api.post(&format!("/api/v1/auctions/{id}/extend"), &serde_json::json!({"seconds": 1})).await;
    assert_eq!(status, 200, "{body}");
    let mut conn = env.mysql().await;
    let ended = wait_for_row(&mut conn, &id, |status| status == "ended").await;
    let events = env.store().await.log_events(&auction.auction_id).await.unwrap();
    let late: Vec<&Event> =
        events.iter().filter(|e| matches!(e, Event::Extended(_) | Event::Started(_) | Event::Created(_))).collect();
    assert_eq!(late.len(), 3, "the creation, the start and the extension: {events:?}");

    let pool = sqlx::MySqlPool::connect(&format!("{}/{}", mysql_base(), env.database)).await.unwrap();
    auction_server::db::write_events(&pool, &late).await.unwrap();
    let after = wait_for_row(&mut conn, &id, |_| true).await;
    assert_eq!(after, ended, "a late write changed the ended auction's row");
}

/// A bid's log entry as version 1 of the scripts wrote it: one stream field per key.
fn v1_bid(auction: &auction_proto::rest::Auction, seq: &str, bidder: &str, cents: &str) -> Vec<(&'static str, String)> {
    let end_ms = auction.end_time.timestamp_millis().to_string();
    vec![
        ("type", "bid".into()),
        ("auction_id", auction.auction_id.to_string()),
        ("bid_id", format!("old-{seq}")),
        ("bidder", bidder.into()),
        ("amount", cents.into()),
        ("seq", seq.into()),
        ("bid_count", "1".into()),
        ("placed_us", chrono::Utc::now().timestamp_micros().to_string()),
        ("end_ms", end_ms.clone()),
        ("prev_end_ms", end_ms),
    ]
}

/// Logs written before the one event format (version 1: one stream field per key) are still
/// consumed, so a running deployment upgrades without losing what its logs hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_written_in_the_old_format_is_still_read() {
    let mut env = TestEnv::new().await;
    env.set("ANALYTICS_SWEEP", "200ms");
    let api = env.auction_service().await;
    let auction = api.create_open(600, "1", 0).await;
    let id = auction.auction_id.to_string();
    let store = env.store().await;
    for (seq, bidder, cents) in [("101", "ann", "100"), ("102", "ben", "150")] {
        store.append_raw_log_entry(&auction.auction_id, &v1_bid(&auction, seq, bidder, cents)).await.unwrap();
    }
    let cancelled = [("type", "cancelled"), ("auction_id", id.as_str()), ("seq", "103")];
    store.append_raw_log_entry(&auction.auction_id, &cancelled).await.unwrap();

    env.analytics_service().await;
    let mut conn = env.mysql().await;
    wait_for_row(&mut conn, &id, |status| status == "cancelled").await;
    let bids: Vec<(Vec<u8>, Vec<u8>, Decimal, u64)> =
        sqlx::query_as("SELECT bid_id, bidder, amount, seq FROM bids WHERE auction_id = ? ORDER BY seq")
            .bind(&id)
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let bids: Vec<(String, String, String, u64)> = bids
        .into_iter()
        .map(|(b, u, a, s)| (String::from_utf8(b).unwrap(), String::from_utf8(u).unwrap(), a.to_string(), s))
        .collect();
    assert_eq!(
        bids,
        [("old-101".into(), "ann".into(), "1.00".into(), 101), ("old-102".into(), "ben".into(), "1.50".into(), 102)]
    );
    // Acknowledged after the commit that made the rows visible: wait for it.
    wait_acknowledged(&store, &auction.auction_id).await;
}

/// An entry written by newer scripts than this analytics instance reads (a rolling upgrade that
/// reached the bidding nodes first) is never acknowledged and lost: the log waits there, with
/// what follows it, for an instance that reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_of_a_newer_log_version_waits_for_an_instance_that_reads_it() {
    let mut env = TestEnv::new().await;
    env.set("ANALYTICS_SWEEP", "200ms");
    let api = env.auction_service().await;
    let auction = api.create_open(600, "1", 0).await;
    let id = auction.auction_id.to_string();
    let store = env.store().await;
    store.append_raw_log_entry(&auction.auction_id, &v1_bid(&auction, "101", "ann", "100")).await.unwrap();
    store.append_raw_log_entry(&auction.auction_id, &[("v", "4"), ("event", "{\"type\":\"bid\"}")]).await.unwrap();
    store.append_raw_log_entry(&auction.auction_id, &v1_bid(&auction, "103", "ben", "200")).await.unwrap();

    env.analytics_service().await;
    // The newer entry and the one after it stay; everything before is written.
    wait_backlog(&store, &auction.auction_id, 2).await;
    let mut conn = env.mysql().await;
    let seqs: Vec<(u64,)> =
        sqlx::query_as("SELECT seq FROM bids WHERE auction_id = ?").bind(&id).fetch_all(&mut conn).await.unwrap();
    assert_eq!(seqs, [(101,)], "written up to the newer entry, and not past it");
    let fields = store.log_fields(&auction.auction_id).await.unwrap();
    assert!(fields.iter().any(|f| f.get("v").map(String::as_str) == Some("4")), "the newer entry is kept");
}

/// With `MYSQL_READ_DSN` the bids API reads the replica, and writes still go to `MYSQL_DSN`. The
/// "replica" here is another database holding a bid the primary never had, so the answer shows
/// which one was read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bids_api_reads_from_the_read_replica() {
    let mut env = TestEnv::new().await;
    let replica = format!("{}_replica", env.database);
    let mut admin = sqlx::MySqlConnection::connect(&format!("{}/auction", mysql_base())).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE `{replica}`")).execute(&mut admin).await.unwrap();
    let replica_url = format!("{}/{replica}", mysql_base());
    let replica_pool = sqlx::MySqlPool::connect(&replica_url).await.unwrap();
    auction_server::db::MIGRATOR.run(&replica_pool).await.unwrap();

    env.set("MYSQL_READ_DSN", &replica_url);
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let _analytics = env.analytics_service().await;
    let auction = api.create_open(600, "1.00", 0).await;
    let id = auction.auction_id.to_string();
    sqlx::query(
        "INSERT INTO bids (auction_id, seq, bid_id, bidder, placed_by, amount, placed_at) \
         VALUES (?, 1, 'on-replica', 'rita', 'rita', 7.00, NOW(6))",
    )
    .bind(&id)
    .execute(&replica_pool)
    .await
    .unwrap();
    // A real bid goes to the primary through the analytics service.
    let accepted = bid_rounds(node, &id, &["ann", "ben"], 1).await;
    wait_in_mysql(&env, &id, &accepted, WAIT).await;

    let (status, body) = api.get(&format!("/api/v1/auctions/{id}/bids")).await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["bids"].as_array().unwrap().iter().map(|b| b["bid_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["on-replica"], "the bids API did not read the replica: {body}");
    let (status, health) = api.get("/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["checks"]["mysql_read"], "ok", "{health}");

    replica_pool.close().await;
    sqlx::query(&format!("DROP DATABASE `{replica}`")).execute(&mut admin).await.unwrap();
}

/// With `BID_DURABILITY=replicated` an acceptance is answered only once a replica has it. On a
/// cluster (whose primaries each have a replica) bids are accepted; on a single Redis without
/// replicas no acceptance can be confirmed, so the bidder hears `unavailable` after the replica
/// timeout, although the bid stands in Redis, and a retry of the same `bid_id` waits again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_durability_acknowledges_only_what_a_replica_has() {
    let mut env = TestEnv::new().await;
    env.set("BID_DURABILITY", "replicated");
    env.set("BID_REPLICA_TIMEOUT", "300ms");
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create_open(600, "1.00", 0).await;
    let id = auction.auction_id.to_string();
    let (mut ann, _) = node.connect(&id, "ann").await;
    let store = env.store().await;
    let auction_id = AuctionId::parse(&id).unwrap();
    // The first bid then finds its script unknown to Redis and must load it on the way.
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut env.redis_connection().await).await.unwrap();

    if auction_server::testing::redis_cluster_nodes().is_some() {
        let (mut ben, _) = node.connect(&id, "ben").await;
        for (i, amount) in ["1.00", "2.00", "3.00"].into_iter().enumerate() {
            let bidder = if i % 2 == 0 { &mut ann } else { &mut ben };
            match bidder.bid(amount, Some(&format!("b{i}"))).await {
                ServerFrame::BidAccepted(a) => assert_eq!(a.amount, Amount::parse(amount).unwrap()),
                other => panic!("a replicated bid on the cluster was not accepted: {other:?}"),
            }
        }
        assert_eq!(bids_logged(&store, &auction_id).await, 3);
        return;
    }

    let started = Instant::now();
    match ann.bid("1.00", Some("a0")).await {
        ServerFrame::BidRejected(r) => assert_eq!(r.reason, RejectReason::Unavailable, "{r:?}"),
        other => panic!("an acceptance no replica confirmed was answered: {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(300), "answered before the replica timeout");
    assert_eq!(bids_logged(&store, &auction_id).await, 1, "the bid itself stands");
    match ann.bid("1.00", Some("a0")).await {
        ServerFrame::BidRejected(r) => assert_eq!(r.reason, RejectReason::Unavailable, "{r:?}"),
        other => panic!("a retry skipped the wait for a replica: {other:?}"),
    }
    assert_eq!(bids_logged(&store, &auction_id).await, 1, "the retry placed nothing new");
}

async fn bids_logged(store: &auction_server::store::Store, id: &AuctionId) -> usize {
    store.log_types(id).await.unwrap().iter().filter(|kind| *kind == "bid").count()
}

/// Places one bid as `user` on a connection of its own; it must be accepted.
async fn place(node: Node, auction: &str, user: &str, cents: &str, bid_id: &str) -> Accepted {
    let (mut ws, _) = node.connect(auction, user).await;
    match ws.bid(cents, Some(bid_id)).await {
        ServerFrame::BidAccepted(a) => {
            Accepted { seq: a.seq, bid_id: a.bid_id.to_string(), bidder: user.to_owned(), amount: a.amount }
        }
        other => panic!("{user} {cents}: {other:?}"),
    }
}

/// Redis may lose its last writes: a failover to a replica that was behind, or an append-only
/// file short of its last second. The lost bids are in MySQL already, and the bids accepted after
/// the loss get their seqs again. MySQL must keep both (each was accepted), count and report the
/// conflicts, page through both, and record the result Redis decided, not the highest bid it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bids_lost_in_a_redis_rollback_and_the_bids_reusing_their_seqs_are_all_recorded() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let analytics = env.analytics_service().await;
    let auction = api.create_open(600, "1", 0).await;
    let id = auction.auction_id.to_string();
    let store = env.store().await;
    let mut before = Vec::new();
    for (user, cents, bid_id) in [("ann", "1.00", "b-1"), ("ben", "2.00", "b-2"), ("cat", "3.00", "b-3")] {
        before.push(place(node, &id, user, cents, bid_id).await);
    }
    wait_acknowledged(&store, &auction.auction_id).await;
    // What a replica that is behind holds: the auction's keys as they were.
    let keys = auction_server::store::Keys::new(&env.prefix).auction(&auction.auction_id);
    let keys = [keys.state, keys.recent, keys.outcomes, keys.log];
    let replica = env.dump_auction(&id).await;
    assert!(replica.iter().all(Option::is_some), "every key of the auction exists");

    let mut lost = Vec::new();
    for (user, cents, bid_id) in [("ann", "50.00", "lost-1"), ("ben", "60.00", "lost-2"), ("ann", "70.00", "lost-3")] {
        lost.push(place(node, &id, user, cents, bid_id).await);
    }
    wait_acknowledged(&store, &auction.auction_id).await;
    wait_in_mysql(&env, &id, &[before.clone(), lost.clone()].concat(), WAIT).await;

    // The failover: the replica's state replaces the primary's.
    let mut redis = env.redis_connection().await;
    for (key, dump) in keys.iter().zip(&replica) {
        let _: () = redis::cmd("RESTORE")
            .arg(key)
            .arg(0)
            .arg(dump.as_deref())
            .arg("REPLACE")
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    let mut new = Vec::new();
    for (user, cents, bid_id) in [("dan", "10.00", "new-1"), ("eve", "11.00", "new-2"), ("dan", "12.00", "new-3")] {
        new.push(place(node, &id, user, cents, bid_id).await);
    }
    let seqs = |bids: &[Accepted]| bids.iter().map(|b| b.seq).collect::<Vec<_>>();
    assert_eq!(seqs(&new), seqs(&lost), "the new bids reuse the lost bids' seqs");
    wait_acknowledged(&store, &auction.auction_id).await;

    // Both bids of each reused seq, the lost one (recorded first) first.
    let mut expected = before.clone();
    for (lost, new) in lost.iter().zip(&new) {
        expected.extend([lost.clone(), new.clone()]);
    }
    let mut conn = env.mysql().await;
    assert_eq!(mysql_bids(&mut conn, &id).await, expected, "every accepted bid is in mysql");
    assert_eq!(scrape(analytics, "analytics_bid_seq_conflicts_total").await, 3.0);

    // Every page size reads each bid once, in order, whether a page ends inside a seq or not.
    for limit in [1, 2, 4, 100] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let query = match &cursor {
                Some(c) => format!("/api/v1/auctions/{id}/bids?limit={limit}&cursor={c}"),
                None => format!("/api/v1/auctions/{id}/bids?limit={limit}"),
            };
            let (status, body) = api.get(&query).await;
            assert_eq!(status, 200, "{query}: {body}");
            let page: BidsPage = serde_json::from_value(body).unwrap();
            seen.extend(page.bids.iter().map(|b| b.bid_id.to_string()));
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        let ids: Vec<String> = expected.iter().map(|b| b.bid_id.clone()).collect();
        assert_eq!(seen, ids, "pages of {limit}");
    }
    // A plain seq is still a cursor: after every bid of that seq.
    let (status, body) = api.get(&format!("/api/v1/auctions/{id}/bids?cursor={}", lost[0].seq)).await;
    assert_eq!(status, 200, "{body}");
    let page: BidsPage = serde_json::from_value(body).unwrap();
    assert_eq!(
        page.bids.iter().map(|b| b.bid_id.to_string()).collect::<Vec<_>>(),
        ["lost-2", "new-2", "lost-3", "new-3"]
    );

    // Close it now: the result is the one Redis decides, with the bids Redis still holds.
    let now_ms = store.now_ms().await.unwrap();
    let _: () = redis::cmd("HSET").arg(&keys[0]).arg("end_ms").arg(now_ms).query_async(&mut redis).await.unwrap();
    store.schedule(&auction.auction_id, now_ms).await.unwrap();
    store.announce_deadline().await.unwrap();
    wait_for_row(&mut conn, &id, |status| status == "ended").await;
    let ended = store.log_events(&auction.auction_id).await.unwrap().into_iter().find_map(|e| match e {
        Event::Ended(ended) => Some(ended),
        _ => None,
    });
    let ended = ended.expect("an ended event");
    assert_eq!(
        (ended.winner.as_ref().map(|w| w.as_str()), ended.final_price, ended.bid_count),
        (Some("dan"), Some(amount("12.00")), 6)
    );
    let result: (Option<Vec<u8>>, Option<Decimal>, u64) =
        sqlx::query_as("SELECT winner, final_price, bid_count FROM auction_results WHERE auction_id = ?")
            .bind(&id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(result, (Some(b"dan".to_vec()), Some(amount("12.00").to_decimal()), 6), "the result redis decided");
}

/// How many entries of `auction`'s log are delivered to a consumer of the group and not yet
/// acknowledged.
async fn pending(env: &TestEnv, auction: &AuctionId) -> u64 {
    let log = auction_server::store::Keys::new(&env.prefix).auction(auction).log;
    let mut redis = env.redis_connection().await;
    let (count, ..): (u64, redis::Value, redis::Value, redis::Value) =
        redis::cmd("XPENDING").arg(&log).arg("analytics").query_async(&mut redis).await.unwrap();
    count
}

/// An analytics instance whose ownership of a log lapsed during a slow batch, and was taken by
/// another instance, stops draining that log before its next batch: two instances never drain
/// one log at once (and its events reach MySQL in order). The other instance drains the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_loses_a_log_to_another_stops_before_its_next_batch() {
    let mut env = TestEnv::new().await;
    env.set("ANALYTICS_BATCH", "2");
    env.set("ANALYTICS_SWEEP", "200ms");
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let relay = Relay::start(&mysql_target()).await;
    let dsn = mysql_through(&env, relay.addr);
    let mut first = env.process(env!("CARGO_BIN_EXE_analytics-service"), "first", &[("MYSQL_DSN", &dsn)]).await;
    let auction = api.create_open(600, "1", 0).await;
    let id = auction.auction_id.clone();
    let store = env.store().await;
    wait_acknowledged(&store, &id).await;

    // MySQL hangs for the first instance: it reads a batch and waits on the write.
    relay.set(Link::Stalled);
    let accepted = bid_rounds(node, id.as_str(), &["ann", "ben"], 10).await;
    let deadline = Instant::now() + WAIT;
    let in_flight = loop {
        match pending(&env, &id).await {
            0 => assert!(Instant::now() < deadline, "the first instance never read a batch"),
            n => break n,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Meanwhile its ownership lapsed and the second instance took the log.
    let owner = auction_server::store::Keys::new(&env.prefix).auction(&id).log_owner;
    let mut redis = env.redis_connection().await;
    let _: () =
        redis::cmd("SET").arg(&owner).arg("second").arg("PX").arg(60_000).query_async(&mut redis).await.unwrap();
    relay.set(Link::Up);
    first.output.line_matching(|line| line.contains("another analytics instance took over this log")).await;
    let mut conn = env.mysql().await;
    assert_eq!(mysql_bids(&mut conn, id.as_str()).await, accepted[..in_flight as usize], "only its batch in flight");
    assert_eq!(store.log_backlog(&id).await.unwrap(), 10 - in_flight, "the rest left to the owner");

    let second = env.process(env!("CARGO_BIN_EXE_analytics-service"), "second", &[]).await;
    wait_acknowledged(&store, &id).await;
    assert_eq!(mysql_bids(&mut conn, id.as_str()).await, accepted);
    assert_eq!(scrape(second.addr, "analytics_events_written_total").await, 10.0 - in_flight as f64);
}
