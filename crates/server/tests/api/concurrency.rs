//! Must-show 2 of the core issue: 50 bidders on two nodes for several seconds, then the invariants.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use auction_proto::rest::CreateAuction;
use auction_proto::ws::{BidPlaced, ServerFrame};
use auction_proto::{Amount, RejectReason};
use chrono::Utc;
use rand::Rng;
use tokio_tungstenite::MaybeTlsStream;

use crate::helpers::*;

const BIDDERS: usize = 50;
const BIDDING_FOR: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_bidders_on_two_nodes_keep_every_invariant() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let nodes = [env.bidding_service().await, env.bidding_service().await];
    let now = Utc::now();
    // Closes 3 s from now, and every bid in the last second pushes the close to a second after
    // it: the close moves while bids race, which is what the end-time invariant must survive.
    let auction = api
        .create(&CreateAuction {
            title: Some("Contested".into()),
            start_time: now - chrono::Duration::seconds(1),
            end_time: now + chrono::Duration::seconds(3),
            starting_bid: amount("1.00"),
            extension_window_s: Some(1),
            extension_s: Some(1),
        })
        .await;
    let id = auction.auction_id.as_str().to_owned();

    let mut clients = Vec::new();
    for i in 0..BIDDERS {
        let (ws, snapshot) = nodes[i % 2].connect(&id, &format!("bidder-{i}")).await;
        clients.push((ws, snapshot));
    }
    let stop_at = tokio::time::Instant::now() + BIDDING_FOR;
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, (mut ws, snapshot))| {
            tokio::spawn(async move {
                let mut min_next = snapshot.min_next_bid;
                let mut accepted = Vec::new();
                let mut n = 0;
                while tokio::time::Instant::now() < stop_at {
                    n += 1;
                    let extra = rand::rng().random_range(0..20);
                    let bid = Amount::from_cents(min_next.cents() + extra).unwrap();
                    match ws.bid(&bid.to_string(), Some(&format!("b{i}-{n}"))).await {
                        ServerFrame::BidAccepted(a) => accepted.push(a),
                        ServerFrame::BidRejected(r) if r.reason == RejectReason::AuctionEnded => break,
                        ServerFrame::BidRejected(r) => {
                            assert!(
                                matches!(r.reason, RejectReason::BidTooLow | RejectReason::AlreadyHighestBidder),
                                "unexpected rejection {r:?}"
                            );
                            if let Some(m) = r.min_next_bid {
                                min_next = min_next.max(m);
                            }
                        }
                        other => panic!("{other:?}"),
                    }
                    // Learn the price from the feed as a real bidder would.
                    for frame in ws.seen.iter().rev() {
                        if let ServerFrame::BidPlaced(BidPlaced { min_next_bid: Some(m), .. }) = frame {
                            min_next = min_next.max(*m);
                            break;
                        }
                    }
                    let pause = rand::rng().random_range(0..8);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                (ws, snapshot, accepted)
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("bidder task"));
    }

    // Every accepted bid, by seq: amounts strictly rise with seq.
    let mut accepted: BTreeMap<u64, (Amount, String)> = BTreeMap::new();
    for (_, _, bids) in &results {
        for a in bids {
            assert!(accepted.insert(a.seq, (a.amount, a.bid_id.to_string())).is_none(), "seq {} twice", a.seq);
        }
    }
    let last_seq = *accepted.keys().last().expect("some bids were accepted");
    assert!(accepted.len() >= 50, "only {} bids accepted: the test did not contend", accepted.len());
    let amounts: Vec<Amount> = accepted.values().map(|(a, _)| *a).collect();
    assert!(amounts.windows(2).all(|w| w[0] < w[1]), "amounts must strictly rise with seq");

    // Every watcher on both nodes saw every change of state after its first snapshot, in seq
    // order with no gap (bid_placed, and the scheduler's auction_started), or got a snapshot
    // covering what it missed.
    let mut placed: HashMap<u64, BidPlaced> = HashMap::new();
    for (ws, first, _) in &mut results {
        let caught_up = |f: &ServerFrame| f.seq() >= Some(last_seq) && !matches!(f, ServerFrame::BidAccepted(_));
        if !ws.seen.iter().any(caught_up) {
            ws.next_matching(|f| caught_up(f).then_some(())).await;
        }
        let mut shown = first.seq;
        let mut covered_to = first.seq;
        let mut seen_bids = std::collections::HashSet::new();
        for frame in &ws.seen {
            match frame {
                ServerFrame::BidAccepted(_) => {}
                ServerFrame::Snapshot(s) => {
                    assert!(s.seq >= shown, "a resync went back in time");
                    shown = s.seq;
                    covered_to = s.seq;
                }
                // A bid's extension shares the bid's seq.
                ServerFrame::AuctionExtended(e) => assert_eq!(e.seq, shown, "auction_extended apart from its bid"),
                other => {
                    let Some(seq) = other.seq() else { continue };
                    assert_eq!(seq, shown + 1, "{other:?} out of order or after a gap");
                    shown = seq;
                    if let ServerFrame::BidPlaced(p) = other {
                        assert_eq!(p.amount, accepted[&p.seq].0);
                        assert_eq!(p.bid_id.as_str(), accepted[&p.seq].1);
                        seen_bids.insert(p.seq);
                        placed.entry(p.seq).or_insert_with(|| p.clone());
                    }
                }
            }
        }
        for seq in accepted.keys().filter(|s| **s > first.seq) {
            assert!(seen_bids.contains(seq) || *seq <= covered_to, "a watcher missed bid seq {seq}");
        }
    }

    // No bid was accepted at or after the close in force when it was placed.
    let mut close = auction.end_time;
    for seq in accepted.keys() {
        let p = placed.get(seq).unwrap_or_else(|| panic!("no watcher saw seq {seq}"));
        assert!(p.placed_at < close, "seq {seq} placed at {} but the close was {close}", p.placed_at);
        close = p.end_time;
    }
    assert!(close > auction.end_time, "bids in the last second must have extended the close");

    // After the close: the final state is the last accepted bid, and nothing more gets in.
    let (mut late, snapshot) = nodes[0].connect(&id, "latecomer").await;
    sleep_past(snapshot.end_time, snapshot.server_time, tokio::time::Instant::now()).await;
    match late.bid("1000000", None).await {
        ServerFrame::BidRejected(r) => assert_eq!(r.reason, RejectReason::AuctionEnded),
        other => panic!("{other:?}"),
    }
    let last = &placed[&last_seq];
    let final_state = late.sync().await;
    assert_eq!(final_state.status.as_str(), "ended");
    assert!(final_state.seq >= last_seq);
    assert_eq!(final_state.bid_count, accepted.len() as u64);
    assert_eq!(final_state.current_bid, Some(last.amount));
    assert_eq!(final_state.highest_bidder.as_ref(), Some(&last.bidder));
    assert_eq!(final_state.end_time, last.end_time);
    let rest = api.auction(&id).await;
    assert_eq!((rest.winner.as_ref(), rest.final_price), (Some(&last.bidder), Some(last.amount)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_reads_nothing_slows_no_one_and_is_cut_off() {
    const BIDS: usize = 400;
    let mut env = TestEnv::new().await;
    env.set("WS_SEND_TIMEOUT", "1s");
    // Without a bound the kernel lets a loopback connection buffer megabytes, thousands of bids.
    env.set("WS_SEND_BUFFER", "16384");
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create_open(600, "1", 0).await;
    let id = auction.auction_id.to_string();

    // A client that never reads, with a 4 KiB receive buffer: the frames for it back up into the
    // server's send buffer within a few hundred bids.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(node.addr).await.unwrap();
    let (slow, _) = tokio_tungstenite::client_async(node.ws_url(&id, "slow"), MaybeTlsStream::Plain(stream))
        .await
        .expect("slow client connects");
    let mut slow = Ws::from_stream(slow);

    // A healthy watcher, reading as it goes.
    let (mut watcher, _) = node.connect(&id, "watcher").await;
    let watching = tokio::spawn(async move {
        let mut seqs = Vec::new();
        while seqs.len() < BIDS {
            if let ServerFrame::BidPlaced(p) = watcher.next().await {
                seqs.push(p.seq);
            }
        }
        (seqs, watcher)
    });

    let (mut ann, _) = node.connect(&id, "ann").await;
    let (mut ben, _) = node.connect(&id, "ben").await;
    let mut next = amount("1.00");
    let mut slowest = Duration::ZERO;
    let mut acked = Vec::new();
    for round in 0..BIDS {
        let bidder = if round % 2 == 0 { &mut ann } else { &mut ben };
        let sent = std::time::Instant::now();
        match bidder.bid(&next.to_string(), None).await {
            ServerFrame::BidAccepted(a) => {
                acked.push(a.seq);
                next = auction_proto::BidRules::default().min_next_bid(a.amount, Some(a.amount));
            }
            other => panic!("round {round}: {other:?}"),
        }
        slowest = slowest.max(sent.elapsed());
    }
    // Nobody waited for the stuck client: no ack came near its 1 s send timeout.
    assert!(slowest < Duration::from_millis(500), "a bid took {slowest:?} while a watcher read nothing");
    let (seqs, _watcher) =
        tokio::time::timeout(WAIT, watching).await.expect("the healthy watcher fell behind").unwrap();
    assert_eq!(seqs, acked, "the healthy watcher saw every bid in order");
    let last = *acked.last().unwrap();

    // The server gives up on the stuck client once a frame waits past the send timeout.
    let metrics_url = format!("http://{}/metrics", node.addr);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let text = api.http.get(&metrics_url).send().await.unwrap().text().await.unwrap();
        // Only the stuck client goes: ann, ben and the healthy watcher stay.
        if metric(&text, "bidding_slow_clients_dropped_total") == Some(1.0)
            && metric(&text, "bidding_connections") == Some(3.0)
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the stuck client was never dropped alone: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What it had been sent is consistent (snapshot, then bids in order with no gap), and then
    // its connection ends.
    let mut expected = match slow.next().await {
        ServerFrame::Snapshot(s) => s.seq + 1,
        other => panic!("expected the snapshot first, got {other:?}"),
    };
    let ended = loop {
        match slow.next_or_end().await {
            Some(ServerFrame::BidPlaced(p)) => {
                assert_eq!(p.seq, expected, "a gap in what the stuck client was sent");
                expected += 1;
            }
            Some(other) => panic!("unexpected frame {other:?}"),
            None => break expected - 1,
        }
    };
    assert!(ended < last, "the stuck client was cut off before the end (it had up to seq {ended} of {last})");
    eprintln!("stuck client: cut off after seq {ended} of {last}; slowest ack meanwhile {slowest:?}");
}
