//! `--proxy-share` against a stand-in bidding server that decides bids by the rules of proxy
//! bidding (docs/protocol.md, "Proxy bids, reserve and buy-it-now"; a flat increment of 1.00, no
//! reserve): the share of bidders that bid by max, their headroom, and beaten answers counted as
//! accepted and as `beaten_by_proxy`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use auction_proto::ws::{BidAccepted, BidPlaced, BidRejected, ServerFrame, Snapshot};
use auction_proto::{Amount, BidId, ClientFrame, RejectReason, UserId};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

mod stand_in;

const INCREMENT: i64 = 100;

/// The auction as the stand-in keeps it, and what it saw.
struct Books {
    price: i64,
    leader: String,
    max: i64,
    seq: u64,
    /// Every bid: bidder, amount and max (cents; the max is absent for a plain bid), and the
    /// reason it was rejected (none: accepted).
    bids: Vec<(String, i64, Option<i64>, Option<RejectReason>)>,
    accepted: u64,
    beaten: u64,
    /// Bids that broke the rules of the frame (a max below the amount).
    invalid: u64,
}

impl Books {
    fn new() -> Books {
        // A bid stands already, so the increment is known from the first snapshot on.
        Books {
            price: 100,
            leader: "opener".into(),
            max: 100,
            seq: 1,
            bids: vec![],
            accepted: 0,
            beaten: 0,
            invalid: 0,
        }
    }

    fn snapshot(&self) -> ServerFrame {
        ServerFrame::Snapshot(Snapshot {
            current_bid: Some(cents(self.price)),
            highest_bidder: Some(UserId::parse(&self.leader).unwrap()),
            bid_count: self.seq - 1,
            seq: self.seq,
            ..stand_in::active(cents(self.price + INCREMENT))
        })
    }

    /// Decides one bid, and keeps it in `bids`: the answer to the bidder, and the `bid_placed` for
    /// everyone when the price changed.
    fn decide(
        &mut self,
        bidder: &str,
        bid_id: BidId,
        amount: i64,
        max: Option<i64>,
    ) -> (ServerFrame, Option<ServerFrame>) {
        let decided = self.judge(bidder, bid_id, amount, max);
        let rejected = match &decided.0 {
            ServerFrame::BidRejected(r) => Some(r.reason),
            _ => None,
        };
        self.bids.push((bidder.to_owned(), amount, max, rejected));
        decided
    }

    fn judge(
        &mut self,
        bidder: &str,
        bid_id: BidId,
        amount: i64,
        max: Option<i64>,
    ) -> (ServerFrame, Option<ServerFrame>) {
        let m = max.unwrap_or(amount);
        let reject = |reason: RejectReason, books: &Books| {
            ServerFrame::BidRejected(BidRejected {
                auction_id: stand_in::auction(),
                bid_id: Some(bid_id.clone()),
                reason,
                message: reason.as_str().into(),
                min_next_bid: Some(cents(books.price + INCREMENT)),
                current_bid: Some(cents(books.price)),
            })
        };
        if m < amount {
            self.invalid += 1;
            return (reject(RejectReason::InvalidAmount, self), None);
        }
        if bidder == self.leader {
            return (reject(RejectReason::AlreadyHighestBidder, self), None);
        }
        if amount < self.price + INCREMENT {
            return (reject(RejectReason::BidTooLow, self), None);
        }
        self.seq += 1;
        self.accepted += 1;
        let leading = m > self.max;
        let placed_by = if leading {
            self.price = amount.max((self.max + INCREMENT).min(m));
            self.leader = bidder.to_owned();
            self.max = m;
            None
        } else {
            self.price = (m + INCREMENT).min(self.max);
            self.beaten += 1;
            Some(UserId::parse(bidder).unwrap())
        };
        let now = chrono::Utc::now();
        let end_time = now + chrono::Duration::hours(1);
        let answer = ServerFrame::BidAccepted(BidAccepted {
            auction_id: stand_in::auction(),
            bid_id: bid_id.clone(),
            amount: cents(if leading { self.price } else { amount }),
            seq: self.seq,
            end_time,
            leading,
            current_bid: Some(cents(self.price)),
            min_next_bid: Some(cents(self.price + INCREMENT)),
            your_max: (leading && max.is_some()).then(|| cents(m)),
            bought_now: false,
        });
        let placed = ServerFrame::BidPlaced(BidPlaced {
            auction_id: stand_in::auction(),
            bid_id,
            amount: cents(self.price),
            bidder: UserId::parse(&self.leader).unwrap(),
            seq: self.seq,
            end_time,
            bid_count: self.seq - 1,
            placed_at: now,
            min_next_bid: Some(cents(self.price + INCREMENT)),
            auto: self.price != amount || placed_by.is_some(),
            placed_by,
            reserve_met: None,
        });
        (answer, Some(placed))
    }
}

fn cents(c: i64) -> Amount {
    Amount::from_cents(c).unwrap()
}

/// Serves until the test ends: every connection gets the snapshot, its answers, and every
/// `bid_placed`.
async fn proxy_stand_in(books: Arc<Mutex<Books>>) -> String {
    let (news, _) = broadcast::channel::<String>(4096);
    stand_in::listen(move |stream| serve(stream, books.clone(), news.clone())).await
}

async fn serve(stream: tokio::net::TcpStream, books: Arc<Mutex<Books>>, news: broadcast::Sender<String>) {
    let mut user = String::new();
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
    // The handshake's own error type, as tungstenite defines it.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let query = request.uri().query().unwrap_or_default();
        user = query.split('&').find_map(|kv| kv.strip_prefix("user_id=")).unwrap_or_default().to_owned();
        Ok(response)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else { return };
    let mut heard = news.subscribe();
    let snapshot = books.lock().unwrap().snapshot();
    if ws.send(Message::text(snapshot.encode())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            message = ws.next() => {
                let Some(Ok(Message::Text(text))) = message else { return };
                let Ok(ClientFrame::PlaceBid(bid)) = ClientFrame::decode(&text) else { continue };
                let amount = bid.amount.0.unwrap().cents();
                let max = bid.max_amount.map(|m| m.0.unwrap().cents());
                // Decided and fanned out under one lock, so that every connection hears the
                // changes in order, as from one script.
                let answer = {
                    let mut books = books.lock().unwrap();
                    let (answer, placed) = books.decide(&user, bid.bid_id.unwrap(), amount, max);
                    if let Some(placed) = placed {
                        let _ = news.send(placed.encode());
                    }
                    answer
                };
                if ws.send(Message::text(answer.encode())).await.is_err() {
                    return;
                }
            }
            placed = heard.recv() => {
                let Ok(placed) = placed else { return };
                if ws.send(Message::text(placed)).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn loadgen(url: &str, extra: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_auction-loadgen"))
        .args(["--ws-url", url, "--auction-id", "stand-in", "--bidders", "10", "--rate", "200"])
        .args(["--warmup", "0s", "--duration", "2s", "--output", "json"])
        .args(extra)
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_of_bidders_bid_by_max_and_beaten_answers_count_as_accepted() {
    let books = Arc::new(Mutex::new(Books::new()));
    let url = proxy_stand_in(books.clone()).await;
    let output = loadgen(&url, &["--proxy-share", "0.3"]).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let books = books.lock().unwrap();
    let n = |k: &str| report[k].as_u64().unwrap();

    assert_eq!(books.invalid, 0, "a max below its amount was sent");
    // Three bidders of ten bid by max, every time but when they lead (or believe so: news that
    // they were outbid was still on its way); the others never.
    let mut by_bidder: BTreeMap<&str, BTreeSet<bool>> = BTreeMap::new();
    for (bidder, _, max, _) in &books.bids {
        by_bidder.entry(bidder.as_str()).or_default().insert(max.is_some());
    }
    let proxies: Vec<&str> =
        by_bidder.iter().filter(|(_, kinds)| kinds.contains(&true)).map(|(bidder, _)| *bidder).collect();
    assert_eq!(proxies.len(), 3, "{by_bidder:?}");
    // A leader bids plainly (a max would raise its own): refused as the leader's, or, when it
    // was outbid meanwhile, as too low (its amount is from before the new price).
    let believed_leading = [Some(RejectReason::AlreadyHighestBidder), Some(RejectReason::BidTooLow)];
    let by_max_then_plain: Vec<_> = books
        .bids
        .iter()
        .filter(|(bidder, _, max, rejected)| {
            proxies.contains(&bidder.as_str()) && max.is_none() && !believed_leading.contains(rejected)
        })
        .collect();
    assert!(by_max_then_plain.is_empty(), "a bidder by max bid plainly while not leading: {by_max_then_plain:?}");
    // Each max is its amount plus 1 to 5 increments as the bidder knows the increment: the step
    // between the price and the minimum it last heard of (a multiple of the real one when the two
    // came from different updates), or before any price change a twentieth of its amount.
    let steps = |h: i64, step: i64| step > 0 && h % step == 0 && (1..=5).contains(&(h / step));
    let odd: Vec<(i64, i64)> = books
        .bids
        .iter()
        .filter_map(|(_, amount, max, _)| max.map(|m| (*amount, m - amount)))
        .filter(|(amount, h)| !(1..=5).any(|k| steps(*h, k * INCREMENT)) && !steps(*h, (amount / 20).max(1)))
        .collect();
    assert!(odd.is_empty(), "maxes not 1 to 5 increments above their amounts: {odd:?}");
    let headroom: BTreeSet<i64> = books.bids.iter().filter_map(|(_, amount, max, _)| max.map(|m| m - amount)).collect();
    assert!(headroom.len() >= 3, "the headroom is random: {headroom:?}");

    // The proxy path ran, and its beaten answers are accepted bids, counted apart as well.
    assert!(books.beaten >= 5, "too few bids beaten by a max to show anything: {report}");
    assert_eq!(report["proxy_share"].as_f64(), Some(0.3), "{report}");
    assert_eq!(n("beaten_by_proxy"), books.beaten, "{report}");
    assert_eq!(n("accepted"), books.accepted, "{report}");
    assert_eq!(n("accepted") + n("rejected_total") + n("errors"), n("attempted"), "{report}");
    assert_eq!(n("errors"), 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_option_no_bid_carries_a_max() {
    let books = Arc::new(Mutex::new(Books::new()));
    let url = proxy_stand_in(books.clone()).await;
    let output = loadgen(&url, &[]).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let books = books.lock().unwrap();
    assert!(books.bids.len() >= 100, "{report}");
    assert!(books.bids.iter().all(|(_, _, max, _)| max.is_none()), "a plain run sent a max");
    assert_eq!((report["proxy_share"].as_f64(), report["beaten_by_proxy"].as_u64()), (Some(0.0), Some(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_outside_0_to_1_is_refused_before_anything_is_sent() {
    let books = Arc::new(Mutex::new(Books::new()));
    let url = proxy_stand_in(books.clone()).await;
    for share in ["1.5", "-0.1", "NaN"] {
        let output = loadgen(&url, &[&format!("--proxy-share={share}")]).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{share}: {stderr}");
        assert!(stderr.contains("--proxy-share must be a fraction from 0 to 1"), "{share}: {stderr}");
    }
    assert!(books.lock().unwrap().bids.is_empty(), "a bid was sent");
}
