//! Must-show 2 of the core issue: 50 bidders on two nodes for several seconds, then every rule of
//! the bid script checked from the outside, down to what MySQL ends up holding; and a watcher that
//! reads nothing holds up no one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use auction_proto::rest::{Auction, CreateAuction};
use auction_proto::ws::{BidPlaced, BidRejected, ServerFrame};
use auction_proto::{Amount, BidRules, RejectReason};
use chrono::{DateTime, Utc};
use rand::Rng;

use crate::helpers::*;

const BIDDERS: usize = 50;
const BIDDING_FOR: Duration = Duration::from_secs(4);
/// The auction's extension window and extension, in seconds: every bid in the last second moves
/// the close to a second after it.
const EXTENSION_S: u32 = 1;

/// One bid as its bidder saw it: what it sent, what it was told, and when, by this process's
/// clocks: the monotonic one orders what different bidders saw; the wall clock is the machine's,
/// which Redis (on this machine) reads for `TIME` too.
#[derive(Debug, Clone)]
struct Attempt {
    bidder: String,
    bid_id: String,
    amount: Amount,
    outcome: ServerFrame,
    sent: Instant,
    sent_wall: DateTime<Utc>,
    answered: Instant,
    answered_wall: DateTime<Utc>,
}

impl Attempt {
    fn rejected(&self) -> Option<&BidRejected> {
        match &self.outcome {
            ServerFrame::BidRejected(r) => Some(r),
            _ => None,
        }
    }
}

/// Places one bid, noting when by both clocks.
async fn place(ws: &mut Ws, name: &str, bid_id: String, amount: Amount) -> Attempt {
    let (sent, sent_wall) = (Instant::now(), Utc::now());
    let outcome = ws.bid(&amount.to_string(), Some(&bid_id)).await;
    let (answered, answered_wall) = (Instant::now(), Utc::now());
    Attempt { bidder: name.to_owned(), bid_id, amount, outcome, sent, sent_wall, answered, answered_wall }
}

/// Ten of the bidders each bid once more, at a price that would do, a little after the close in
/// force (by Redis time, which the snapshot reports): with no scheduler to mark the auction
/// ended, Redis time alone must refuse them.
async fn snipe(watchers: &mut [(Ws, u64)]) -> Vec<Attempt> {
    let now = watchers[0].0.sync().await;
    let observed = tokio::time::Instant::now();
    let snipers = watchers.iter_mut().take(10).enumerate().map(|(i, (ws, _))| async move {
        let at = now.end_time + chrono::Duration::milliseconds(10 * i as i64);
        sleep_past(at, now.server_time, observed).await;
        let name = format!("bidder-{i}");
        let amount = Amount::from_cents(now.min_next_bid.cents() + i as i64).unwrap();
        place(ws, &name, format!("{name}-late"), amount).await
    });
    futures_util::future::join_all(snipers).await
}

/// One bidder: bids a little over the minimum it knows of, learning prices from its rejections
/// and from the feed, until `stop_at` or the end. Holding the high bid does not stop it: it bids
/// again at once after winning, so it also tries to outbid itself. Every bid carries a `bid_id`, so every verdict is the script's
/// (the node's early reject skips such bids).
async fn bidder(mut ws: Ws, name: String, mut min_next: Amount, stop_at: tokio::time::Instant) -> (Ws, Vec<Attempt>) {
    let mut attempts = Vec::new();
    while tokio::time::Instant::now() < stop_at {
        let extra = rand::rng().random_range(0..20);
        let amount = Amount::from_cents(min_next.cents() + extra).unwrap();
        let attempt = place(&mut ws, &name, format!("{name}-{}", attempts.len()), amount).await;
        let ended = matches!(attempt.rejected(), Some(r) if r.reason == RejectReason::AuctionEnded);
        let won = matches!(&attempt.outcome, ServerFrame::BidAccepted(_));
        if let Some(BidRejected { min_next_bid: Some(m), .. }) = attempt.rejected() {
            min_next = min_next.max(*m);
        }
        attempts.push(attempt);
        if ended {
            break;
        }
        // Learn the price from the feed as a real bidder would.
        for frame in ws.seen.iter().rev() {
            if let ServerFrame::BidPlaced(BidPlaced { min_next_bid: Some(m), .. }) = frame {
                min_next = min_next.max(*m);
                break;
            }
        }
        // Eager right after winning, which is when a bidder tries to outbid itself.
        if won {
            continue;
        }
        // A modest pace: 50 bidders contend without flooding a loaded two-core machine.
        let pause = rand::rng().random_range(20..100);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    (ws, attempts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_bidders_on_two_nodes_keep_every_invariant() {
    let mut env = TestEnv::new().await;
    let (api, _, scheduler) = env.auction_instance().await;
    let nodes = [env.bidding_service().await, env.bidding_service().await];
    env.analytics_service().await;
    let now = Utc::now();
    // Closes 5 s from now, after the bidders have connected and while they still bid, so the
    // close moves while bids race, which is what the end-time invariant must survive.
    let requested_end = now + chrono::Duration::seconds(5);
    let auction = api
        .create(&CreateAuction {
            title: Some("Contested".into()),
            start_time: now - chrono::Duration::seconds(1),
            end_time: requested_end,
            starting_bid: amount("1.00"),
            extension_window_s: Some(EXTENSION_S),
            extension_s: Some(EXTENSION_S),
            buy_now_price: None,
            reserve_price: None,
        })
        .await;
    assert!((auction.end_time - requested_end).abs() < chrono::Duration::milliseconds(1), "kept to the millisecond");
    let id = auction.auction_id.as_str().to_owned();
    // Bidding never waits for the scheduler: Redis time alone says whether a bid is in time. The
    // test shows it with none running until the bidding is over, so the auction is never marked
    // ended under the bids that come just too late.
    scheduler.cancel();

    let mut clients = Vec::new();
    for i in 0..BIDDERS {
        let (ws, snapshot) = nodes[i % 2].connect(&id, &format!("bidder-{i}")).await;
        clients.push((ws, snapshot));
    }
    let stop_at = tokio::time::Instant::now() + BIDDING_FOR;
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, (ws, snapshot))| {
            let first = snapshot.seq;
            let task = tokio::spawn(bidder(ws, format!("bidder-{i}"), snapshot.min_next_bid, stop_at));
            (task, first)
        })
        .collect();
    let mut watchers = Vec::new();
    let mut attempts = Vec::new();
    for (task, first) in tasks {
        let (ws, mine) = task.await.expect("bidder task");
        watchers.push((ws, first));
        attempts.extend(mine);
    }
    let late = snipe(&mut watchers).await;
    assert!(late.iter().all(|a| a.rejected().is_some()), "accepted after the close: {late:?}");
    attempts.extend(late);
    // A scheduler again, to end the auction and record the result.
    let api = env.auction_service().await;

    let accepted = accepted_by_seq(&attempts);
    // How many is the benchmark's business; enough, from enough bidders, for the rules to bite.
    let winners: HashSet<&str> = accepted.values().map(|a| a.bidder.as_str()).collect();
    assert!(accepted.len() >= 20 && winners.len() >= 10, "{} bids by {} bidders", accepted.len(), winners.len());
    check_raises(&auction, &accepted);
    check_rejections(&auction, &accepted, &attempts);

    // MySQL, once the analytics service has written the end: exactly what the bidders were told.
    let mut conn = env.mysql().await;
    let result = wait_for_result(&mut conn, &id).await;
    let rows = mysql_bid_rows(&mut conn, &id).await;
    let told: Vec<(u64, &str, &str, Amount)> =
        accepted.iter().map(|(seq, a)| (*seq, a.bid_id.as_str(), a.bidder.as_str(), a.amount)).collect();
    let stored: Vec<(u64, &str, &str, Amount)> =
        rows.iter().map(|r| (r.seq, r.bid_id.as_str(), r.bidder.as_str(), r.amount)).collect();
    assert_eq!(stored, told, "mysql holds every accepted bid and nothing else");
    let closes = check_closes(&auction, &accepted, &rows, &attempts);
    let close = *closes.values().last().unwrap();
    assert!(close > auction.end_time, "bids in the last second must have extended the close");
    let (status, end_time): (String, chrono::NaiveDateTime) =
        sqlx::query_as("SELECT status, end_time FROM auctions WHERE auction_id = ?")
            .bind(&id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!((status.as_str(), end_time.and_utc()), ("ended", close), "the auction row");
    let (last_seq, last) = accepted.iter().next_back().unwrap();
    assert_eq!(result, (Some(last.bidder.clone()), Some(last.amount), accepted.len() as u64, close), "the result row");

    check_feeds(&mut watchers, &accepted, &rows, &closes, *last_seq).await;

    // After the close: the final state is the last accepted bid, and nothing more gets in.
    let (mut late, snapshot) = nodes[0].connect(&id, "latecomer").await;
    sleep_past(snapshot.end_time, snapshot.server_time, tokio::time::Instant::now()).await;
    match late.bid("1000000", None).await {
        ServerFrame::BidRejected(r) => assert_eq!(r.reason, RejectReason::AuctionEnded),
        other => panic!("{other:?}"),
    }
    let final_state = late.sync().await;
    assert_eq!(final_state.status.as_str(), "ended");
    assert!(final_state.seq >= *last_seq);
    assert_eq!(final_state.bid_count, accepted.len() as u64);
    assert_eq!(final_state.current_bid, Some(last.amount));
    assert_eq!(final_state.highest_bidder.as_ref().map(|b| b.as_str()), Some(last.bidder.as_str()));
    assert_eq!(final_state.end_time, close);
    let rest = api.auction(&id).await;
    let winner = rest.winner.as_ref().map(|w| w.as_str());
    assert_eq!((winner, rest.final_price), (Some(last.bidder.as_str()), Some(last.amount)));
}

/// The accepted bids by `seq`, each told once, for the amount that was sent.
fn accepted_by_seq(attempts: &[Attempt]) -> BTreeMap<u64, &Attempt> {
    let mut accepted = BTreeMap::new();
    for attempt in attempts {
        if let ServerFrame::BidAccepted(a) = &attempt.outcome {
            assert_eq!((a.amount, a.bid_id.as_str()), (attempt.amount, attempt.bid_id.as_str()), "{a:?}");
            assert!(accepted.insert(a.seq, attempt).is_none(), "seq {} told twice", a.seq);
        }
    }
    accepted
}

/// Each accepted amount is at least the minimum the default bands give at the one before (the
/// first at least the starting bid), and nobody outbid themselves.
fn check_raises(auction: &Auction, accepted: &BTreeMap<u64, &Attempt>) {
    let rules = BidRules::default();
    let mut previous: Option<&Attempt> = None;
    for (seq, bid) in accepted {
        let min_next = rules.min_next_bid(auction.starting_bid, previous.map(|p| p.amount));
        assert!(bid.amount >= min_next, "seq {seq}: {} accepted under the minimum {min_next}", bid.amount);
        if let Some(previous) = previous {
            assert_ne!(previous.bidder, bid.bidder, "seq {seq}: {} outbid themselves", bid.bidder);
        }
        previous = Some(bid);
    }
}

/// Every rejection was right: `bid_too_low` and `already_highest_bidder` name the price in force
/// when the script ran (an accepted amount whose bid came before and whose successor came after,
/// by the bidders' own clock) and the minimum the rules give at it; a bid too low was under it;
/// the high bidder was the one refused. Nothing else is refused but lateness, checked with the
/// closes.
fn check_rejections(auction: &Auction, accepted: &BTreeMap<u64, &Attempt>, attempts: &[Attempt]) {
    let rules = BidRules::default();
    let seq_of: HashMap<Amount, u64> = accepted.iter().map(|(seq, a)| (a.amount, *seq)).collect();
    let (mut too_low, mut highest) = (0, 0);
    for attempt in attempts {
        let Some(r) = attempt.rejected() else { continue };
        let what = format!("{} bid {} ({}): {r:?}", attempt.bidder, attempt.amount, attempt.bid_id);
        match r.reason {
            RejectReason::BidTooLow | RejectReason::AlreadyHighestBidder => {}
            RejectReason::AuctionEnded => continue,
            _ => panic!("unexpected rejection of {what}"),
        }
        let min_next = rules.min_next_bid(auction.starting_bid, r.current_bid);
        assert_eq!(r.min_next_bid, Some(min_next), "{what}");
        let in_force = r.current_bid.map(|c| *seq_of.get(&c).unwrap_or_else(|| panic!("never accepted: {what}")));
        if let Some(seq) = in_force {
            assert!(accepted[&seq].sent < attempt.answered, "{what} names a bid placed after it was answered");
        }
        let after = in_force.map_or(0, |seq| seq + 1);
        if let Some((_, successor)) = accepted.range(after..).next() {
            assert!(attempt.sent < successor.answered, "{what} names a price already outbid when it was sent");
        }
        if r.reason == RejectReason::BidTooLow {
            too_low += 1;
            assert!(attempt.amount < min_next, "{what} was not too low");
        } else {
            highest += 1;
            let seq = in_force.unwrap_or_else(|| panic!("{what} without a high bid"));
            assert_eq!(accepted[&seq].bidder, attempt.bidder, "{what} refused someone else's bid");
        }
    }
    assert!(too_low > 0 && highest > 0, "the test did not contend: {too_low} too low, {highest} already highest");
    eprintln!("{} bids accepted, {too_low} too low, {highest} already highest", accepted.len());
}

/// Replays the closes from the bids' Redis times (each between its sending and its answer by
/// this machine's clock): no bid was accepted at or after the close in force, each moved it as
/// the rules say, and every `auction_ended` came after the final close. Returns the close after
/// each bid.
fn check_closes(
    auction: &Auction,
    accepted: &BTreeMap<u64, &Attempt>,
    rows: &[BidRow],
    attempts: &[Attempt],
) -> BTreeMap<u64, DateTime<Utc>> {
    let ms = |t: DateTime<Utc>| t.timestamp_millis();
    let (window, extension) = (i64::from(EXTENSION_S) * 1000, i64::from(EXTENSION_S) * 1000);
    let mut close = ms(auction.end_time);
    let mut closes = BTreeMap::new();
    for row in rows {
        let bid = accepted[&row.seq];
        let placed = ms(row.placed_at);
        assert!(
            ms(bid.sent_wall) <= placed && placed <= ms(bid.answered_wall),
            "seq {} placed at {} outside its round trip {}..{}",
            row.seq,
            row.placed_at,
            bid.sent_wall,
            bid.answered_wall
        );
        assert!(placed < close, "seq {} accepted at {placed} ms, the close in force being {close} ms", row.seq);
        if close - placed <= window && placed + extension > close {
            close = placed + extension;
        }
        let told = match &bid.outcome {
            ServerFrame::BidAccepted(a) => ms(a.end_time),
            other => unreachable!("{other:?}"),
        };
        assert_eq!(told, close, "seq {}: the close the bidder was told", row.seq);
        closes.insert(row.seq, DateTime::from_timestamp_millis(close).unwrap());
    }
    for attempt in attempts.iter().filter(|a| a.rejected().is_some_and(|r| r.reason == RejectReason::AuctionEnded)) {
        assert!(ms(attempt.answered_wall) >= close, "{attempt:?} refused as ended before the close {close} ms");
    }
    closes
}

/// Waits for the auction's result row; returns winner, final price, bid count and close.
async fn wait_for_result(
    conn: &mut sqlx::MySqlConnection,
    auction: &str,
) -> (Option<String>, Option<Amount>, u64, DateTime<Utc>) {
    type Row = (Option<Vec<u8>>, Option<rust_decimal::Decimal>, u64, chrono::NaiveDateTime);
    // The end comes after the close (up to a second for the scheduler), then to MySQL.
    let deadline = tokio::time::Instant::now() + WAIT + WAIT;
    loop {
        let row: Option<Row> =
            sqlx::query_as("SELECT winner, final_price, bid_count, ended_at FROM auction_results WHERE auction_id = ?")
                .bind(auction)
                .fetch_optional(&mut *conn)
                .await
                .unwrap();
        if let Some((winner, price, count, ended_at)) = row {
            let winner = winner.map(|w| String::from_utf8(w).unwrap());
            return (winner, price.and_then(Amount::from_decimal), count, ended_at.and_utc());
        }
        assert!(tokio::time::Instant::now() < deadline, "no result row for {auction}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every watcher on both nodes saw every change of state after its first snapshot, in seq order
/// with no gap (bid_placed, with its extension, and the scheduler's lifecycle frames), or got a
/// snapshot covering what it missed; each bid as placed, at its Redis time, with its close.
async fn check_feeds(
    watchers: &mut [(Ws, u64)],
    accepted: &BTreeMap<u64, &Attempt>,
    rows: &[BidRow],
    closes: &BTreeMap<u64, DateTime<Utc>>,
    last_seq: u64,
) {
    let placed_at: HashMap<u64, DateTime<Utc>> = rows.iter().map(|r| (r.seq, r.placed_at)).collect();
    for (ws, first) in watchers {
        let caught_up = |f: &ServerFrame| f.seq() >= Some(last_seq) && !matches!(f, ServerFrame::BidAccepted(_));
        if !ws.seen.iter().any(caught_up) {
            ws.next_matching(|f| caught_up(f).then_some(())).await;
        }
        let mut shown = *first;
        let mut covered_to = *first;
        let mut seen_bids = HashSet::new();
        for frame in &ws.seen {
            match frame {
                ServerFrame::BidAccepted(_) | ServerFrame::BidRejected(_) => {}
                ServerFrame::Snapshot(s) => {
                    assert!(s.seq >= shown, "a resync went back in time");
                    shown = s.seq;
                    covered_to = s.seq;
                }
                // A bid's extension shares the bid's seq.
                ServerFrame::AuctionExtended(e) => {
                    assert_eq!(e.seq, shown, "auction_extended apart from its bid");
                    assert_eq!(Some(&e.end_time), closes.get(&e.seq), "the extension of seq {}", e.seq);
                }
                other => {
                    let Some(seq) = other.seq() else { continue };
                    assert_eq!(seq, shown + 1, "{other:?} out of order or after a gap");
                    shown = seq;
                    if let ServerFrame::BidPlaced(p) = other {
                        let bid = accepted[&p.seq];
                        let as_told = (p.amount, p.bid_id.as_str(), p.bidder.as_str());
                        assert_eq!(as_told, (bid.amount, bid.bid_id.as_str(), bid.bidder.as_str()));
                        assert_eq!(
                            (Some(&p.placed_at), Some(&p.end_time)),
                            (placed_at.get(&p.seq), closes.get(&p.seq))
                        );
                        seen_bids.insert(p.seq);
                    }
                }
            }
        }
        for seq in accepted.keys().filter(|s| **s > *first) {
            assert!(seen_bids.contains(seq) || *seq <= covered_to, "a watcher missed bid seq {seq}");
        }
    }
}

/// A watcher reading as it goes, until it has seen `bids` bids; returns their seqs.
fn watch_bids(mut watcher: Ws, bids: usize) -> tokio::task::JoinHandle<(Vec<u64>, Ws)> {
    tokio::spawn(async move {
        let mut seqs = Vec::new();
        while seqs.len() < bids {
            if let ServerFrame::BidPlaced(p) = watcher.next().await {
                seqs.push(p.seq);
            }
        }
        (seqs, watcher)
    })
}

/// Two nodes, each with a client that reads nothing. On the patient one (a send timeout far
/// beyond the test) the stuck client stays connected the whole time, so if anything there waited
/// for it, the bids and the healthy watcher would wait as long: they finishing within [`WAIT`]
/// with it still there is the proof that nobody waits for it, decided by the server, not by a
/// stopwatch. On the strict one (1 s) it is cut off alone, having been sent a consistent prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_reads_nothing_slows_no_one_and_is_cut_off() {
    const BIDS: usize = 400;
    let mut env = TestEnv::new().await;
    // Without a bound the kernel lets a loopback connection buffer megabytes, thousands of bids.
    env.set("WS_SEND_BUFFER", "16384");
    let api = env.auction_service().await;
    env.set("WS_SEND_TIMEOUT", "10m");
    let patient = env.bidding_service().await;
    env.set("WS_SEND_TIMEOUT", "1s");
    let strict = env.bidding_service().await;
    let auction = api.create_open(600, "1", 0).await;
    let id = auction.auction_id.to_string();

    let _stuck_here = stuck_client(patient, &id, "stuck-here").await;
    let mut stuck = stuck_client(strict, &id, "stuck").await;
    let watching = watch_bids(patient.connect(&id, "watcher").await.0, BIDS);
    let watching_strict = watch_bids(strict.connect(&id, "watcher-2").await.0, BIDS);

    let (mut ann, _) = patient.connect(&id, "ann").await;
    let (mut ben, _) = patient.connect(&id, "ben").await;
    let mut next = amount("1.00");
    let mut acked = Vec::new();
    let bidding = async {
        for round in 0..BIDS {
            let bidder = if round % 2 == 0 { &mut ann } else { &mut ben };
            match bidder.bid(&next.to_string(), None).await {
                ServerFrame::BidAccepted(a) => {
                    acked.push(a.seq);
                    next = BidRules::default().min_next_bid(a.amount, Some(a.amount));
                }
                other => panic!("round {round}: {other:?}"),
            }
        }
    };
    tokio::time::timeout(WAIT, bidding).await.expect("the bids waited for the stuck client");
    let (seqs, _watcher) =
        tokio::time::timeout(WAIT, watching).await.expect("the healthy watcher waited for the stuck client").unwrap();
    assert_eq!(seqs, acked, "the healthy watcher saw every bid in order");
    // All that with the stuck client still on the patient node: ann, ben, the watcher and it.
    assert_eq!(scrape(patient.addr, "bidding_slow_clients_dropped_total").await, 0.0);
    assert_eq!(scrape(patient.addr, "bidding_connections").await, 4.0, "the stuck client is still there");
    let (seqs, _watcher) = tokio::time::timeout(WAIT, watching_strict).await.expect("the other watcher").unwrap();
    assert_eq!(seqs, acked, "the strict node's healthy watcher saw every bid in order");
    let last = *acked.last().unwrap();

    // The strict node gives up on its stuck client once a frame waits past the send timeout.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        // Only the stuck client goes: the healthy watcher stays.
        if scrape(strict.addr, "bidding_slow_clients_dropped_total").await == 1.0
            && scrape(strict.addr, "bidding_connections").await == 1.0
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the stuck client was never dropped alone");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What it had been sent is consistent (snapshot, then bids in order with no gap), and then
    // its connection ends.
    let mut expected = match stuck.next().await {
        ServerFrame::Snapshot(s) => s.seq + 1,
        other => panic!("expected the snapshot first, got {other:?}"),
    };
    let ended = loop {
        match stuck.next_or_end().await {
            Some(ServerFrame::BidPlaced(p)) => {
                assert_eq!(p.seq, expected, "a gap in what the stuck client was sent");
                expected += 1;
            }
            Some(other) => panic!("unexpected frame {other:?}"),
            None => break expected - 1,
        }
    };
    assert!(ended < last, "the stuck client was cut off before the end (it had up to seq {ended} of {last})");
    eprintln!("stuck client: cut off after seq {ended} of {last}");
}
