//! A minimal WebSocket bidder for trying the bidding service by hand: prints the auction's
//! snapshot, places one bid (the minimum when no amount is given) and prints every frame up to the
//! outcome. `AUCTION_WS_URL` picks the node (default `ws://localhost:8080`).
//!
//! ```sh
//! cargo run -q -p auction-server --example bid -- AUCTION_ID alice [AMOUNT]
//! ```

use anyhow::{Context, bail};
use auction_proto::ws::{PlaceBid, ServerFrame};
use auction_proto::{Amount, ClientFrame};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (auction, user, amount) = match args.as_slice() {
        [auction, user] => (auction, user, None),
        [auction, user, amount] => (auction, user, Some(Amount::parse(amount)?)),
        _ => bail!("usage: bid AUCTION_ID USER_ID [AMOUNT]"),
    };
    let base = std::env::var("AUCTION_WS_URL").unwrap_or_else(|_| "ws://localhost:8080".into());
    let url = format!("{base}/ws/auction/{auction}?user_id={user}");
    let (mut ws, _) =
        tokio_tungstenite::connect_async(&url).await.with_context(|| format!("cannot connect to {url}"))?;
    let snapshot = match next_frame(&mut ws).await? {
        ServerFrame::Snapshot(snapshot) => snapshot,
        other => bail!("expected a snapshot first, got {other:?}"),
    };
    let bid = amount.unwrap_or(snapshot.min_next_bid);
    let frame = ClientFrame::PlaceBid(PlaceBid { amount: bid.into(), bid_id: None, max_amount: None });
    ws.send(Message::text(frame.encode())).await?;
    loop {
        match next_frame(&mut ws).await? {
            ServerFrame::BidAccepted(_) => return Ok(()),
            ServerFrame::BidRejected(_) => std::process::exit(1),
            _ => {}
        }
    }
}

/// Reads and prints the next text frame.
async fn next_frame<S>(ws: &mut S) -> anyhow::Result<ServerFrame>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    while let Some(message) = ws.next().await {
        if let Message::Text(text) = message? {
            println!("{text}");
            return Ok(serde_json::from_str(&text)?);
        }
    }
    bail!("the server closed the connection")
}
