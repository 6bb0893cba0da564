//! Every open-loop slot ends in a measured bid: against a stand-in bidding server where each
//! bidder, once its first bid is in, holds the high bid for good (no rival ever outbids it), so
//! every later slot of every bidder finds it leading.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use auction_proto::ws::{BidAccepted, BidRejected, ServerFrame};
use auction_proto::{Amount, RejectReason};

mod stand_in;

/// What the stand-in was sent.
#[derive(Default)]
struct Seen {
    /// Bids from a connection that already led.
    from_leaders: AtomicU64,
    /// Of those, the ones that carried a `max_amount` (which would raise the leader's own max
    /// instead of being refused).
    from_leaders_with_max: AtomicU64,
}

/// Accepts each connection's first bid, leading, and answers every later one
/// `already_highest_bidder`, as the bidding service answers a leader's plain bid.
async fn leading_stand_in(seen: Arc<Seen>) -> String {
    stand_in::listen(move |stream| {
        let seen = seen.clone();
        async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
            if !stand_in::send(&mut ws, &[stand_in::snapshot(Amount::parse("1").unwrap())]).await {
                return;
            }
            let mut leads = false;
            while let Some(bid) = stand_in::next_bid(&mut ws).await {
                let amount = bid.amount.0.clone().unwrap();
                let reply = if leads {
                    seen.from_leaders.fetch_add(1, Ordering::SeqCst);
                    seen.from_leaders_with_max.fetch_add(u64::from(bid.max_amount.is_some()), Ordering::SeqCst);
                    ServerFrame::BidRejected(BidRejected {
                        auction_id: stand_in::auction(),
                        bid_id: bid.bid_id,
                        reason: RejectReason::AlreadyHighestBidder,
                        message: "you already hold the highest bid".into(),
                        min_next_bid: Amount::from_cents(amount.cents() + 100),
                        current_bid: Some(amount),
                    })
                } else {
                    leads = true;
                    let accepted = stand_in::accepted(&bid, 1);
                    ServerFrame::BidAccepted(BidAccepted {
                        min_next_bid: Amount::from_cents(amount.cents() + 100),
                        ..accepted
                    })
                };
                if !stand_in::send(&mut ws, &[reply]).await {
                    return;
                }
            }
        }
    })
    .await
}

/// A bidder that holds the high bid at its slot bids all the same, plainly, and its
/// `already_highest_bidder` answer is measured as a rejection: nothing is skipped, so a stall
/// that leaves bidders leading cannot hide behind skipped slots. The bidders all bid by max, and
/// none sends a max while leading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bidder_holding_the_high_bid_still_bids_on_its_slots_and_is_measured() {
    let seen = Arc::new(Seen::default());
    let url = leading_stand_in(seen.clone()).await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_auction-loadgen"))
        .args(["--ws-url", &url, "--auction-id", "stand-in", "--bidders", "10", "--rate", "200"])
        .args(["--proxy-share", "1", "--warmup", "0s", "--duration", "3s", "--output", "json"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let n = |k: &str| report[k].as_u64().unwrap();
    // 3 s at 200/s, no warm-up: 600 slots, each one bid, each answer measured.
    assert_eq!(n("skipped"), 0, "{report}");
    assert_eq!(n("attempted"), 600, "{report}");
    assert_eq!(report["ack_latency_ms"]["count"], 600, "{report}");
    assert_eq!(n("accepted"), 10, "each bidder's first bid: {report}");
    assert_eq!(report["rejected"]["already_highest_bidder"], 590, "{report}");
    assert_eq!(seen.from_leaders.load(Ordering::SeqCst), 590);
    assert_eq!(seen.from_leaders_with_max.load(Ordering::SeqCst), 0, "a leader sent a max");
}
