//! Proxy bids, reserve prices and buy-it-now (docs/protocol.md, "Proxy bids, reserve and
//! buy-it-now"), end to end: over WebSocket and REST with the real services, down to the log
//! and MySQL.

use auction_proto::rest::CreateAuction;
use auction_proto::ws::{AuctionEnded, BidAccepted, BidPlaced, BidRejected, ServerFrame, Snapshot};
use auction_proto::{Amount, AuctionStatus, RejectReason};
use auction_server::store::{Event, Keys};
use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

/// Places a proxy bid and returns its answer.
async fn proxy(ws: &mut Ws, amount: &str, max: &str, bid_id: &str) -> ServerFrame {
    let frame = json!({"type": "place_bid", "amount": amount, "max_amount": max, "bid_id": bid_id});
    ws.send_text(&frame.to_string()).await;
    ws.outcome().await
}

fn accepted(frame: ServerFrame) -> BidAccepted {
    match frame {
        ServerFrame::BidAccepted(accepted) => accepted,
        other => panic!("expected bid_accepted, got {other:?}"),
    }
}

fn rejected(frame: ServerFrame) -> BidRejected {
    match frame {
        ServerFrame::BidRejected(rejected) => rejected,
        other => panic!("expected bid_rejected, got {other:?}"),
    }
}

async fn placed(ws: &mut Ws) -> BidPlaced {
    ws.next_matching(|f| match f {
        ServerFrame::BidPlaced(p) => Some(p.clone()),
        _ => None,
    })
    .await
}

/// Reads until the `bid_placed` of version `seq`.
async fn placed_at(ws: &mut Ws, seq: u64) -> BidPlaced {
    ws.next_matching(|f| match f {
        ServerFrame::BidPlaced(p) if p.seq == seq => Some(p.clone()),
        _ => None,
    })
    .await
}

async fn put_rules(api: &Api, band: &str) -> u16 {
    let body = json!({"increments": [{"from": "0.00", "increment": band}]});
    api.http.put(api.url("/api/v1/rules")).json(&body).send().await.unwrap().status().as_u16()
}

async fn ended(ws: &mut Ws) -> AuctionEnded {
    ws.next_matching(|f| match f {
        ServerFrame::AuctionEnded(e) => Some(e.clone()),
        _ => None,
    })
    .await
}

/// Connects as `user`, the auction's first watcher, and waits for its start (the scheduler makes
/// it version 1 right after the create), so that the versions of the bids that follow are known.
async fn watch(node: &Node, id: &str, user: &str) -> (Ws, Snapshot) {
    let (mut ws, snapshot) = node.connect(id, user).await;
    if snapshot.seq == 0 {
        ws.next_matching(|f| matches!(f, ServerFrame::AuctionStarted(_)).then_some(())).await;
    }
    (ws, snapshot)
}

fn some(text: &str) -> Option<Amount> {
    Some(amount(text))
}

/// An auction open since a second ago, closing in `seconds`, without extension.
fn lot(seconds: i64, starting_bid: &str, reserve: Option<&str>, buy_now: Option<&str>) -> CreateAuction {
    let now = Utc::now();
    CreateAuction {
        title: Some("Proxy lot".into()),
        start_time: now - chrono::Duration::seconds(1),
        end_time: now + chrono::Duration::seconds(seconds),
        starting_bid: amount(starting_bid),
        extension_window_s: Some(0),
        extension_s: None,
        reserve_price: reserve.map(amount),
        buy_now_price: buy_now.map(amount),
    }
}

/// Polls MySQL (written by a service in the background) until `query` returns `want` rows.
async fn rows_when<T>(conn: &mut sqlx::MySqlConnection, query: &str, auction: &str, want: usize) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::mysql::MySqlRow> + Send + Unpin + std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let rows: Vec<T> = sqlx::query_as(query).bind(auction).fetch_all(&mut *conn).await.unwrap();
        if rows.len() >= want {
            return rows;
        }
        assert!(tokio::time::Instant::now() < deadline, "{query}: {rows:?}, wanted {want} rows");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// An auction's result row as the services wrote it: winner, final price, whether the reserve
/// was met, bid count.
type ResultRow = (Option<String>, Option<rust_decimal::Decimal>, Option<bool>, u64);

async fn result_of(conn: &mut sqlx::MySqlConnection, id: &str) -> ResultRow {
    let query = "SELECT winner, final_price, reserve_met, bid_count FROM auction_results WHERE auction_id = ?";
    type Raw = (Option<Vec<u8>>, Option<rust_decimal::Decimal>, Option<bool>, u64);
    let rows: Vec<Raw> = rows_when(conn, query, id, 1).await;
    let (winner, price, met, count) = rows.into_iter().next().unwrap();
    (winner.map(text), price, met, count)
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

/// The example of eBay's help pages, step by step: a max answers a plain bid at once, a higher
/// max takes the lead one increment above the old one, an equal max loses to the earlier one,
/// and the leader raising the max moves nothing anyone else sees. The log keeps each max beside
/// its event, and MySQL has who bid and who led.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ebay_walk_through() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    // The analytics service starts after the log is read below: it trims what it has written.
    let auction = api.create(&lot(600, "1.00", None, None)).await;
    let id = auction.auction_id.to_string();
    let (mut wendy, _) = watch(&node, &id, "wendy").await;
    let (mut alice, _) = node.connect(&id, "alice").await;
    let (mut bob, _) = node.connect(&id, "bob").await;

    // alice: a max of 50.00, bidding the starting bid.
    let a = accepted(proxy(&mut alice, "1.00", "50.00", "a-1").await);
    assert!(a.leading && !a.bought_now, "{a:?}");
    assert_eq!((a.amount, a.seq, a.your_max), (amount("1.00"), 2, some("50.00")));
    assert_eq!((a.current_bid, a.min_next_bid), (some("1.00"), some("1.25")));
    let p = placed(&mut wendy).await;
    assert_eq!((p.bidder.as_str(), p.amount, p.seq, p.auto, p.placed_by), ("alice", amount("1.00"), 2, false, None));

    // bob's plain 20.00 is beaten at once: alice's max answers one increment above it.
    let b = accepted(bob.bid("20.00", Some("b-1")).await);
    assert!(!b.leading, "{b:?}");
    assert_eq!((b.amount, b.seq, b.your_max), (amount("20.00"), 3, None));
    assert_eq!((b.current_bid, b.min_next_bid), (some("20.50"), some("21.00")));
    let p = placed(&mut wendy).await;
    assert_eq!((p.bidder.as_str(), p.amount, p.seq, p.bid_id.as_str()), ("alice", amount("20.50"), 3, "b-1"));
    assert!(p.auto);
    assert_eq!(p.placed_by.as_ref().map(|u| u.as_str()), Some("bob"));

    // carol's higher max takes the lead at one increment above alice's 50.00.
    let (mut carol, _) = node.connect(&id, "carol").await;
    let c = accepted(proxy(&mut carol, "21.00", "60.00", "c-1").await);
    assert!(c.leading);
    assert_eq!((c.amount, c.seq, c.your_max), (amount("51.00"), 4, some("60.00")));
    assert_eq!((c.current_bid, c.min_next_bid), (some("51.00"), some("52.00")));
    let p = placed(&mut wendy).await;
    assert_eq!((p.bidder.as_str(), p.amount, p.seq, p.auto, p.placed_by), ("carol", amount("51.00"), 4, true, None));

    // dave's equal max loses to carol's earlier one, and the price goes to their max.
    let (mut dave, _) = node.connect(&id, "dave").await;
    let d = accepted(proxy(&mut dave, "52.00", "60.00", "d-1").await);
    assert!(!d.leading);
    assert_eq!((d.amount, d.current_bid, d.your_max), (amount("52.00"), some("60.00"), None));
    let p = placed(&mut wendy).await;
    assert_eq!((p.bidder.as_str(), p.amount, p.seq), ("carol", amount("60.00"), 5));
    assert_eq!(p.placed_by.as_ref().map(|u| u.as_str()), Some("dave"));

    // carol raises her max: the price, the version and what anyone else sees stay as they were.
    let r = accepted(proxy(&mut carol, "61.00", "80.00", "c-2").await);
    assert!(r.leading);
    assert_eq!((r.amount, r.seq, r.your_max, r.current_bid), (amount("60.00"), 5, some("80.00"), some("60.00")));
    // A plain bid of the leader's, or a max not above hers, is what it always was.
    let plain = rejected(carol.bid("61.00", Some("c-3")).await);
    assert_eq!(plain.reason, RejectReason::AlreadyHighestBidder);
    let lower = rejected(proxy(&mut carol, "61.00", "75.00", "c-4").await);
    assert_eq!(lower.reason, RejectReason::AlreadyHighestBidder);

    // erin bids 70.00 and carol's raised max answers at 71.00; the next frame the watcher gets
    // is that change: the raise sent nothing.
    let (mut erin, _) = node.connect(&id, "erin").await;
    let e = accepted(erin.bid("70.00", Some("e-1")).await);
    assert_eq!((e.leading, e.current_bid), (false, some("71.00")));
    match wendy.next().await {
        ServerFrame::BidPlaced(p) => {
            assert_eq!((p.bidder.as_str(), p.amount, p.seq), ("carol", amount("71.00"), 6));
        }
        other => panic!("the watcher got {other:?} before erin's bid"),
    }
    // The leader's own snapshot shows her max; nobody else's shows one.
    assert_eq!(carol.sync().await.your_max, some("80.00"));
    assert_eq!(wendy.sync().await.your_max, None);
    assert_eq!(erin.sync().await.your_max, None);

    // The log: plain changes stay version 2, what a max did is version 3, and each max is in a
    // field of its own beside its event.
    let entries = env.store().await.log_fields(&auction.auction_id).await.unwrap();
    let summary: Vec<(String, Option<String>)> = entries
        .iter()
        .map(|f| {
            let event: serde_json::Value = serde_json::from_str(&f["event"]).unwrap();
            assert!(!f["event"].contains("max\":"), "a max in an event: {}", f["event"]);
            let max = f.get("proxy").map(|p| serde_json::from_str::<serde_json::Value>(p).unwrap()["max"].to_string());
            (format!("{}:v{}:{}", event["type"].as_str().unwrap(), f["v"], event["bid_id"].as_str().unwrap_or("")), max)
        })
        .collect();
    let expected = [
        ("created:v2:", None),
        ("started:v2:", None),
        ("bid:v3:a-1", Some("\"5000\"")),
        ("bid:v3:b-1", None),
        ("bid:v3:c-1", Some("\"6000\"")),
        ("bid:v3:d-1", Some("\"6000\"")),
        ("max_raised:v3:c-2", Some("\"8000\"")),
        ("bid:v3:e-1", None),
    ];
    let expected: Vec<(String, Option<String>)> =
        expected.iter().map(|(e, m)| ((*e).to_owned(), m.map(str::to_owned))).collect();
    assert_eq!(summary, expected);

    // MySQL: one row per price change, naming who led and whose bid it was; every max apart.
    env.analytics_service().await;
    let mut conn = env.mysql().await;
    type BidRow = (u64, Vec<u8>, Vec<u8>, Vec<u8>, rust_decimal::Decimal, bool);
    let rows: Vec<BidRow> = rows_when(
        &mut conn,
        "SELECT seq, bid_id, bidder, placed_by, amount, auto FROM bids WHERE auction_id = ? ORDER BY seq",
        &id,
        5,
    )
    .await;
    let rows: Vec<(u64, String, String, String, String, bool)> = rows
        .into_iter()
        .map(|(seq, bid_id, bidder, by, price, auto)| {
            (seq, text(bid_id), text(bidder), text(by), price.to_string(), auto)
        })
        .collect();
    let row = |seq: u64, bid: &str, bidder: &str, by: &str, price: &str, auto: bool| {
        (seq, bid.to_owned(), bidder.to_owned(), by.to_owned(), price.to_owned(), auto)
    };
    assert_eq!(
        rows,
        [
            row(2, "a-1", "alice", "alice", "1.00", false),
            row(3, "b-1", "alice", "bob", "20.50", true),
            row(4, "c-1", "carol", "carol", "51.00", true),
            row(5, "d-1", "carol", "dave", "60.00", true),
            row(6, "e-1", "carol", "erin", "71.00", true),
        ]
    );
    // The REST bids list says the same: `auto` when a max set the price, `placed_by` when the
    // bid was someone else's than the leader's.
    let (status, page) = api.get(&format!("/api/v1/auctions/{id}/bids")).await;
    assert_eq!(status, 200, "{page}");
    let listed: Vec<(u64, &str, &str, bool, Option<&str>)> = page["bids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let auto = b.get("auto").map(|a| a.as_bool().unwrap());
            assert_ne!(auto, Some(false), "auto is left out when false: {b}");
            (
                b["seq"].as_u64().unwrap(),
                b["bid_id"].as_str().unwrap(),
                b["bidder"].as_str().unwrap(),
                auto.unwrap_or(false),
                b.get("placed_by").map(|p| p.as_str().unwrap()),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (2, "a-1", "alice", false, None),
            (3, "b-1", "alice", true, Some("bob")),
            (4, "c-1", "carol", true, None),
            (5, "d-1", "carol", true, Some("dave")),
            (6, "e-1", "carol", true, Some("erin")),
        ]
    );
    let maxes: Vec<(Vec<u8>, Vec<u8>, rust_decimal::Decimal, rust_decimal::Decimal)> = rows_when(
        &mut conn,
        "SELECT bidder, bid_id, amount, max_amount FROM proxy_bids WHERE auction_id = ? ORDER BY placed_at",
        &id,
        4,
    )
    .await;
    let maxes: Vec<String> = maxes
        .into_iter()
        .map(|(bidder, bid_id, amount, max)| format!("{} {} {amount} {max}", text(bidder), text(bid_id)))
        .collect();
    assert_eq!(
        maxes,
        ["alice a-1 1.00 50.00", "carol c-1 21.00 60.00", "dave d-1 52.00 60.00", "carol c-2 61.00 80.00"]
    );
}

/// A reserve the price never reached: the auction ends with no winner, on the wire, in `GET`
/// and in MySQL, and nobody but the operator learns the reserve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserve_not_met_ends_the_auction_without_a_winner() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create(&lot(2, "1.00", Some("100.00"), None)).await;
    assert_eq!((auction.reserve_price, auction.reserve_met), (some("100.00"), Some(false)), "the create's answer");
    let id = auction.auction_id.to_string();
    let (mut wendy, snapshot) = node.connect(&id, "wendy").await;
    assert_eq!((snapshot.reserve_met, snapshot.buy_now_price), (Some(false), None));
    let (mut alice, _) = node.connect(&id, "alice").await;
    let a = accepted(alice.bid("50.00", Some("a-1")).await);
    assert!(a.leading && a.current_bid.is_none(), "a plain leading bid is answered as before: {a:?}");
    assert_eq!(placed(&mut wendy).await.reserve_met, Some(false));
    assert_eq!(api.auction(&id).await.reserve_price, None, "reads without the operator token show no reserve");

    let end = ended(&mut wendy).await;
    assert_eq!((end.winner, end.final_price, end.reserve_met, end.bought_now), (None, None, Some(false), false));
    let got = api.auction(&id).await;
    assert_eq!(got.status, AuctionStatus::Ended);
    assert_eq!((got.winner, got.final_price, got.reserve_met), (None, None, Some(false)));
    assert_eq!(got.current_bid, some("50.00"), "the price stands; it just did not sell");

    // The scheduler's own copy: the result names nobody, and says why.
    let mut conn = env.mysql().await;
    let result = result_of(&mut conn, &id).await;
    assert_eq!(result, (None, None, Some(false), 1));
    let settings: (Option<rust_decimal::Decimal>, Option<rust_decimal::Decimal>) =
        sqlx::query_as("SELECT reserve_price, buy_now_price FROM auctions WHERE auction_id = ?")
            .bind(&id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(settings, (Some(amount("100.00").to_decimal()), None));
}

/// A max at or above the reserve puts the price at the reserve at once, from a challenger and
/// from the leader raising their own max; at the close the reserve is met and the leader wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_max_at_the_reserve_takes_the_price_to_it() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create(&lot(3, "1.00", Some("100.00"), None)).await;
    let id = auction.auction_id.to_string();
    let raised = api.create(&lot(600, "1.00", Some("100.00"), None)).await;
    let (mut wendy, _) = watch(&node, &id, "wendy").await;
    let (mut alice, _) = node.connect(&id, "alice").await;
    let (mut bob, _) = node.connect(&id, "bob").await;
    accepted(alice.bid("10.00", Some("a-1")).await);
    assert_eq!(placed(&mut wendy).await.reserve_met, Some(false));
    let b = accepted(proxy(&mut bob, "11.00", "150.00", "b-1").await);
    assert!(b.leading);
    assert_eq!((b.amount, b.current_bid, b.your_max), (amount("100.00"), some("100.00"), some("150.00")));
    let p = placed(&mut wendy).await;
    assert_eq!((p.bidder.as_str(), p.amount, p.auto, p.reserve_met), ("bob", amount("100.00"), true, Some(true)));
    assert_eq!(api.auction(&id).await.reserve_met, Some(true));

    // The leader's raise past the reserve moves the price to it: a change everyone sees.
    let raised_id = raised.auction_id.to_string();
    let (mut watcher, _) = watch(&node, &raised_id, "wendy").await;
    let (mut carol, _) = node.connect(&raised_id, "carol").await;
    accepted(proxy(&mut carol, "1.00", "50.00", "c-1").await);
    let c = accepted(proxy(&mut carol, "1.00", "120.00", "c-2").await);
    assert_eq!((c.leading, c.amount, c.seq, c.your_max), (true, amount("100.00"), 3, some("120.00")));
    placed(&mut watcher).await;
    let p = placed(&mut watcher).await;
    assert_eq!((p.bidder.as_str(), p.amount, p.seq, p.auto), ("carol", amount("100.00"), 3, true));
    assert_eq!((p.placed_by, p.reserve_met), (None, Some(true)));

    let end = ended(&mut wendy).await;
    assert_eq!(end.winner.as_ref().map(|w| w.as_str()), Some("bob"));
    assert_eq!((end.final_price, end.reserve_met), (some("100.00"), Some(true)));
    let mut conn = env.mysql().await;
    let result = result_of(&mut conn, &id).await;
    assert_eq!(result, (Some("bob".to_owned()), Some(amount("100.00").to_decimal()), Some(true), 2));
}

/// Buy-it-now ends the auction at once: watchers on both nodes see the bid and then the end; a
/// later bid is refused as ended; the scheduler has nothing left to do for it; GET and MySQL
/// have the buyer as the winner. With a reserve, buy-it-now stays available while the price is
/// below it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buy_it_now_ends_the_auction_at_once_on_every_node() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let (one, two) = (env.bidding_service().await, env.bidding_service().await);
    env.analytics_service().await;
    let auction = api.create(&lot(600, "10.00", Some("300.00"), Some("500.00"))).await;
    assert_eq!(auction.buy_now_price, some("500.00"));
    let id = auction.auction_id.to_string();
    let (mut near, snapshot) = watch(&one, &id, "wendy").await;
    assert_eq!(snapshot.buy_now_price, some("500.00"));
    let (mut far, _) = two.connect(&id, "walt").await;
    let (mut bob, _) = two.connect(&id, "bob").await;
    accepted(bob.bid("20.00", Some("b-1")).await);
    assert_eq!(far.sync().await.buy_now_price, some("500.00"), "below the reserve, buy-it-now stays");
    assert_eq!(api.auction(&id).await.buy_now_price, some("500.00"));

    let (mut alice, _) = one.connect(&id, "alice").await;
    let bought = accepted(alice.bid("500.00", Some("buy-1")).await);
    assert!(bought.leading && bought.bought_now, "{bought:?}");
    assert_eq!(
        (bought.amount, bought.seq, bought.current_bid, bought.min_next_bid),
        (amount("500.00"), 3, some("500.00"), None)
    );
    for watcher in [&mut near, &mut far] {
        let p = placed_at(watcher, 3).await;
        assert_eq!((p.bidder.as_str(), p.amount, p.seq, p.min_next_bid), ("alice", amount("500.00"), 3, None));
        match watcher.next().await {
            ServerFrame::AuctionEnded(e) => {
                assert_eq!(e.winner.as_ref().map(|w| w.as_str()), Some("alice"));
                assert_eq!((e.final_price, e.seq, e.bought_now, e.reserve_met), (some("500.00"), 4, true, Some(true)));
            }
            other => panic!("expected auction_ended right after the buy, got {other:?}"),
        }
    }
    assert_eq!(accepted(alice.bid("500.00", Some("buy-1")).await), bought, "a retry of the buy");
    let late = rejected(bob.bid("600.00", Some("b-2")).await);
    assert_eq!(late.reason, RejectReason::AuctionEnded);

    let keys = Keys::new(&env.prefix);
    let mut redis = env.redis_connection().await;
    let score = |key: String| redis::cmd("ZSCORE").arg(key).arg(&id).clone();
    let deadline: Option<f64> = score(keys.deadlines()).query_async(&mut redis).await.unwrap();
    assert_eq!(deadline, None, "the deadline entry of a bought auction");
    let ended_index: Option<f64> =
        score(keys.status_index(AuctionStatus::Ended)).query_async(&mut redis).await.unwrap();
    let active_index: Option<f64> =
        score(keys.status_index(AuctionStatus::Active)).query_async(&mut redis).await.unwrap();
    assert!(
        ended_index.is_some() && active_index.is_none(),
        "status indexes: ended {ended_index:?}, active {active_index:?}"
    );

    let got = api.auction(&id).await;
    assert_eq!(got.status, AuctionStatus::Ended);
    assert_eq!(got.winner.as_ref().map(|w| w.as_str()), Some("alice"));
    assert_eq!((got.final_price, got.buy_now_price, got.reserve_met), (some("500.00"), None, Some(true)));
    let mut conn = env.mysql().await;
    let result = result_of(&mut conn, &id).await;
    assert_eq!(result, (Some("alice".to_owned()), Some(amount("500.00").to_decimal()), Some(true), 2));
}

/// A WebSocket client that keeps the exact text of every frame it receives: what a search for a
/// secret must read (a parsed frame would drop a field it does not know).
struct Raw {
    stream: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    texts: Vec<String>,
    /// The highest version of a `bid_placed` seen.
    placed: u64,
}

impl Raw {
    async fn connect(node: Node, auction: &str, user: &str) -> Raw {
        let (stream, _) = tokio_tungstenite::connect_async(node.ws_url(auction, user)).await.expect("ws connect");
        let mut raw = Raw { stream, texts: Vec::new(), placed: 0 };
        let ServerFrame::Snapshot(first) = raw.next().await else { panic!("no snapshot first") };
        // Versions known from here on: the start is in.
        if first.seq == 0 {
            while !matches!(raw.next().await, ServerFrame::AuctionStarted(_)) {}
        }
        raw
    }

    async fn next(&mut self) -> ServerFrame {
        loop {
            let message = tokio::time::timeout(WAIT, self.stream.next()).await.expect("no frame in time");
            match message {
                Some(Ok(Message::Text(text))) => {
                    self.texts.push(text.to_string());
                    let frame: ServerFrame =
                        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad frame {text}: {e}"));
                    // A snapshot in place of changes (a resync) stands for the versions it covers.
                    match &frame {
                        ServerFrame::BidPlaced(p) => self.placed = self.placed.max(p.seq),
                        ServerFrame::Snapshot(snapshot) => self.placed = self.placed.max(snapshot.seq),
                        _ => {}
                    }
                    return frame;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    async fn send(&mut self, frame: serde_json::Value) -> ServerFrame {
        self.stream.send(Message::text(frame.to_string())).await.unwrap();
        loop {
            let frame = self.next().await;
            if matches!(frame, ServerFrame::BidAccepted(_) | ServerFrame::BidRejected(_)) {
                return frame;
            }
        }
    }

    async fn bid(&mut self, amount: &str, max: Option<&str>, bid_id: &str) -> BidAccepted {
        let mut frame = json!({"type": "place_bid", "amount": amount, "bid_id": bid_id});
        if let Some(max) = max {
            frame["max_amount"] = json!(max);
        }
        accepted(self.send(frame).await)
    }

    /// Reads until it has seen the `bid_placed` of version `seq`.
    async fn until_seq(&mut self, seq: u64) {
        while self.placed < seq {
            self.next().await;
        }
    }

    async fn sync(&mut self) -> Snapshot {
        self.stream.send(Message::text(r#"{"type":"sync"}"#)).await.unwrap();
        loop {
            if let ServerFrame::Snapshot(s) = self.next().await {
                return s;
            }
        }
    }

    fn all(&self) -> String {
        self.texts.join("\n")
    }
}

/// Whether `haystack` holds `number` as a number of its own (no digit or point right before or
/// after it), so that a max's cents are not found inside a longer number such as a timestamp.
fn holds_number(haystack: &str, number: &str) -> bool {
    let part_of_number = |c: char| c.is_ascii_digit() || c == '.';
    haystack.match_indices(number).any(|(at, _)| {
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + number.len()..].chars().next();
        !before.is_some_and(part_of_number) && !after.is_some_and(part_of_number)
    })
}

/// Every form a secret amount could take: as on the wire, and in cents.
fn forms(secret: &str) -> [String; 2] {
    [secret.to_owned(), amount(secret).cents().to_string()]
}

fn assert_hides(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        for form in forms(secret) {
            assert!(!holds_number(text, &form), "{what} shows the secret {form}:\n{text}");
        }
    }
}

/// No max reaches anyone but its owner, and no reserve anyone but the operator: not the other
/// bidders' frames, not a pure watcher's, not a REST read without the operator token, not a log
/// line any service writes at info level. The amounts are distinctive, so that the search means
/// something; the owners are shown to see their own, so that it could find them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_max_and_no_reserve_reach_anyone_else() {
    const ADMIN: &str = "operator-token-for-proxies";
    let mut env = TestEnv::new().await;
    env.set("ADMIN_TOKEN", ADMIN);
    let auction_service = env.auction_process("secrets-auction").await;
    let bidding = env.process(env!("CARGO_BIN_EXE_bidding-service"), "secrets-bidding", &[]).await;
    let analytics = env.process(env!("CARGO_BIN_EXE_analytics-service"), "secrets-analytics", &[]).await;
    let api = auction_service.api.clone();
    let node = Node { addr: bidding.addr };
    // Above every max: a max at or above the reserve would put the price at it for all to see.
    let body = serde_json::to_value(lot(600, "10.00", Some("9999.99"), None)).unwrap();
    let response = api.http.post(api.url("/api/v1/auctions")).bearer_auth(ADMIN).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let created: serde_json::Value = response.json().await.unwrap();
    assert_eq!(created["reserve_price"], "9999.99", "the create's answer is the operator's");
    let id = created["auction_id"].as_str().unwrap().to_owned();
    // The scheduler of the freshly started process moves the auction to started: wait for that
    // before the clients join, so that every frame they read is of a known version.
    let deadline = std::time::Instant::now() + 3 * WAIT;
    loop {
        let (_, auction) = api.get(&format!("/api/v1/auctions/{id}")).await;
        if auction["seq"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the auction was never started: {auction}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let (alice_maxes, carol_maxes, reserve) = (["4321.09", "6543.21", "7654.32"], ["5432.10"], "9999.99");
    let mut wendy = Raw::connect(node, &id, "wendy").await;
    let mut alice = Raw::connect(node, &id, "alice").await;
    let mut bob = Raw::connect(node, &id, "bob").await;
    let mut carol = Raw::connect(node, &id, "carol").await;
    assert_eq!(alice.bid("10.00", Some("4321.09"), "a-1").await.your_max, some("4321.09"));
    assert_eq!(bob.bid("100.00", None, "b-1").await.current_bid, some("102.50"));
    assert_eq!(carol.bid("200.00", Some("5432.10"), "c-1").await.amount, amount("4371.09"));
    assert_eq!(alice.bid("4500.00", Some("6543.21"), "a-2").await.amount, amount("5532.10"));
    let raise = alice.bid("4500.00", Some("7654.32"), "a-3").await;
    assert_eq!((raise.seq, raise.your_max), (5, some("7654.32")));
    let beaten = bob.bid("5700.00", None, "b-2").await;
    assert_eq!((beaten.leading, beaten.current_bid), (false, some("5800.00")));
    assert_eq!(alice.sync().await.your_max, some("7654.32"), "the leader's snapshot");
    for raw in [&mut wendy, &mut alice, &mut bob, &mut carol] {
        raw.until_seq(6).await;
        raw.sync().await;
    }
    assert!(holds_number(&alice.all(), "7654.32"), "the search would not find a max");

    let mut everyone_elses = alice_maxes.to_vec();
    everyone_elses.extend(carol_maxes);
    everyone_elses.push(reserve);
    assert_hides("the watcher's frames", &wendy.all(), &everyone_elses);
    assert_hides("the plain bidder's frames", &bob.all(), &everyone_elses);
    assert_hides("alice's frames", &alice.all(), &[carol_maxes.as_slice(), &[reserve]].concat());
    assert_hides("carol's frames", &carol.all(), &[alice_maxes.as_slice(), &[reserve]].concat());

    // REST without the operator token, once MySQL has every bid.
    let deadline = tokio::time::Instant::now() + WAIT;
    let bids = loop {
        let (status, bids) = api.get(&format!("/api/v1/auctions/{id}/bids")).await;
        assert_eq!(status, 200, "{bids}");
        if bids["bids"].as_array().is_some_and(|b| b.len() == 5) {
            break bids;
        }
        assert!(tokio::time::Instant::now() < deadline, "the bids never reached mysql: {bids}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let (_, one) = api.get(&format!("/api/v1/auctions/{id}")).await;
    let (_, list) = api.get("/api/v1/auctions").await;
    assert_eq!(one["reserve_met"], false);
    assert!(one.get("reserve_price").is_none(), "{one}");
    let wrong = api.http.get(api.url(&format!("/api/v1/auctions/{id}"))).bearer_auth("not-the-token").send().await;
    let wrong: serde_json::Value = wrong.unwrap().json().await.unwrap();
    for (what, body) in [("GET", &one), ("the list", &list), ("the bids", &bids), ("GET with a wrong token", &wrong)] {
        assert_hides(what, &body.to_string(), &everyone_elses);
    }
    let operator = api.http.get(api.url(&format!("/api/v1/auctions/{id}"))).bearer_auth(ADMIN).send().await;
    let operator: serde_json::Value = operator.unwrap().json().await.unwrap();
    assert_eq!(operator["reserve_price"], "9999.99", "the operator's GET");
    assert_hides("the operator's GET", &operator.to_string(), &everyone_elses[..4]);

    let mut lines = auction_service.stop().await;
    lines.extend(bidding.stop().await);
    lines.extend(analytics.stop().await);
    assert!(lines.iter().any(|line| line.contains(&id)), "the logs do not even name the auction");
    assert_hides("the services' logs", &lines.join("\n"), &everyone_elses);
}

/// Snapshots a node pushes to every watcher (here after a rules change) carry a max only to its
/// owner's connection, and only while it leads: a connection forgets its max once it is outbid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_snapshots_carry_a_max_to_its_owner_alone() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let id = api.create(&lot(600, "1.00", None, None)).await.auction_id.to_string();
    let (mut alice, _) = node.connect(&id, "alice").await;
    let (mut bob, _) = node.connect(&id, "bob").await;
    let (mut wendy, _) = node.connect(&id, "wendy").await;
    accepted(proxy(&mut alice, "1.00", "50.00", "a-1").await);
    let pushed = async |ws: &mut Ws| {
        ws.next_matching(|f| match f {
            ServerFrame::Snapshot(s) => Some(s.clone()),
            _ => None,
        })
        .await
    };
    assert_eq!(put_rules(&api, "0.10").await, 200);
    assert_eq!(pushed(&mut alice).await.your_max, some("50.00"));
    assert_eq!(pushed(&mut bob).await.your_max, None);
    assert_eq!(pushed(&mut wendy).await.your_max, None);

    let b = accepted(proxy(&mut bob, "2.00", "70.00", "b-1").await);
    assert_eq!((b.leading, b.amount), (true, amount("50.10")));
    placed(&mut alice).await;
    assert_eq!(put_rules(&api, "0.20").await, 200);
    let alices = pushed(&mut alice).await;
    assert_eq!((alices.highest_bidder.as_ref().map(|u| u.as_str()), alices.your_max), (Some("bob"), None));
    assert_eq!(pushed(&mut bob).await.your_max, some("70.00"));
    assert_eq!(pushed(&mut wendy).await.your_max, None);
}

/// Bad proxy input is refused with `invalid_amount` naming `max_amount`, and changes nothing (and
/// is not stored: the same bid id then goes through); bad seller prices are refused with a 400
/// naming the field, and create nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_maxes_and_seller_prices_change_nothing() {
    let mut env = TestEnv::new().await;
    env.set("MAX_BID", "1000.00");
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let id = api.create(&lot(600, "10.00", None, None)).await.auction_id.to_string();
    let (mut alice, _) = node.connect(&id, "alice").await;
    accepted(proxy(&mut alice, "10.00", "40.00", "a-1").await);
    let (mut bob, _) = node.connect(&id, "bob").await;
    let before = env.dump_auction(&id).await;
    for (max, says) in [
        (json!("15.00"), "below amount"),
        (json!("1000.01"), "above the maximum"),
        (json!("abc"), "not a decimal"),
        (json!("12.001"), "more than 2 decimal places"),
        (json!("-5"), "greater than zero"),
        (json!("0"), "greater than zero"),
        (json!(12.005), "more than 2 decimal places"),
    ] {
        let frame = json!({"type": "place_bid", "amount": "20.00", "max_amount": max, "bid_id": "b-1"});
        bob.send_text(&frame.to_string()).await;
        let refused = rejected(bob.outcome().await);
        assert_eq!(refused.reason, RejectReason::InvalidAmount, "{max}");
        assert!(refused.message.contains("max_amount") && refused.message.contains(says), "{max}: {}", refused.message);
        assert_eq!(env.dump_auction(&id).await, before, "max {max} changed the auction");
    }
    let fine = accepted(proxy(&mut bob, "20.00", "45.00", "b-1").await);
    assert_eq!((fine.leading, fine.amount), (true, amount("41.00")), "the refused bid id was not kept");

    let listed = async || {
        let (status, list) = api.get("/api/v1/auctions").await;
        assert_eq!(status, 200, "{list}");
        let ids = list["auctions"].as_array().unwrap().iter().map(|a| a["auction_id"].to_string());
        ids.collect::<Vec<String>>()
    };
    let before = listed().await;
    for (reserve, buy_now, field) in [
        (json!("10.00"), serde_json::Value::Null, "reserve_price"),
        (json!("1000.01"), serde_json::Value::Null, "reserve_price"),
        (json!("a lot"), serde_json::Value::Null, "reserve_price"),
        (serde_json::Value::Null, json!("9.99"), "buy_now_price"),
        (serde_json::Value::Null, json!("0"), "buy_now_price"),
        (json!("100.00"), json!("99.99"), "buy_now_price"),
        (serde_json::Value::Null, json!("1000.01"), "buy_now_price"),
    ] {
        let mut body = serde_json::to_value(lot(600, "10.00", None, None)).unwrap();
        body["reserve_price"] = reserve;
        body["buy_now_price"] = buy_now;
        let (status, error) = api.post_auction(&body).await;
        assert_eq!((status, error["error"]["field"].as_str()), (400, Some(field)), "{body}: {error}");
        assert!(error["error"]["message"].as_str().unwrap().starts_with(field), "{error}");
    }
    assert_eq!(listed().await, before, "a refused create made an auction");
    let ok = api.create(&lot(600, "10.00", Some("100.00"), Some("100.00"))).await;
    assert_eq!((ok.reserve_price, ok.buy_now_price), (some("100.00"), some("100.00")), "a buy-it-now at the reserve");
}

/// A retried bid (same bid id) gets its first answer again, whatever it carries now: a proxy bid,
/// a bid a max beat, a leader's raise (logged once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_proxy_bid_gets_the_identical_answer() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create(&lot(600, "1.00", None, None)).await;
    let id = auction.auction_id.to_string();
    let (mut alice, _) = watch(&node, &id, "alice").await;
    let (mut bob, _) = node.connect(&id, "bob").await;
    let first = accepted(proxy(&mut alice, "5.00", "30.00", "p-1").await);
    let beaten = accepted(bob.bid("10.00", Some("q-1")).await);
    let raise = accepted(proxy(&mut alice, "5.00", "90.00", "p-2").await);
    assert_eq!(accepted(proxy(&mut alice, "7.00", "99.00", "p-1").await), first);
    assert_eq!(accepted(bob.bid("12.00", Some("q-1")).await), beaten);
    assert_eq!(accepted(proxy(&mut alice, "5.00", "95.00", "p-2").await), raise);
    assert_eq!(accepted(alice.bid("50.00", Some("p-2")).await), raise, "a retry without the max");
    let events = env.store().await.log_events(&auction.auction_id).await.unwrap();
    let raises = events.iter().filter(|e| matches!(e, Event::MaxRaised(_))).count();
    assert_eq!((raises, events.len()), (1, 5), "{events:?}");
    let still = api.auction(&id).await;
    assert_eq!((still.seq, still.current_bid), (3, some("10.50")), "the retries changed nothing");
}

/// Once a finished auction's Redis keys have expired, its reads come from MySQL and say the
/// same: the reserve met or not (and then no winner), no buy-it-now, and the reserve itself only
/// to the operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_retention_mysql_tells_the_reserve_as_redis_did() {
    const ADMIN: &str = "operator-token-for-retention";
    let mut env = TestEnv::new().await;
    env.set("ADMIN_TOKEN", ADMIN);
    env.set("ENDED_RETENTION", "1s");
    env.set("ANALYTICS_SWEEP", "200ms");
    let dsn = format!("{}/{}", mysql_base(), env.database);
    env.set("MYSQL_READ_DSN", &dsn);
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    env.analytics_service().await;
    let create = async |body: CreateAuction| {
        let response = api.http.post(api.url("/api/v1/auctions")).bearer_auth(ADMIN).json(&body).send().await;
        let json: serde_json::Value = response.unwrap().json().await.unwrap();
        json["auction_id"].as_str().unwrap().to_owned()
    };
    let unsold = create(lot(2, "1.00", Some("100.00"), Some("200.00"))).await;
    let sold = create(lot(2, "1.00", Some("100.00"), None)).await;
    let (mut alice, _) = node.connect(&unsold, "alice").await;
    accepted(alice.bid("50.00", Some("a-1")).await);
    let (mut bob, _) = node.connect(&sold, "bob").await;
    accepted(proxy(&mut bob, "2.00", "150.00", "b-1").await);
    drop((alice, bob));

    let keys = Keys::new(&env.prefix);
    let mut redis = env.redis_connection().await;
    let deadline = tokio::time::Instant::now() + WAIT + WAIT;
    for id in [&unsold, &sold] {
        let hash = keys.auction(&auction_proto::AuctionId::parse(id).unwrap()).state;
        while redis::cmd("EXISTS").arg(&hash).query_async::<bool>(&mut redis).await.unwrap() {
            assert!(tokio::time::Instant::now() < deadline, "the keys of {id} never expired");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    let (unsold_now, sold_now) = (api.auction(&unsold).await, api.auction(&sold).await);
    assert_eq!((unsold_now.status, unsold_now.current_bid), (AuctionStatus::Ended, some("50.00")), "read from mysql");
    assert_eq!((unsold_now.winner, unsold_now.final_price, unsold_now.reserve_met), (None, None, Some(false)));
    assert_eq!((unsold_now.buy_now_price, unsold_now.reserve_price), (None, None));
    assert_eq!(sold_now.winner.as_ref().map(|w| w.as_str()), Some("bob"));
    assert_eq!(
        (sold_now.final_price, sold_now.reserve_met, sold_now.reserve_price),
        (some("100.00"), Some(true), None)
    );
    let operator = api.http.get(api.url(&format!("/api/v1/auctions/{unsold}"))).bearer_auth(ADMIN).send().await;
    let operator: serde_json::Value = operator.unwrap().json().await.unwrap();
    assert_eq!((operator["reserve_price"].as_str(), operator["reserve_met"].as_bool()), (Some("100.00"), Some(false)));
    let (_, list) = api.get("/api/v1/auctions?status=ended").await;
    let listed = list["auctions"].as_array().unwrap().iter().find(|a| a["auction_id"] == unsold.as_str()).unwrap();
    assert_eq!((listed["reserve_met"].as_bool(), listed.get("reserve_price")), (Some(false), None), "{listed}");
    let (_, snapshot) = node.connect(&sold, "bob").await;
    assert_eq!((snapshot.reserve_met, snapshot.your_max, snapshot.buy_now_price), (Some(true), None, None));
}

/// The reserve and the buy-it-now price are part of what an `Idempotency-Key` stands for: the
/// same request again is the same auction, another reserve or buy-it-now price is a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seller_prices_are_part_of_an_idempotent_create() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let first = lot(600, "1.00", Some("100.00"), Some("150.00"));
    let post = async |body: &CreateAuction| {
        let response =
            api.http.post(api.url("/api/v1/auctions")).header("Idempotency-Key", "seller-1").json(body).send().await;
        let response = response.unwrap();
        let replayed = response.headers().get("idempotent-replayed").is_some();
        (response.status().as_u16(), replayed, response.json::<serde_json::Value>().await.unwrap())
    };
    let (status, replayed, created) = post(&first).await;
    assert_eq!((status, replayed), (201, false), "{created}");
    let (status, replayed, again) = post(&first).await;
    assert_eq!((status, replayed, &again["auction_id"]), (201, true, &created["auction_id"]), "{again}");
    assert_eq!(again["reserve_price"], "100.00", "a replay answers as the create did");
    for other in [
        CreateAuction { reserve_price: some("120.00"), ..first.clone() },
        CreateAuction { buy_now_price: None, ..first.clone() },
        CreateAuction { reserve_price: None, buy_now_price: None, ..first.clone() },
    ] {
        let (status, _, refused) = post(&other).await;
        assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("conflict")), "{refused}");
    }
}
