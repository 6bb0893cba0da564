//! What the load generator's tests share: a stand-in bidding server's pieces. Each test builds its
//! own server from them (how it answers is what the test is about); the frames, the accept loop
//! and the reading and writing of a connection are the same in all.

// Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;

use auction_proto::ws::{BidAccepted, BidPlaced, PlaceBid, ServerFrame, Snapshot};
use auction_proto::{Amount, AuctionId, AuctionStatus, BidId, ClientFrame, UserId};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

pub type Ws = WebSocketStream<TcpStream>;

/// The one auction every stand-in serves (the generator runs with `--auction-id stand-in`).
pub fn auction() -> AuctionId {
    AuctionId::parse("stand-in").unwrap()
}

/// The snapshot of an active auction, ending in an hour, starting at 1.00, with no bid yet and
/// `min_next` as its minimum.
pub fn snapshot(min_next: Amount) -> ServerFrame {
    ServerFrame::Snapshot(active(min_next))
}

/// The auction of `snapshot`, for a test that fills in a standing bid.
pub fn active(min_next: Amount) -> Snapshot {
    let now = chrono::Utc::now();
    Snapshot {
        auction_id: auction(),
        status: AuctionStatus::Active,
        start_time: now,
        end_time: now + chrono::Duration::hours(1),
        starting_bid: Amount::parse("1").unwrap(),
        current_bid: None,
        highest_bidder: None,
        min_next_bid: min_next,
        bid_count: 0,
        seq: 0,
        server_time: now,
        recent_bids: vec![],
        buy_now_price: None,
        reserve_met: None,
        your_max: None,
    }
}

/// `bid` accepted at `seq`, leading.
pub fn accepted(bid: &PlaceBid, seq: u64) -> BidAccepted {
    BidAccepted {
        auction_id: auction(),
        bid_id: bid.bid_id.clone().unwrap(),
        amount: bid.amount.0.clone().unwrap(),
        seq,
        end_time: chrono::Utc::now() + chrono::Duration::hours(1),
        bought_now: false,
        current_bid: None,
        leading: true,
        min_next_bid: None,
        your_max: None,
    }
}

/// A rival's bid one unit over `accepted`, at the same seq: it outbids the bidder at once, so
/// the bidder keeps bidding.
pub fn outbid(accepted: &BidAccepted) -> ServerFrame {
    let cents = accepted.amount.cents();
    ServerFrame::BidPlaced(BidPlaced {
        auction_id: auction(),
        bid_id: BidId::parse(&format!("rival-{}", accepted.seq)).unwrap(),
        amount: Amount::from_cents(cents + 100).unwrap(),
        bidder: UserId::parse("rival").unwrap(),
        seq: accepted.seq,
        end_time: accepted.end_time,
        bid_count: accepted.seq,
        placed_at: chrono::Utc::now(),
        min_next_bid: Amount::from_cents(cents + 200),
        auto: false,
        placed_by: None,
        reserve_met: None,
    })
}

/// Listens on a free loopback port and runs `serve` on each connection accepted, until the test
/// ends; the WebSocket URL to give the generator.
pub async fn listen<F, Fut>(serve: F) -> String
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve(stream));
        }
    });
    format!("ws://{addr}")
}

/// The next bid the connection sends, skipping any other frame; `None` once it is closed.
pub async fn next_bid(ws: &mut Ws) -> Option<PlaceBid> {
    while let Some(Ok(message)) = ws.next().await {
        if let Message::Text(text) = message
            && let Ok(ClientFrame::PlaceBid(bid)) = ClientFrame::decode(&text)
        {
            return Some(bid);
        }
    }
    None
}

/// Sends `frames` in one write, as a server answering and fanning out at once does; false once
/// the connection is gone.
pub async fn send(ws: &mut Ws, frames: &[ServerFrame]) -> bool {
    let sent = async {
        for frame in frames {
            ws.feed(Message::text(frame.encode())).await?;
        }
        ws.flush().await
    };
    sent.await.is_ok()
}
