//! Connecting at the start: concurrently, at most `--max-connecting` at once. Against a stand-in
//! bidding server that holds every WebSocket handshake until no new connection has come for a
//! while, and counts how many it held at once: connections opened one after another are held one
//! at a time; opened with a cap of N, N at a time; with no cap, all at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use auction_proto::ws::{BidRejected, ServerFrame};
use auction_proto::{Amount, RejectReason};
use tokio::sync::{Notify, watch};

mod stand_in;

/// How long the stand-in waits for another connection before it lets the held handshakes
/// through. Connections opened together arrive within microseconds of each other on loopback;
/// this leaves a loaded machine ample room.
const QUIET: Duration = Duration::from_millis(250);

/// The handshakes the stand-in holds.
#[derive(Default)]
struct Held {
    now: usize,
    /// The most it held at once.
    peak: usize,
    /// Handshakes completed.
    done: usize,
}

/// Holds each connection from its TCP accept until `QUIET` has passed with no new connection,
/// then completes the handshakes of all it holds; then sends a snapshot and answers every bid
/// `bid_too_low`.
async fn holding_stand_in(held: Arc<Mutex<Held>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let arrived = Arc::new(Notify::new());
    let (release, _) = watch::channel(0u64);
    let release = Arc::new(release);
    let (quiet_arrived, quiet_release) = (arrived.clone(), release.clone());
    tokio::spawn(async move {
        loop {
            quiet_arrived.notified().await;
            while tokio::time::timeout(QUIET, quiet_arrived.notified()).await.is_ok() {}
            quiet_release.send_modify(|round| *round += 1);
        }
    });
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let mut released = release.subscribe();
            {
                let mut held = held.lock().unwrap();
                held.now += 1;
                held.peak = held.peak.max(held.now);
            }
            arrived.notify_one();
            let held = held.clone();
            tokio::spawn(async move {
                let _ = released.changed().await;
                held.lock().unwrap().now -= 1;
                let Ok(ws) = tokio_tungstenite::accept_async(stream).await else { return };
                held.lock().unwrap().done += 1;
                serve(ws).await;
            });
        }
    });
    format!("ws://{addr}")
}

async fn serve(mut ws: stand_in::Ws) {
    if !stand_in::send(&mut ws, &[stand_in::snapshot(Amount::parse("1").unwrap())]).await {
        return;
    }
    while let Some(bid) = stand_in::next_bid(&mut ws).await {
        let reply = ServerFrame::BidRejected(BidRejected {
            auction_id: stand_in::auction(),
            bid_id: bid.bid_id,
            reason: RejectReason::BidTooLow,
            message: "too low".into(),
            min_next_bid: Amount::parse("1").ok(),
            current_bid: None,
        });
        if !stand_in::send(&mut ws, &[reply]).await {
            return;
        }
    }
}

/// 40 bidders and 20 watchers connect 8 at a time: the stand-in holds 8 handshakes at once (the
/// connections overlap) and never more (the cap holds), and all 60 connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_open_concurrently_up_to_the_cap() {
    let held = Arc::new(Mutex::new(Held::default()));
    let url = holding_stand_in(held.clone()).await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_auction-loadgen"))
        .args(["--ws-url", &url, "--auction-id", "stand-in", "--bidders", "40", "--watchers", "20"])
        .args(["--max-connecting", "8", "--rate", "20", "--warmup", "0s", "--duration", "1s", "--output", "json"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["attempted"], 20, "{report}");
    let held = held.lock().unwrap();
    assert_eq!(held.done, 60, "every connection made");
    assert!(held.peak > 1, "the connections were opened one after another");
    assert_eq!(held.peak, 8, "at most 8 at once, and as many as that");
}

/// A cap of 0 is refused, by name, before anything connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_of_none_at_once_is_refused() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_auction-loadgen"))
        .args(["--ws-url", "ws://127.0.0.1:1", "--auction-id", "a", "--max-connecting", "0"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--max-connecting must be at least 1"), "{stderr}");
}
