//! Wire types of the auction system: the only place that defines what crosses a process boundary.
//!
//! - [`amount`]: money as a strict decimal string on the wire, integer cents inside.
//! - [`duration`]: the one duration grammar of every setting and flag, and its compact display.
//! - [`ids`]: auction, user and bid ids and the character rule that keeps them inert.
//! - [`ws`]: the bidding service's WebSocket frames.
//! - [`rest`]: the auction service's REST bodies and the `/health` answer.
//! - [`rules`]: the bid increment table and `min_next_bid`.

pub mod amount;
pub mod auth;
pub mod duration;
pub mod ids;
pub mod rest;
pub mod rules;
pub mod ws;

pub use amount::{Amount, AmountError, AmountInput};
pub use ids::{AuctionId, BidId, IdError, UserId};
pub use rules::BidRules;
pub use ws::{AuctionStatus, ClientFrame, RejectReason, ServerFrame};

#[cfg(test)]
mod properties;
#[cfg(test)]
mod round_trip;
