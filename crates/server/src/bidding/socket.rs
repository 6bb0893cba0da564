//! One bidder's WebSocket: the snapshot on connect, then client frames in and live events out.
//! Everything here runs in the connection's span (`conn_id`, `auction_id`, `user`), opened in
//! `bidding::connect`, so log lines name neither the user nor the auction themselves.

use std::sync::Arc;

use auction_proto::ws::{
    BidAccepted, BidRejected, ErrorFrame, PlaceBid, ServerFrame, Snapshot, TOKEN_EXPIRED, TOKEN_EXPIRED_CLOSE,
};
use auction_proto::{Amount, AuctionId, AuctionStatus, BidId, ClientFrame, RejectReason, UserId};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use super::hub::{Hub, Membership, Outbound, encode};
use crate::http::ApiError;
use crate::store::{BidOutcome, NewBid, RulesInForce, StoreError, stored::ms_to_time};

/// Why a connection ended early; logged at debug level, since clients leave all the time.
#[derive(Debug)]
enum Stop {
    Closed,
    SendFailed,
    TokenExpired,
}

pub struct Connection {
    pub socket: WebSocket,
    pub state: AppState,
    pub user: UserId,
    pub auction: AuctionId,
    pub membership: Membership,
    /// The auction version this client has been shown.
    pub last_seq: u64,
    /// This connection's bid allowance.
    pub bids: super::limits::Bucket,
    /// Counted against the node's and the user's connection limits until dropped.
    pub _admitted: super::limits::Admitted,
    /// When the bidder token expires, seconds since the Unix epoch; `None` without tokens.
    pub token_exp: Option<u64>,
    /// This bidder's own max while it leads, as this connection last learned it (from its
    /// answers and the snapshots read for it), with the version it learned it at: shown in the
    /// snapshots the hub pushes, which carry nobody's max. Secret: never sent to anyone else.
    pub your_max: Option<(Amount, u64)>,
}

impl Connection {
    pub async fn run(mut self, first: Snapshot) {
        let shutdown = self.state.shutdown.clone();
        self.state.metrics.connections.increment(1);
        let idle = self.state.config.idle_timeout;
        let mut ping = tokio::time::interval(idle / 3);
        ping.tick().await;
        // Made once: a fresh one per loop turn would register with the token again on every
        // event, and a fan-out wakes every watcher at once.
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        let expiry = until_expiry(self.token_exp);
        tokio::pin!(expiry);
        let result = async {
            self.send_snapshot(first).await?;
            let mut heard = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    () = &mut cancelled => {
                        self.close(close_code::AWAY, "server shutting down").await;
                        return Ok(());
                    }
                    () = &mut expiry => return Err(self.expire().await),
                    _ = ping.tick() => {
                        if heard.elapsed() >= idle {
                            self.close(close_code::NORMAL, "idle timeout").await;
                            self.await_close_reply().await;
                            return Err(Stop::Closed);
                        }
                        self.send(Message::Ping(axum::body::Bytes::new())).await?;
                    }
                    incoming = self.socket.recv() => {
                        heard = tokio::time::Instant::now();
                        self.on_incoming(incoming).await?;
                    }
                    event = self.membership.events.recv() => match event {
                        Ok(out) if out.seq > self.last_seq || (out.snapshot.is_some() && out.seq == self.last_seq) => {
                            self.forward(&out).await?;
                            self.last_seq = out.seq;
                        }
                        Ok(_) => {}
                        Err(RecvError::Lagged(missed)) => {
                            tracing::debug!(missed, "watcher fell behind; resyncing");
                            self.state.metrics.resyncs.increment(1);
                            self.resync().await?;
                        }
                        Err(RecvError::Closed) => return Err(Stop::Closed),
                    },
                }
            }
        }
        .await;
        self.state.metrics.connections.decrement(1);
        if let Err(stop) = result {
            tracing::debug!(?stop, "connection ended");
        }
    }

    /// Sends a hub's change: its shared frames, but a pushed snapshot in which this bidder leads
    /// with the max this connection knows.
    async fn forward(&mut self, out: &Outbound) -> Result<(), Stop> {
        let leader = out.snapshot.as_ref().map_or(out.leader.as_ref(), |s| s.highest_bidder.as_ref());
        if let (Some(leader), Some((_, known_at))) = (leader, self.your_max)
            && *leader != self.user
            && (known_at < out.seq || (out.snapshot.is_some() && known_at == out.seq))
        {
            self.your_max = None;
        }
        if let Some(snapshot) = &out.snapshot
            && snapshot.highest_bidder.as_ref() == Some(&self.user)
            && let Some((max, _)) = self.your_max
        {
            let own = Snapshot { your_max: Some(max), ..snapshot.clone() };
            return self.send_frame(&ServerFrame::Snapshot(own)).await;
        }
        for frame in &out.frames {
            self.send_text(frame.clone()).await?;
        }
        Ok(())
    }

    async fn on_incoming(&mut self, incoming: Option<Result<Message, axum::Error>>) -> Result<(), Stop> {
        match incoming {
            None | Some(Ok(Message::Close(_))) => Err(Stop::Closed),
            Some(Err(e)) => {
                if is_too_big(&e) {
                    let limit = self.state.config.max_message_bytes;
                    self.close(close_code::SIZE, &format!("frame larger than {limit} bytes")).await;
                }
                Err(Stop::Closed)
            }
            Some(Ok(Message::Text(text))) => self.on_text(&text).await,
            Some(Ok(Message::Binary(_))) => {
                self.send_error("unsupported_frame", "binary frames are not supported; send JSON text").await
            }
            // Pings are answered by the WebSocket layer itself.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
        }
    }

    async fn on_text(&mut self, text: &str) -> Result<(), Stop> {
        let limit = self.state.config.max_frame_bytes;
        if text.len() > limit {
            let message = format!("frame is {} bytes; the limit is {limit}", text.len());
            return self.send_error("frame_too_large", &message).await;
        }
        match ClientFrame::decode(text) {
            Err(e) => self.send_error(e.code, &e.message).await,
            Ok(ClientFrame::Ping) => self.send_frame(&ServerFrame::Pong).await,
            Ok(ClientFrame::Sync) => self.resync().await,
            // The timer closes the connection at expiry, but a bid may arrive in the same instant
            // and be picked first: the clock decides, so no bid is placed after expiry.
            Ok(ClientFrame::PlaceBid(_)) if self.token_expired() => Err(self.expire().await),
            Ok(ClientFrame::PlaceBid(bid)) => {
                let reply = self.on_bid(bid).await;
                self.send_frame(&reply).await
            }
        }
    }

    /// Answers one bid: counted, and logged at debug level (bids are too many for info) with its
    /// `bid_id`, the client's or, when it sent none, the one the server made for it.
    async fn on_bid(&mut self, bid: PlaceBid) -> ServerFrame {
        let bid_id = bid.bid_id.clone().unwrap_or_else(new_bid_id);
        let reply = if !self.bids.take() || !self.state.limits.take_user_bid(&self.user) {
            let limit = self.state.config.bid_rate_per_connection;
            ServerFrame::BidRejected(BidRejected {
                auction_id: self.auction.clone(),
                bid_id: Some(bid_id.clone()),
                reason: RejectReason::RateLimited,
                message: format!("too many bids; at most {limit} a second per connection"),
                min_next_bid: None,
                current_bid: None,
            })
        } else {
            let context =
                BidContext { state: &self.state, user: &self.user, auction: &self.auction, hub: &self.membership.hub };
            context.place_bid(bid, &bid_id).await
        };
        match &reply {
            ServerFrame::BidAccepted(accepted) => {
                if accepted.leading {
                    // A plain bid's max is its amount.
                    self.your_max = Some((accepted.your_max.unwrap_or(accepted.amount), accepted.seq));
                } else if self.your_max.is_some_and(|(_, at)| at <= accepted.seq) {
                    self.your_max = None;
                }
                self.state.metrics.accepted.increment(1);
                tracing::debug!(%bid_id, amount = %accepted.amount, seq = accepted.seq, "bid accepted");
            }
            ServerFrame::BidRejected(rejected) => {
                self.state.metrics.rejected.increment(1);
                tracing::debug!(%bid_id, reason = rejected.reason.as_str(), "bid rejected");
            }
            _ => {}
        }
        reply
    }
}

/// What placing a bid needs from a connection: borrowed apart from the socket, which is not `Sync`.
struct BidContext<'a> {
    state: &'a AppState,
    user: &'a UserId,
    auction: &'a AuctionId,
    hub: &'a Hub,
}

impl BidContext<'_> {
    /// Places `bid` under `bid_id`, the client's or one made for it.
    async fn place_bid(&self, bid: PlaceBid, bid_id: &BidId) -> ServerFrame {
        let client_bid_id = bid.bid_id.is_some();
        let reject = |reason, message: String, min_next_bid, current_bid| {
            ServerFrame::BidRejected(BidRejected {
                auction_id: self.auction.clone(),
                bid_id: Some(bid_id.clone()),
                reason,
                message,
                min_next_bid,
                current_bid,
            })
        };
        let max_bid = self.state.config.max_bid;
        let amount = match bid.amount.0 {
            Ok(amount) if amount <= max_bid => amount,
            Ok(amount) => {
                return reject(
                    RejectReason::InvalidAmount,
                    format!("amount {amount} is above the maximum of {max_bid}"),
                    None,
                    None,
                );
            }
            Err(e) => return reject(RejectReason::InvalidAmount, e.to_string(), None, None),
        };
        let max_amount = match bid.max_amount.map(|max| max.0) {
            None => None,
            Some(Ok(max)) if max > max_bid => {
                let message = format!("max_amount {max} is above the maximum of {max_bid}");
                return reject(RejectReason::InvalidAmount, message, None, None);
            }
            Some(Ok(max)) if max < amount => {
                let message = format!("max_amount {max} is below amount {amount}");
                return reject(RejectReason::InvalidAmount, message, None, None);
            }
            Some(Ok(max)) => Some(max),
            Some(Err(e)) => return reject(RejectReason::InvalidAmount, format!("max_amount: {e}"), None, None),
        };
        // The early reject: prices only rise, so a bid at or under a price this node has seen is
        // certainly too low. Not for bids with a client id, which may be retries of a bid that
        // was accepted and must get that outcome again from the script; nor for bids with a max,
        // which from the leader raise it whatever the amount.
        if !client_bid_id
            && max_amount.is_none()
            && let Some(current) = self.hub.current_bid().filter(|current| amount <= *current)
        {
            let rules = self.state.hubs.rules();
            return match rules.table.min_next_bid_up_to(current, Some(current), max_bid) {
                Some(min_next) => {
                    reject(RejectReason::BidTooLow, too_low_message(min_next), Some(min_next), Some(current))
                }
                None => reject(RejectReason::MaxBidReached, max_bid_message(), None, Some(current)),
            };
        }
        let placed = self.place_with_rules(amount, max_amount, bid_id, client_bid_id).await;
        match placed {
            Ok(BidOutcome::Accepted(accepted)) => match ms_to_time(accepted.end_ms) {
                Ok(end_time) => {
                    if accepted.bought_now {
                        self.close_bought(accepted.created_ms).await;
                    }
                    let shown = |price: Option<Amount>| price.filter(|_| accepted.shows_prices);
                    ServerFrame::BidAccepted(BidAccepted {
                        auction_id: self.auction.clone(),
                        bid_id: bid_id.clone(),
                        amount: accepted.amount,
                        seq: accepted.seq,
                        end_time,
                        leading: accepted.leading,
                        current_bid: shown(Some(accepted.current)),
                        min_next_bid: shown(accepted.min_next),
                        your_max: accepted.your_max,
                        bought_now: accepted.bought_now,
                    })
                }
                Err(e) => unavailable(reject, bid_id, e),
            },
            Ok(BidOutcome::Rejected { reason, current, min_next }) => {
                reject(reason, reject_message(reason, min_next), min_next, current)
            }
            Ok(BidOutcome::StaleRules { applied }) => {
                let held = self.state.hubs.rules().version;
                tracing::warn!(%bid_id, held, applied, "the increment table changed again while the bid was placed");
                reject(RejectReason::Unavailable, reject_message(RejectReason::Unavailable, None), None, None)
            }
            Err(e) => unavailable(reject, bid_id, e),
        }
    }

    /// After a bid bought the auction (it has ended in Redis): its deadline entry goes and its
    /// status index entry moves to `ended`. Best effort: the scheduler drops the deadline entry
    /// when it comes due (the auction answers `final`), and list readers move an entry left
    /// behind. A retry of the buy does it again, harmlessly.
    async fn close_bought(&self, created_ms: Option<i64>) {
        let store = &self.state.store;
        if let Err(e) = store.unschedule(self.auction).await {
            tracing::warn!(error = %e, "cannot remove the bought auction's deadline; the scheduler drops it when due");
        }
        match created_ms {
            Some(created_ms) => store.index_status_or_warn(self.auction, AuctionStatus::Ended, created_ms).await,
            None => tracing::warn!(
                "a buy's outcome without the auction's creation time; its status index entry waits for a reader"
            ),
        }
    }

    /// Runs the bid script with the increment table this node holds. If the auction has already
    /// been judged by a newer table (a change this node has not heard of yet), re-reads the table
    /// and runs it once more, so that the bid is judged by the newest one: the client never sees
    /// the difference. If the re-read finds nothing newer, the newer table is gone from Redis (a
    /// failover lost it), and the one there now is applied.
    async fn place_with_rules(
        &self,
        amount: Amount,
        max_amount: Option<Amount>,
        bid_id: &BidId,
        keep_outcome: bool,
    ) -> Result<BidOutcome, StoreError> {
        let (max_bid, hubs) = (self.state.config.max_bid, &self.state.hubs);
        let place = |rules: Arc<RulesInForce>, older_rules: bool| async move {
            let bid = NewBid {
                auction: self.auction,
                bidder: self.user,
                bid_id,
                amount,
                max_amount,
                rules: &rules,
                max_bid,
                older_rules,
                keep_outcome,
            };
            self.state.store.place_bid(&bid).await
        };
        let first = place(hubs.rules(), false).await?;
        let BidOutcome::StaleRules { applied } = first else { return Ok(first) };
        hubs.reload_rules().await?;
        let rules = hubs.rules();
        let older_rules = rules.version < applied;
        if older_rules {
            tracing::warn!(
                held = rules.version,
                applied,
                "an auction was judged by a newer increment table than redis holds"
            );
        }
        place(rules, older_rules).await
    }
}

impl Connection {
    async fn resync(&mut self) -> Result<(), Stop> {
        let loaded = super::find(&self.state, &self.auction).await;
        let rules = self.state.hubs.rules();
        let max_bid = self.state.config.max_bid;
        let user = &self.user;
        match loaded.and_then(|record| {
            record.map(|r| r.snapshot_for(user, &rules.table, max_bid)).transpose().map_err(ApiError::from)
        }) {
            Ok(Some(snapshot)) => self.send_snapshot(snapshot).await,
            Ok(None) => self.send_error("auction_not_found", "the auction no longer exists").await,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read snapshot");
                self.send_error("unavailable", "cannot read the auction right now; send sync to retry").await
            }
        }
    }

    /// Sends a snapshot read for this bidder, and learns from it the bidder's max (or that it
    /// does not lead).
    async fn send_snapshot(&mut self, snapshot: Snapshot) -> Result<(), Stop> {
        self.last_seq = self.last_seq.max(snapshot.seq);
        if self.your_max.is_none_or(|(_, at)| at <= snapshot.seq) {
            self.your_max = snapshot.your_max.map(|max| (max, snapshot.seq));
        }
        self.send_frame(&ServerFrame::Snapshot(snapshot)).await
    }

    async fn send_error(&mut self, code: &str, message: &str) -> Result<(), Stop> {
        self.send_frame(&ServerFrame::Error(ErrorFrame { code: code.to_owned(), message: message.to_owned() })).await
    }

    async fn send_frame(&mut self, frame: &ServerFrame) -> Result<(), Stop> {
        self.send_text(encode(frame)).await
    }

    async fn send_text(&mut self, text: Utf8Bytes) -> Result<(), Stop> {
        self.send(Message::Text(text)).await
    }

    /// Sends one message, giving up on a client that does not take it within the send timeout.
    async fn send(&mut self, message: Message) -> Result<(), Stop> {
        match tokio::time::timeout(self.state.config.send_timeout, self.socket.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stop::SendFailed),
            Err(_) => {
                tracing::debug!(user = %self.user, "client took no frame within the send timeout; dropping it");
                self.state.metrics.slow_dropped.increment(1);
                Err(Stop::SendFailed)
            }
        }
    }

    /// The closing handshake's second half: reads (and drops) what the client still sends until
    /// its Close, for at most a second, so that the client reads our Close before the socket goes.
    async fn await_close_reply(&mut self) {
        let drain = async {
            while let Some(Ok(message)) = self.socket.recv().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
    }

    fn token_expired(&self) -> bool {
        self.token_exp.is_some_and(|exp| unix_now() >= Duration::from_secs(exp))
    }

    /// Ends a connection whose token expired: an `error` frame saying so, then the close
    /// [`TOKEN_EXPIRED_CLOSE`], for clients that read only one of them.
    async fn expire(&mut self) -> Stop {
        self.state.metrics.token_expired.increment(1);
        let message = "your token has expired; connect again with a new one";
        if self.send_error(TOKEN_EXPIRED, message).await.is_ok() {
            self.close(TOKEN_EXPIRED_CLOSE, "token expired").await;
            self.await_close_reply().await;
        }
        Stop::TokenExpired
    }

    async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame { code, reason: Utf8Bytes::from(reason) };
        let _ =
            tokio::time::timeout(self.state.config.send_timeout, self.socket.send(Message::Close(Some(frame)))).await;
    }
}

/// The time since the Unix epoch by this node's clock, the clock that token expiries are
/// checked against at connect.
fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Completes when a token expiring at `exp` (seconds since the Unix epoch) runs out; never
/// without one.
async fn until_expiry(exp: Option<u64>) {
    match exp {
        Some(exp) => tokio::time::sleep(Duration::from_secs(exp).saturating_sub(unix_now())).await,
        None => std::future::pending().await,
    }
}

fn new_bid_id() -> BidId {
    let id = format!("srv-{}", uuid::Uuid::new_v4().simple());
    BidId::parse(&id).unwrap_or_else(|_| unreachable!("generated ids are valid"))
}

fn unavailable<F: Fn(RejectReason, String, Option<Amount>, Option<Amount>) -> ServerFrame>(
    reject: F,
    bid_id: &BidId,
    error: StoreError,
) -> ServerFrame {
    tracing::warn!(%bid_id, error = %error, "bid failed: store unavailable");
    reject(RejectReason::Unavailable, "bidding is unavailable right now; try again".to_owned(), None, None)
}

/// The text does not mention the bid's amount: a retry with the same `bid_id` must get the very
/// same answer, whatever amount it carries.
fn too_low_message(min_next: Amount) -> String {
    format!("the minimum bid is {min_next}")
}

fn reject_message(reason: RejectReason, min_next: Option<Amount>) -> String {
    match reason {
        RejectReason::BidTooLow => match min_next {
            Some(min_next) => too_low_message(min_next),
            None => "the bid is too low".to_owned(),
        },
        RejectReason::AuctionNotStarted => "the auction has not started yet".to_owned(),
        RejectReason::AuctionEnded => "the auction has ended".to_owned(),
        RejectReason::AuctionCancelled => "the auction was cancelled".to_owned(),
        RejectReason::AuctionNotFound => "the auction does not exist".to_owned(),
        RejectReason::AlreadyHighestBidder => "you already hold the highest bid".to_owned(),
        RejectReason::InvalidAmount => "the amount is not valid".to_owned(),
        RejectReason::RateLimited => "too many bids; slow down".to_owned(),
        RejectReason::Unavailable => "bidding is unavailable right now; try again".to_owned(),
        RejectReason::MaxBidReached => max_bid_message(),
    }
}

/// Names no amount, like every stored verdict's text: a node with another `MAX_BID` replays it.
fn max_bid_message() -> String {
    "the bids have reached the maximum; no higher bid can be placed".to_owned()
}

/// Whether a read failed because the client sent a message over the size limit.
fn is_too_big(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(tungstenite::Error::Capacity(_)) = e.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}
