//! The network task against a stand-in bidding node: a bid with a max goes out as `place_bid`
//! with `max_amount`, and after a connection lost before its answer it is sent again unchanged
//! (same `bid_id`, amount and max), so a proxy bid is never placed twice nor changed by a retry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use auction_proto::Amount;
use auction_tui::event::{Command, Event, Net};
use auction_tui::net::{Endpoints, run};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);

const SNAPSHOT: &str = r#"{"type":"snapshot","auction_id":"lamp","status":"active","start_time":"2026-11-26T09:00:00Z","end_time":"2099-11-26T10:00:00Z","starting_bid":"100.00","current_bid":null,"highest_bidder":null,"min_next_bid":"100.00","bid_count":0,"seq":1,"server_time":"2026-11-26T09:30:00Z","recent_bids":[]}"#;

/// Serves the room: a snapshot on each connection, then hands every `place_bid` it reads to
/// `bids`; the first connection is dropped right after its first bid, unanswered.
async fn stand_in(bids: mpsc::UnboundedSender<serde_json::Value>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((stream, _)) = listener.accept().await {
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { continue };
            let drop_after_bid = std::mem::take(&mut first);
            let bids = bids.clone();
            tokio::spawn(async move {
                ws.send(Message::text(SNAPSHOT)).await.unwrap();
                while let Some(Ok(message)) = ws.next().await {
                    let Message::Text(text) = message else { continue };
                    let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
                    if frame["type"] != "place_bid" {
                        continue;
                    }
                    bids.send(frame).unwrap();
                    if drop_after_bid {
                        return;
                    }
                }
            });
        }
    });
    format!("ws://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bid_with_a_max_is_sent_with_max_amount_and_resent_unchanged_after_a_drop() {
    let (bids_tx, mut bids) = mpsc::unbounded_channel();
    let ws_url = stand_in(bids_tx).await;
    let (commands, command_rx) = mpsc::channel(8);
    let (event_tx, mut events) = mpsc::channel(256);
    // No auction service: the list fails at once, which the room does not need.
    let endpoints = Endpoints { api_url: "http://127.0.0.1:9".into(), ws_url, user: "alice".into(), token: None };
    tokio::spawn(run(endpoints, command_rx, event_tx));
    commands.send(Command::Join("lamp".into())).await.unwrap();
    tokio::time::timeout(WAIT, async {
        while let Some(event) = events.recv().await {
            if matches!(event, Event::Net(Net::Frame(_))) {
                return;
            }
        }
    })
    .await
    .expect("no snapshot");

    let bid = Command::Bid {
        amount: Amount::parse("100").unwrap(),
        max: Some(Amount::parse("150").unwrap()),
        bid_id: "tui-test-1".into(),
    };
    commands.send(bid).await.unwrap();
    let first = tokio::time::timeout(WAIT, bids.recv()).await.expect("no bid").unwrap();
    assert_eq!(
        first,
        serde_json::json!({"type": "place_bid", "amount": "100.00", "max_amount": "150.00", "bid_id": "tui-test-1"})
    );
    // Keep the events flowing while the task reconnects.
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    let again = tokio::time::timeout(WAIT, bids.recv()).await.expect("the bid was not sent again").unwrap();
    assert_eq!(again, first, "resent with its id, amount and max");

    // A plain bid carries no max.
    commands
        .send(Command::Bid { amount: Amount::parse("102.50").unwrap(), max: None, bid_id: "tui-test-2".into() })
        .await
        .unwrap();
    let plain = tokio::time::timeout(WAIT, bids.recv()).await.expect("no plain bid").unwrap();
    assert_eq!(plain, serde_json::json!({"type": "place_bid", "amount": "102.50", "bid_id": "tui-test-2"}));
}
