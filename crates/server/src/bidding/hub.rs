//! Per-node fan-out. Each auction with watchers on this node has one [`Hub`]; the live listener
//! hands it every event of its auction, and the hub turns each change of state into frames once
//! and broadcasts them to its watchers.
//!
//! Invariants:
//! - A hub forwards events in `seq` order with no gap. On a gap (pub/sub dropped a message) or a
//!   request to resync, it reads a fresh snapshot and broadcasts that instead, then replays the
//!   events that arrived meanwhile and are newer than the snapshot.
//! - The broadcast channel is bounded: a watcher that falls behind gets `Lagged` and resyncs
//!   itself from a snapshot; nobody waits for it.
//! - The cached current bid never runs ahead of Redis, so `amount <= cached` is certainly too low.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use auction_proto::ws::{AuctionCancelled, AuctionEnded, AuctionExtended, AuctionStarted, BidPlaced, ServerFrame};
use auction_proto::{Amount, AuctionId, BidId, BidRules, UserId};
use axum::extract::ws::Utf8Bytes;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store::record::{ms_to_time, us_to_time};
use crate::store::{LiveMessage, Store, StoreError};
use crate::sync::lock;

/// One change of state, already encoded: the frames all share the auction version `seq`.
#[derive(Debug)]
pub struct Outbound {
    pub seq: u64,
    pub frames: Vec<Utf8Bytes>,
    /// A resync snapshot: shown even to a watcher already at `seq`, since what it carries besides
    /// the auction's own state (such as `min_next_bid` under new rules) may have changed.
    pub snapshot: bool,
}

/// A change of an auction's state as it arrives from pub/sub, checked and typed.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    pub auction_id: AuctionId,
    pub seq: u64,
    pub kind: EventKind,
}

#[derive(Debug, Clone)]
pub enum EventKind {
    Bid { bid_id: BidId, bidder: UserId, amount: Amount, bid_count: u64, placed_us: i64, end_ms: i64, prev_end_ms: i64 },
    Started { end_ms: i64 },
    Ended { winner: Option<UserId>, final_price: Option<Amount> },
    Extended { end_ms: i64, prev_end_ms: i64 },
    Cancelled,
}

impl LiveEvent {
    /// The event a message describes; `None` for messages that are not auction events (rules,
    /// deadlines) or whose fields do not parse.
    pub fn from_message(message: LiveMessage) -> Option<LiveEvent> {
        let amount = |text: &str| text.parse().ok().and_then(Amount::from_cents);
        let (auction_id, seq, kind) = match message {
            LiveMessage::Bid(bid) => (
                bid.auction_id,
                bid.seq,
                EventKind::Bid {
                    bid_id: BidId::parse(&bid.bid_id).ok()?,
                    bidder: UserId::parse(&bid.bidder).ok()?,
                    amount: amount(&bid.amount)?,
                    bid_count: bid.bid_count.parse().ok()?,
                    placed_us: bid.placed_us.parse().ok()?,
                    end_ms: bid.end_ms.parse().ok()?,
                    prev_end_ms: bid.prev_end_ms.parse().ok()?,
                },
            ),
            LiveMessage::Started { auction_id, seq, end_ms } => {
                (auction_id, seq, EventKind::Started { end_ms: end_ms.parse().ok()? })
            }
            LiveMessage::Ended { auction_id, seq, winner, final_price, .. } => {
                let winner = if winner.is_empty() { None } else { Some(UserId::parse(&winner).ok()?) };
                let final_price = if final_price.is_empty() { None } else { Some(amount(&final_price)?) };
                (auction_id, seq, EventKind::Ended { winner, final_price })
            }
            LiveMessage::Extended { auction_id, seq, end_ms, prev_end_ms } => (
                auction_id,
                seq,
                EventKind::Extended { end_ms: end_ms.parse().ok()?, prev_end_ms: prev_end_ms.parse().ok()? },
            ),
            LiveMessage::Cancelled { auction_id, seq } => (auction_id, seq, EventKind::Cancelled),
            LiveMessage::Rules | LiveMessage::Deadline => return None,
        };
        Some(LiveEvent { auction_id: AuctionId::parse(&auction_id).ok()?, seq: seq.parse().ok()?, kind })
    }

    /// The frames watchers get for this event.
    fn frames(&self, min_next_bid: Option<Amount>) -> Option<Vec<Utf8Bytes>> {
        let auction_id = self.auction_id.clone();
        let seq = self.seq;
        let extended = |end_ms: i64, prev_end_ms: i64| -> Option<Utf8Bytes> {
            Some(encode(&ServerFrame::AuctionExtended(AuctionExtended {
                auction_id: auction_id.clone(),
                end_time: ms_to_time(end_ms).ok()?,
                previous_end_time: ms_to_time(prev_end_ms).ok()?,
                seq,
            })))
        };
        Some(match &self.kind {
            EventKind::Bid { bid_id, bidder, amount, bid_count, placed_us, end_ms, prev_end_ms } => {
                let mut frames = vec![encode(&ServerFrame::BidPlaced(BidPlaced {
                    auction_id: auction_id.clone(),
                    bid_id: bid_id.clone(),
                    amount: *amount,
                    bidder: bidder.clone(),
                    seq,
                    end_time: ms_to_time(*end_ms).ok()?,
                    bid_count: *bid_count,
                    placed_at: us_to_time(*placed_us).ok()?,
                    min_next_bid,
                }))];
                if end_ms != prev_end_ms {
                    frames.push(extended(*end_ms, *prev_end_ms)?);
                }
                frames
            }
            EventKind::Extended { end_ms, prev_end_ms } => vec![extended(*end_ms, *prev_end_ms)?],
            EventKind::Started { end_ms } => vec![encode(&ServerFrame::AuctionStarted(AuctionStarted {
                auction_id,
                seq,
                end_time: ms_to_time(*end_ms).ok()?,
            }))],
            EventKind::Ended { winner, final_price } => vec![encode(&ServerFrame::AuctionEnded(AuctionEnded {
                auction_id,
                winner: winner.clone(),
                final_price: *final_price,
                seq,
            }))],
            EventKind::Cancelled => {
                vec![encode(&ServerFrame::AuctionCancelled(AuctionCancelled { auction_id, seq }))]
            }
        })
    }
}

/// The increment table this node applies, replaced whole when it changes.
#[derive(Clone, Default)]
pub struct RulesCache(Arc<RwLock<Arc<BidRules>>>);

impl RulesCache {
    pub fn get(&self) -> Arc<BidRules> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Installs `rules`; true if they differ from the ones held.
    pub fn set(&self, rules: BidRules) -> bool {
        let mut guard = match self.0.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let changed = **guard != rules;
        *guard = Arc::new(rules);
        changed
    }
}

/// Every hub of this node.
#[derive(Clone)]
pub struct Hubs {
    inner: Arc<HubsInner>,
}

struct HubsInner {
    // A std Mutex, not a tokio one: nothing is awaited while it is held.
    map: Mutex<HashMap<AuctionId, Arc<Hub>>>,
    store: Store,
    rules: RulesCache,
    capacity: usize,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

pub struct Hub {
    id: AuctionId,
    tx: broadcast::Sender<Arc<Outbound>>,
    state: Mutex<HubState>,
}

struct HubState {
    watchers: usize,
    sync: Sync,
    current_bid: Option<Amount>,
    starting_bid: Option<Amount>,
}

enum Sync {
    /// Waiting for a snapshot; events that arrive meanwhile wait here. `announce` is false only
    /// for a new hub, whose watchers each read their own snapshot when they joined.
    Syncing {
        pending: Vec<LiveEvent>,
        again: bool,
        announce: bool,
    },
    Live {
        last_seq: u64,
    },
}

/// A watcher's place in a hub; leaving (on drop) removes the hub with its last watcher.
pub struct Membership {
    pub hub: Arc<Hub>,
    pub events: broadcast::Receiver<Arc<Outbound>>,
    hubs: Hubs,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hubs.leave(&self.hub);
    }
}

impl Hubs {
    pub fn new(
        store: Store,
        rules: RulesCache,
        capacity: usize,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Hubs {
        Hubs { inner: Arc::new(HubsInner { map: Mutex::default(), store, rules, capacity, tracker, shutdown }) }
    }

    /// Joins the hub of `id`, creating it (and starting its first sync) if this is its first watcher.
    pub fn join(&self, id: &AuctionId) -> Membership {
        let (hub, created) = {
            let mut map = lock(&self.inner.map);
            let mut created = false;
            let hub = map
                .entry(id.clone())
                .or_insert_with(|| {
                    created = true;
                    Arc::new(Hub {
                        id: id.clone(),
                        tx: broadcast::channel(self.inner.capacity.max(1)).0,
                        state: Mutex::new(HubState {
                            watchers: 0,
                            sync: Sync::Syncing { pending: Vec::new(), again: false, announce: false },
                            current_bid: None,
                            starting_bid: None,
                        }),
                    })
                })
                .clone();
            lock(&hub.state).watchers += 1;
            (hub, created)
        };
        let events = hub.tx.subscribe();
        if created {
            self.spawn_sync(hub.clone());
        }
        Membership { hub, events, hubs: self.clone() }
    }

    fn leave(&self, hub: &Arc<Hub>) {
        let mut map = lock(&self.inner.map);
        let mut state = lock(&hub.state);
        state.watchers = state.watchers.saturating_sub(1);
        if state.watchers == 0 && map.get(&hub.id).is_some_and(|h| Arc::ptr_eq(h, hub)) {
            map.remove(&hub.id);
        }
    }

    pub fn rules(&self) -> Arc<BidRules> {
        self.inner.rules.get()
    }

    /// Hands an accepted bid to its auction's hub, if this node has one.
    pub fn dispatch(&self, event: LiveEvent) {
        let bid = event;
        let hub = lock(&self.inner.map).get(&bid.auction_id).cloned();
        let Some(hub) = hub else { return };
        let mut state = lock(&hub.state);
        match &mut state.sync {
            Sync::Syncing { pending, .. } => pending.push(bid),
            Sync::Live { last_seq } if bid.seq <= *last_seq => {}
            Sync::Live { last_seq } if bid.seq == *last_seq + 1 => {
                *last_seq = bid.seq;
                self.publish(&hub, &mut state, &bid);
            }
            Sync::Live { last_seq } => {
                tracing::debug!(auction = %hub.id, expected = *last_seq + 1, got = bid.seq, "gap in live events; resyncing");
                state.sync = Sync::Syncing { pending: vec![bid], again: false, announce: true };
                drop(state);
                self.spawn_sync(hub.clone());
            }
        }
    }

    /// Resyncs every hub from a snapshot: after the live feed was interrupted (events may be
    /// lost) or the rules changed (every `min_next_bid` may differ).
    pub fn resync_all(&self) {
        let hubs: Vec<Arc<Hub>> = lock(&self.inner.map).values().cloned().collect();
        for hub in hubs {
            let mut state = lock(&hub.state);
            match &mut state.sync {
                Sync::Syncing { again, .. } => *again = true,
                Sync::Live { .. } => {
                    state.sync = Sync::Syncing { pending: Vec::new(), again: false, announce: true };
                    drop(state);
                    self.spawn_sync(hub.clone());
                }
            }
        }
    }

    fn publish(&self, hub: &Hub, state: &mut HubState, event: &LiveEvent) {
        let mut min_next_bid = None;
        if let EventKind::Bid { amount, .. } = &event.kind {
            state.current_bid = Some(*amount);
            min_next_bid = state.starting_bid.map(|start| self.rules().min_next_bid(start, Some(*amount)));
        }
        let Some(frames) = event.frames(min_next_bid) else {
            return tracing::warn!(auction = %hub.id, seq = event.seq, "event with unrepresentable times");
        };
        // No receivers is fine: the last watcher may be leaving.
        let _ = hub.tx.send(Arc::new(Outbound { seq: event.seq, frames, snapshot: false }));
    }

    fn spawn_sync(&self, hub: Arc<Hub>) {
        let hubs = self.clone();
        self.inner.tracker.spawn(async move { hubs.sync(hub).await });
    }

    /// Reads a snapshot until the hub is consistent again, retrying with backoff while Redis fails.
    async fn sync(&self, hub: Arc<Hub>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if lock(&hub.state).watchers == 0 || self.inner.shutdown.is_cancelled() {
                return;
            }
            let loaded = self.inner.store.load(&hub.id).await;
            let rules = self.rules();
            let record = match loaded {
                Ok(Some(record)) => record,
                Ok(None) => {
                    lock(&hub.state).sync = Sync::Live { last_seq: 0 };
                    return;
                }
                Err(e) => {
                    tracing::warn!(auction = %hub.id, error = %e, "cannot read snapshot; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.inner.shutdown.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            let mut state = lock(&hub.state);
            let Sync::Syncing { pending, again, announce } = &mut state.sync else { return };
            if std::mem::take(again) {
                *announce = true;
                continue;
            }
            let announce = *announce;
            let mut pending = std::mem::take(pending);
            let snapshot = match record.snapshot(&rules) {
                Ok(snapshot) => snapshot,
                Err(e) => {
                    tracing::error!(auction = %hub.id, error = %e, "unreadable auction");
                    state.sync = Sync::Live { last_seq: record.seq };
                    return;
                }
            };
            state.current_bid = record.current_bid;
            state.starting_bid = Some(record.starting_bid);
            if announce {
                let frames = vec![encode(&ServerFrame::Snapshot(snapshot))];
                let _ = hub.tx.send(Arc::new(Outbound { seq: record.seq, frames, snapshot: true }));
            }
            pending.sort_by_key(|bid| bid.seq);
            let mut last_seq = record.seq;
            let mut rest = pending.into_iter().filter(|bid| bid.seq > record.seq).peekable();
            while let Some(bid) = rest.next_if(|bid| bid.seq == last_seq + 1) {
                last_seq = bid.seq;
                self.publish(&hub, &mut state, &bid);
            }
            let rest: Vec<LiveEvent> = rest.collect();
            if rest.is_empty() {
                state.sync = Sync::Live { last_seq };
                return;
            }
            // Still a gap: those events were published after our read, so read again.
            state.sync = Sync::Syncing { pending: rest, again: false, announce: true };
        }
    }
}

impl Hub {
    /// The highest bid this node has seen; never above the real one.
    pub fn current_bid(&self) -> Option<Amount> {
        lock(&self.state).current_bid
    }
}

pub fn encode(frame: &ServerFrame) -> Utf8Bytes {
    Utf8Bytes::from(frame.encode())
}

/// Re-reads the increment table; true if it changed.
pub async fn reload_rules(store: &Store, rules: &RulesCache) -> Result<bool, StoreError> {
    Ok(rules.set(store.rules().await?))
}
