//! One bidder: what it knows of its auction, how it bids on its slots, and its tallies.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use auction_proto::ws::{PlaceBid, ServerFrame};
use auction_proto::{Amount, BidId, ClientFrame};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::link::Socket;
use crate::run::{Shared, histogram, micros};

/// One bidder's tallies.
pub(crate) struct Tally {
    pub attempted: u64,
    pub accepted: u64,
    pub rejected: BTreeMap<String, u64>,
    pub errors: u64,
    pub skipped: u64,
    pub ack: Histogram<u64>,
}

/// What a bidder knows of its auction, from every frame it has read.
struct Knowledge {
    me: String,
    /// The lowest acceptable bid as last seen.
    min_next: Option<Amount>,
    /// Whether this bidder holds the high bid (then bidding again would only be refused).
    highest: bool,
}

impl Knowledge {
    fn raise(&mut self, amount: Option<Amount>) {
        if let Some(amount) = amount {
            self.min_next = Some(self.min_next.map_or(amount, |m| m.max(amount)));
        }
    }

    fn learn(&mut self, frame: &ServerFrame) {
        match frame {
            ServerFrame::Snapshot(s) => {
                self.min_next = Some(s.min_next_bid);
                self.highest = s.highest_bidder.as_ref().is_some_and(|b| b.as_str() == self.me);
            }
            ServerFrame::BidPlaced(p) => {
                self.raise(p.min_next_bid.or(Amount::from_cents(p.amount.cents() + 1)));
                self.highest = p.bidder.as_str() == self.me;
            }
            ServerFrame::BidAccepted(a) => {
                self.raise(Amount::from_cents(a.amount.cents() + 1));
                self.highest = true;
            }
            ServerFrame::BidRejected(r) => {
                self.raise(r.min_next_bid);
                self.highest = r.reason == auction_proto::RejectReason::AlreadyHighestBidder;
            }
            _ => {}
        }
    }
}

/// One bidder: on each slot it is given (or right after each answer, closed loop) it bids the
/// lowest amount it knows to be acceptable, and records the latency from the slot. It never bids
/// against itself: a slot that finds it holding the high bid is skipped (closed loop: it waits to
/// be outbid).
pub(crate) async fn bid(
    mut socket: Socket,
    worker: usize,
    shared: Arc<Shared>,
    mut slots: Option<mpsc::UnboundedReceiver<Instant>>,
) -> Tally {
    let mut tally =
        Tally { attempted: 0, accepted: 0, rejected: BTreeMap::new(), errors: 0, skipped: 0, ack: histogram() };
    let mut known = Knowledge { me: format!("lg-b{worker}"), min_next: None, highest: false };
    let mut n: u64 = 0;
    let open_loop = slots.is_some();
    loop {
        let scheduled = match &mut slots {
            Some(slots) => match slots.recv().await {
                Some(slot) => slot,
                None => break,
            },
            None => Instant::now(),
        };
        if shared.stopping.load(Ordering::Relaxed) || scheduled >= shared.stop_at {
            break;
        }
        // Catch up on what others did since the last answer.
        if !drain_ready(&mut socket, &mut known) {
            break;
        }
        if known.min_next.is_none() || (known.highest && !open_loop) {
            // Closed loop: wait for news (first snapshot, or being outbid) rather than spin.
            match tokio::time::timeout(Duration::from_millis(200), next_frame(&mut socket, shared.timeout)).await {
                Ok(Some(frame)) => known.learn(&frame),
                Ok(None) => break,
                Err(_) => {}
            }
            continue;
        }
        if known.highest {
            tally.skipped += u64::from(shared.measured(scheduled));
            continue;
        }
        if !shared.take_bid(scheduled) {
            break;
        }
        n += 1;
        let measured = shared.measured(scheduled);
        let Some(amount) = known.min_next else { continue };
        let Ok(bid_id) = BidId::parse(&shared.bid_id(worker, n, scheduled)) else { break };
        let frame = ClientFrame::PlaceBid(PlaceBid { amount: amount.into(), bid_id: Some(bid_id) });
        if measured {
            tally.attempted += 1;
        }
        if socket.send(Message::text(frame.encode())).await.is_err() {
            tally.errors += u64::from(measured);
            break;
        }
        let answer = outcome(&mut socket, &mut known, shared.timeout).await;
        let latency = micros(scheduled.elapsed());
        match answer {
            Some(Ok(())) if measured => {
                tally.accepted += 1;
                shared.accepted.fetch_add(1, Ordering::Relaxed);
                let _ = tally.ack.record(latency);
            }
            Some(Err(reason)) if measured => {
                *tally.rejected.entry(reason).or_default() += 1;
                let _ = tally.ack.record(latency);
            }
            Some(_) => {}
            None => {
                tally.errors += u64::from(measured);
                break;
            }
        }
    }
    let _ = socket.close(None).await;
    tally
}

/// Reads every frame already received without waiting; false if the connection is gone.
fn drain_ready(socket: &mut Socket, known: &mut Knowledge) -> bool {
    use futures_util::FutureExt;
    loop {
        match socket.next().now_or_never() {
            None => return true,
            Some(Some(Ok(Message::Text(text)))) => {
                if let Ok(frame) = serde_json::from_str::<ServerFrame>(&text) {
                    known.learn(&frame);
                }
            }
            Some(Some(Ok(Message::Close(_))) | Some(Err(_)) | None) => return false,
            Some(Some(Ok(_))) => {}
        }
    }
}

/// Reads frames until the bid's answer, learning from everything on the way. `Ok` for accepted,
/// `Err(reason)` for rejected, `None` when the connection failed or timed out.
async fn outcome(socket: &mut Socket, known: &mut Knowledge, timeout: Duration) -> Option<Result<(), String>> {
    loop {
        let frame = next_frame(socket, timeout).await?;
        known.learn(&frame);
        match frame {
            ServerFrame::BidAccepted(_) => return Some(Ok(())),
            ServerFrame::BidRejected(r) => return Some(Err(r.reason.as_str().to_owned())),
            _ => {}
        }
    }
}

async fn next_frame(socket: &mut Socket, timeout: Duration) -> Option<ServerFrame> {
    loop {
        match tokio::time::timeout(timeout, socket.next()).await.ok()?? {
            Ok(Message::Text(text)) => return serde_json::from_str(&text).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}
