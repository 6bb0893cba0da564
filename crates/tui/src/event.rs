//! The one event type the app reacts to: a key, a tick of the clock, or news from the network.

use auction_proto::rest::Auction;
use auction_proto::ws::ServerFrame;
use crossterm::event::KeyEvent;

#[derive(Debug)]
pub enum Event {
    Key(KeyEvent),
    /// Redraw (the countdown moves).
    Tick,
    Net(Net),
}

/// What the network task reports.
#[derive(Debug)]
pub enum Net {
    /// The auction list arrived (or could not be read).
    List(Result<Vec<Auction>, String>),
    /// The WebSocket is (re)connected.
    Connected,
    /// The WebSocket dropped; the task retries after `retry_in_ms`.
    Reconnecting {
        attempt: u32,
        reason: String,
    },
    /// The server closed the room because the bidder token expired; the task does not
    /// reconnect (the same token would be refused) until the app leaves the room.
    TokenExpired,
    Frame(Box<ServerFrame>),
    /// Measured round trip of a ping.
    RoundTrip(u64),
}

/// What the app asks of the network task.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Join an auction's room (opens the WebSocket).
    Join(String),
    Bid {
        amount: auction_proto::Amount,
        /// A proxy bid's max (`max_amount`): the most the service may bid for you.
        max: Option<auction_proto::Amount>,
        bid_id: String,
    },
    Sync,
    Leave,
}
