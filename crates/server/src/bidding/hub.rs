//! Per-node fan-out. Each auction with watchers on this node has one [`Hub`]; the live listener
//! hands it every event of its auction, and the hub turns each change of state into frames once
//! and broadcasts them to its watchers.
//!
//! Invariants:
//! - A node is subscribed to the live channel of exactly the auctions it has hubs for: the hub's
//!   first watcher subscribes (before any watcher reads its snapshot, so no event after that
//!   snapshot is missed) and its last watcher unsubscribes. Both are queued under the map's lock,
//!   so they reach Redis in the order the hub came and went.
//! - A new hub starts from its first watcher's own snapshot (`Membership::seed`), not from one
//!   of its own read at another moment: it forwards every event after the version that watcher
//!   was shown. A watcher whose snapshot is older than that reads another before it starts.
//! - A hub forwards events in `seq` order with no gap. On a gap (pub/sub dropped a message) or a
//!   request to resync, it reads a fresh snapshot and broadcasts that instead, then replays the
//!   events that arrived meanwhile and are newer than the snapshot. The pure [`Sequencer`] decides
//!   each step; the hub carries it out.
//! - The broadcast channel is bounded: a watcher that falls behind gets `Lagged` and resyncs
//!   itself from a snapshot; nobody waits for it.
//! - The cached current bid never runs ahead of Redis, so `amount <= cached` is certainly too low.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use auction_proto::ws::{
    AuctionCancelled, AuctionEnded, AuctionExtended, AuctionStarted, BidPlaced, ServerFrame, Snapshot as WireSnapshot,
};
use auction_proto::{Amount, AuctionId, UserId};
use axum::extract::ws::Utf8Bytes;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::sequencer::{Arrival, Seed, Sequencer, Snapshot};
use crate::store::stored::{StoredAuction, ms_to_time, us_to_time};
use crate::store::{Event, Feed, RulesInForce, Store, StoreError};
use crate::sync::lock;

/// One change of state, already encoded: the frames all share the auction version `seq`.
#[derive(Debug)]
pub struct Outbound {
    pub seq: u64,
    pub frames: Vec<Utf8Bytes>,
    /// A resync snapshot (the one frame), as no watcher's own: shown even to a watcher already at
    /// `seq`, since what it carries besides the auction's own state (such as `min_next_bid` under
    /// new rules) may have changed. The leader's connections show it with the max they know.
    pub snapshot: Option<WireSnapshot>,
    /// Who leads after a price change: a connection that knew its own max forgets it once
    /// someone else leads.
    pub leader: Option<UserId>,
}

/// The frames watchers get for `event`; `None` for the creation and a raise of a max (never
/// live) or times out of range.
fn frames(event: &Event, min_next_bid: Option<Amount>) -> Option<Vec<Utf8Bytes>> {
    let extended = |auction_id: &AuctionId, seq: u64, end_ms: i64, prev_end_ms: i64| -> Option<Utf8Bytes> {
        Some(encode(&ServerFrame::AuctionExtended(AuctionExtended {
            auction_id: auction_id.clone(),
            end_time: ms_to_time(end_ms).ok()?,
            previous_end_time: ms_to_time(prev_end_ms).ok()?,
            seq,
        })))
    };
    Some(match event {
        Event::Bid(bid) => {
            let mut frames = vec![encode(&ServerFrame::BidPlaced(BidPlaced {
                auction_id: bid.auction_id.clone(),
                bid_id: bid.bid_id.clone(),
                amount: bid.amount,
                bidder: bid.bidder.clone(),
                seq: bid.seq,
                end_time: ms_to_time(bid.end_ms).ok()?,
                bid_count: bid.bid_count,
                placed_at: us_to_time(bid.placed_us).ok()?,
                min_next_bid,
                auto: bid.auto,
                placed_by: bid.placed_by.clone(),
                reserve_met: bid.reserve_met,
            }))];
            // Later only: a buy moves the close earlier, to the buy, and its end follows.
            if bid.end_ms > bid.prev_end_ms {
                frames.push(extended(&bid.auction_id, bid.seq, bid.end_ms, bid.prev_end_ms)?);
            }
            frames
        }
        Event::Extended(e) => vec![extended(&e.auction_id, e.seq, e.end_ms, e.prev_end_ms)?],
        Event::Started(e) => vec![encode(&ServerFrame::AuctionStarted(AuctionStarted {
            auction_id: e.auction_id.clone(),
            seq: e.seq,
            end_time: ms_to_time(e.end_ms).ok()?,
        }))],
        Event::Ended(e) => vec![encode(&ServerFrame::AuctionEnded(AuctionEnded {
            auction_id: e.auction_id.clone(),
            winner: e.winner.clone(),
            final_price: e.final_price,
            seq: e.seq,
            reserve_met: e.reserve_met,
            bought_now: e.bought_now,
        }))],
        Event::Cancelled(e) => {
            vec![encode(&ServerFrame::AuctionCancelled(AuctionCancelled {
                auction_id: e.auction_id.clone(),
                seq: e.seq,
            }))]
        }
        Event::Created(_) | Event::MaxRaised(_) => return None,
    })
}

/// The increment table this node applies, with its version, replaced whole when it changes.
#[derive(Clone, Default)]
pub struct RulesCache(Arc<RwLock<Arc<RulesInForce>>>);

impl RulesCache {
    pub fn get(&self) -> Arc<RulesInForce> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Installs `rules`; true if the table differs from the one held (a new version of the same
    /// table changes no `min_next_bid`, so it asks for no snapshots).
    pub fn set(&self, rules: RulesInForce) -> bool {
        let mut guard = match self.0.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let changed = guard.table != rules.table;
        if **guard != rules {
            *guard = Arc::new(rules);
        }
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
    /// The live subscription's channels: one per hub.
    feed: Feed,
    rules: RulesCache,
    /// `MAX_BID`: no `min_next_bid` shown is above it.
    max_bid: Amount,
    capacity: usize,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

pub struct Hub {
    id: AuctionId,
    tx: broadcast::Sender<Arc<Outbound>>,
    state: Mutex<HubState>,
    /// True once the node's subscription to this auction's live channel was answered (confirmed,
    /// or refused while Redis is away, when the re-subscription's resync covers it).
    subscribed: watch::Sender<bool>,
}

struct HubState {
    watchers: usize,
    sequencer: Sequencer,
    current_bid: Option<Amount>,
    starting_bid: Option<Amount>,
}

/// A watcher's place in a hub; leaving (on drop) removes the hub with its last watcher.
pub struct Membership {
    pub hub: Arc<Hub>,
    pub events: broadcast::Receiver<Arc<Outbound>>,
    hubs: Hubs,
}

impl Membership {
    /// Waits until the node listens on this auction's live channel, so that a snapshot read
    /// afterwards is followed by every later event.
    pub async fn subscribed(&self) {
        let mut subscribed = self.hub.subscribed.subscribe();
        let _ = subscribed.wait_for(|subscribed| *subscribed).await;
    }

    /// Hands the hub the snapshot this watcher is about to be shown, read after
    /// [`subscribed`](Membership::subscribed): a new hub starts from it. False if it is older
    /// than the hub's start, so events after it may never come: read another.
    pub fn seed(&self, record: &StoredAuction) -> bool {
        self.hubs.seed(&self.hub, record)
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hubs.leave(&self.hub);
    }
}

impl Hubs {
    pub fn new(
        store: Store,
        feed: Feed,
        rules: RulesCache,
        max_bid: Amount,
        capacity: usize,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Hubs {
        let inner = HubsInner { map: Mutex::default(), store, feed, rules, max_bid, capacity, tracker, shutdown };
        Hubs { inner: Arc::new(inner) }
    }

    /// Joins the hub of `id`, creating it (and subscribing to its channel) if this is its first
    /// watcher.
    pub fn join(&self, id: &AuctionId) -> Membership {
        let (hub, subscribed) = {
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
                            sequencer: Sequencer::new(),
                            current_bid: None,
                            starting_bid: None,
                        }),
                        subscribed: watch::Sender::new(false),
                    })
                })
                .clone();
            lock(&hub.state).watchers += 1;
            (hub, created.then(|| self.inner.feed.subscribe(self.inner.store.live_channel(id))))
        };
        let events = hub.tx.subscribe();
        if let Some(subscribed) = subscribed {
            let hub = hub.clone();
            self.inner.tracker.spawn(async move {
                // Not subscribed (Redis is away): the channel stays wanted, and the subscription
                // announces its return, which resyncs every hub; the watchers' snapshots may still work.
                if let Err(e) = subscribed.await {
                    tracing::warn!(auction = %hub.id, error = %e, "cannot subscribe to the live channel yet");
                }
                hub.subscribed.send_replace(true);
            });
        }
        Membership { hub, events, hubs: self.clone() }
    }

    fn seed(&self, hub: &Arc<Hub>, record: &StoredAuction) -> bool {
        let mut state = lock(&hub.state);
        match state.sequencer.seed(record.seq) {
            Seed::Apply { events, settled } => {
                state.current_bid = record.current_bid;
                state.starting_bid = Some(record.starting_bid);
                for event in &events {
                    self.publish(hub, &mut state, event);
                }
                if !settled {
                    drop(state);
                    self.spawn_sync(hub.clone());
                }
                true
            }
            Seed::Covered => true,
            Seed::Behind => false,
        }
    }

    fn leave(&self, hub: &Arc<Hub>) {
        let mut map = lock(&self.inner.map);
        let mut state = lock(&hub.state);
        state.watchers = state.watchers.saturating_sub(1);
        if state.watchers == 0 && map.get(&hub.id).is_some_and(|h| Arc::ptr_eq(h, hub)) {
            map.remove(&hub.id);
            self.inner.feed.unsubscribe(self.inner.store.live_channel(&hub.id));
        }
    }

    pub fn rules(&self) -> Arc<RulesInForce> {
        self.inner.rules.get()
    }

    pub fn max_bid(&self) -> Amount {
        self.inner.max_bid
    }

    /// Re-reads the increment table and, if it changed, resyncs every hub (every `min_next_bid`
    /// may differ); true if it changed.
    pub async fn reload_rules(&self) -> Result<bool, StoreError> {
        let changed = reload_rules(&self.inner.store, &self.inner.rules).await?;
        if changed {
            self.resync_all();
        }
        Ok(changed)
    }

    /// Hands an event to its auction's hub, if this node has one.
    pub fn dispatch(&self, event: Event) {
        let hub = lock(&self.inner.map).get(event.auction_id()).cloned();
        let Some(hub) = hub else { return };
        let mut state = lock(&hub.state);
        let seq = event.seq();
        match state.sequencer.arrive(event) {
            Arrival::Hold => {}
            Arrival::Forward(event) => self.publish(&hub, &mut state, &event),
            Arrival::Resync => {
                tracing::debug!(auction = %hub.id, got = seq, "gap in live events; resyncing");
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
            if lock(&hub.state).sequencer.resync() {
                self.spawn_sync(hub.clone());
            }
        }
    }

    fn publish(&self, hub: &Hub, state: &mut HubState, event: &Event) {
        let (mut min_next_bid, mut leader) = (None, None);
        if let Event::Bid(bid) = event {
            state.current_bid = Some(bid.amount);
            leader = Some(bid.bidder.clone());
            // A bid at or past the close it leaves (a buy-it-now) ended the auction: no next bid.
            let closed = bid.end_ms.saturating_mul(1000) <= bid.placed_us;
            min_next_bid = state
                .starting_bid
                .filter(|_| !closed)
                .map(|start| self.rules().table.shown_min_next_bid(start, Some(bid.amount), self.max_bid()));
        }
        let Some(frames) = frames(event, min_next_bid) else {
            return tracing::warn!(auction = %hub.id, seq = event.seq(), kind = event.kind(), "event not shown live");
        };
        // No receivers is fine: the last watcher may be leaving.
        let _ = hub.tx.send(Arc::new(Outbound { seq: event.seq(), frames, snapshot: None, leader }));
    }

    fn spawn_sync(&self, hub: Arc<Hub>) {
        let hubs = self.clone();
        self.inner.tracker.spawn(async move { hubs.sync(hub).await });
    }

    /// Reads a snapshot until the hub is consistent again, retrying with backoff while Redis fails.
    async fn sync(&self, hub: Arc<Hub>) {
        let mut backoff = crate::retry::backoff();
        loop {
            if lock(&hub.state).watchers == 0 || self.inner.shutdown.is_cancelled() {
                return;
            }
            let loaded = self.inner.store.load(&hub.id).await;
            let rules = self.rules();
            let record = match loaded {
                Ok(Some(record)) => record,
                Ok(None) => return lock(&hub.state).sequencer.give_up(0),
                Err(e) => {
                    tracing::warn!(auction = %hub.id, error = %e, "cannot read snapshot; retrying");
                    if !crate::retry::pause(&mut backoff, &self.inner.shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            let snapshot = match record.snapshot(&rules.table, self.max_bid()) {
                Ok(snapshot) => snapshot,
                Err(e) => {
                    tracing::error!(auction = %hub.id, error = %e, "unreadable auction");
                    return lock(&hub.state).sequencer.give_up(record.seq);
                }
            };
            let mut state = lock(&hub.state);
            match state.sequencer.snapshot(record.seq) {
                Snapshot::Unwanted => return,
                Snapshot::ReadAgain => continue,
                Snapshot::Apply { events, settled } => {
                    state.current_bid = record.current_bid;
                    state.starting_bid = Some(record.starting_bid);
                    let frames = vec![encode(&ServerFrame::Snapshot(snapshot.clone()))];
                    let outbound = Outbound { seq: record.seq, frames, snapshot: Some(snapshot), leader: None };
                    let _ = hub.tx.send(Arc::new(outbound));
                    for event in &events {
                        self.publish(&hub, &mut state, event);
                    }
                    if settled {
                        return;
                    }
                }
            }
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
