//! The order in which a hub forwards its auction's events: pure state, no I/O, so that every case
//! of gaps, duplicates and resyncs is unit-tested here and the hub only carries out the answers.
//!
//! Invariants:
//! - Events leave in `seq` order with no gap. On a gap (pub/sub dropped a message) or a request
//!   to resync, the hub reads a snapshot and shows it to every watcher; events that arrive
//!   meanwhile wait, and those newer than the snapshot follow it.
//! - A new hub reads no snapshot of its own: it starts from its first watcher's, the one that
//!   watcher was shown (`seed`), and forwards every event after it. Every event dropped without
//!   being forwarded or covered by a shown snapshot is at or below that first version (the
//!   `floor`), so a watcher whose own snapshot is older than the floor reads a newer one before
//!   it starts; any other watcher gets every event after its snapshot.

use crate::store::Event;

#[derive(Debug, PartialEq, Eq)]
pub struct Sequencer {
    phase: Phase,
    /// The version of the first watcher's snapshot (0 until then).
    floor: u64,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    /// A new hub: events wait for the first watcher's snapshot.
    Fresh {
        pending: Vec<Event>,
    },
    /// Waiting for a snapshot the hub reads. `again`: something asked for a fresher one while it
    /// was being read.
    Syncing {
        pending: Vec<Event>,
        again: bool,
    },
    Live {
        last_seq: u64,
    },
}

/// What to do with an event that arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Already seen, or held until a snapshot.
    Hold,
    Forward(Event),
    /// A gap: read a snapshot (the event waits for it).
    Resync,
}

/// What to do with a snapshot of version `seq` the hub just read.
#[derive(Debug, PartialEq, Eq)]
pub enum Snapshot {
    /// Nobody is waiting for it any more.
    Unwanted,
    /// A fresher one was asked for meanwhile: read again.
    ReadAgain,
    /// Show it, then forward `events`; if `settled` is false a gap remains after them (they were
    /// published after the read), so read again.
    Apply { events: Vec<Event>, settled: bool },
}

/// What to do with a joining watcher's own snapshot of version `seq`, read once the node listened
/// on the auction's channel.
#[derive(Debug, PartialEq, Eq)]
pub enum Seed {
    /// The hub's first: forward `events` (the watchers skip what their snapshots hold); if
    /// `settled` is false a gap remains after them, so read a snapshot.
    Apply { events: Vec<Event>, settled: bool },
    /// Every later event reaches the watcher, or a snapshot that covers it.
    Covered,
    /// Older than the hub's first: events after it were dropped. Read a newer one.
    Behind,
}

impl Default for Sequencer {
    fn default() -> Self {
        Sequencer::new()
    }
}

impl Sequencer {
    /// A new hub's: it waits for its first watcher's snapshot.
    pub fn new() -> Sequencer {
        Sequencer { phase: Phase::Fresh { pending: Vec::new() }, floor: 0 }
    }

    pub fn arrive(&mut self, event: Event) -> Arrival {
        match &mut self.phase {
            Phase::Fresh { pending } | Phase::Syncing { pending, .. } => {
                pending.push(event);
                Arrival::Hold
            }
            Phase::Live { last_seq } if event.seq() <= *last_seq => Arrival::Hold,
            Phase::Live { last_seq } if event.seq() == *last_seq + 1 => {
                *last_seq = event.seq();
                Arrival::Forward(event)
            }
            Phase::Live { .. } => {
                self.phase = Phase::Syncing { pending: vec![event], again: false };
                Arrival::Resync
            }
        }
    }

    /// Asks for a fresh snapshot; true when a read must be started (none is under way).
    pub fn resync(&mut self) -> bool {
        match &mut self.phase {
            Phase::Syncing { again, .. } => {
                *again = true;
                false
            }
            Phase::Fresh { pending } => {
                self.phase = Phase::Syncing { pending: std::mem::take(pending), again: false };
                true
            }
            Phase::Live { .. } => {
                self.phase = Phase::Syncing { pending: Vec::new(), again: false };
                true
            }
        }
    }

    /// The hub read a snapshot of version `seq`.
    pub fn snapshot(&mut self, seq: u64) -> Snapshot {
        let Phase::Syncing { pending, again } = &mut self.phase else { return Snapshot::Unwanted };
        if std::mem::take(again) {
            return Snapshot::ReadAgain;
        }
        let pending = std::mem::take(pending);
        let (events, settled) = self.follow(seq, pending);
        Snapshot::Apply { events, settled }
    }

    /// A joining watcher was shown a snapshot of version `seq`.
    pub fn seed(&mut self, seq: u64) -> Seed {
        match &mut self.phase {
            Phase::Fresh { pending } => {
                let pending = std::mem::take(pending);
                self.floor = seq;
                let (events, settled) = self.follow(seq, pending);
                Seed::Apply { events, settled }
            }
            // The snapshot being read will be shown to this watcher, which has joined already.
            Phase::Syncing { .. } => Seed::Covered,
            Phase::Live { .. } if seq >= self.floor => Seed::Covered,
            Phase::Live { .. } => Seed::Behind,
        }
    }

    /// Stops waiting: the auction is gone, or unreadable at version `seq`.
    pub fn give_up(&mut self, seq: u64) {
        self.phase = Phase::Live { last_seq: seq };
    }

    /// Goes on from a snapshot of version `seq`: the events of `pending` that follow it without a
    /// gap, and whether none is left behind a gap (else the hub waits for another snapshot).
    fn follow(&mut self, seq: u64, mut pending: Vec<Event>) -> (Vec<Event>, bool) {
        pending.sort_by_key(Event::seq);
        let mut last_seq = seq;
        let mut rest = pending.into_iter().filter(|e| e.seq() > seq).peekable();
        let mut events = Vec::new();
        while let Some(event) = rest.next_if(|e| e.seq() <= last_seq + 1) {
            if event.seq() == last_seq + 1 {
                last_seq = event.seq();
                events.push(event);
            }
        }
        let rest: Vec<Event> = rest.collect();
        let settled = rest.is_empty();
        self.phase = if settled { Phase::Live { last_seq } } else { Phase::Syncing { pending: rest, again: false } };
        (events, settled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::event::Cancelled;
    use auction_proto::AuctionId;

    fn ev(seq: u64) -> Event {
        Event::Cancelled(Cancelled { auction_id: AuctionId::parse("a").unwrap(), seq })
    }

    fn live(last_seq: u64) -> Sequencer {
        Sequencer { phase: Phase::Live { last_seq }, floor: 0 }
    }

    fn syncing(pending: Vec<Event>) -> Phase {
        Phase::Syncing { pending, again: false }
    }

    #[test]
    fn live_forwards_the_next_and_drops_what_it_saw() {
        let mut s = live(4);
        assert_eq!(s.arrive(ev(5)), Arrival::Forward(ev(5)));
        assert_eq!(s.arrive(ev(5)), Arrival::Hold);
        assert_eq!(s.arrive(ev(3)), Arrival::Hold);
        assert_eq!(s, live(5));
    }

    #[test]
    fn a_gap_holds_the_event_and_asks_for_a_snapshot() {
        let mut s = live(4);
        assert_eq!(s.arrive(ev(7)), Arrival::Resync);
        assert_eq!(s.phase, syncing(vec![ev(7)]));
        // More events wait with it, in any order.
        assert_eq!(s.arrive(ev(6)), Arrival::Hold);
        // The snapshot is at 5: 6 and 7 follow it, and the hub is live at 7.
        assert_eq!(s.snapshot(5), Snapshot::Apply { events: vec![ev(6), ev(7)], settled: true });
        assert_eq!(s, live(7));
    }

    #[test]
    fn events_older_than_the_snapshot_are_dropped() {
        let mut s = live(1);
        s.arrive(ev(3));
        s.arrive(ev(4));
        assert_eq!(s.snapshot(4), Snapshot::Apply { events: vec![], settled: true });
        assert_eq!(s, live(4));
    }

    #[test]
    fn a_gap_after_the_snapshot_reads_again() {
        let mut s = live(1);
        s.arrive(ev(5));
        assert_eq!(s.snapshot(3), Snapshot::Apply { events: vec![], settled: false });
        assert_eq!(s.phase, syncing(vec![ev(5)]));
        assert_eq!(s.snapshot(4), Snapshot::Apply { events: vec![ev(5)], settled: true });
    }

    #[test]
    fn a_duplicate_does_not_look_like_a_gap() {
        let mut s = live(1);
        s.arrive(ev(3));
        s.arrive(ev(4));
        s.arrive(ev(4));
        assert_eq!(s.snapshot(2), Snapshot::Apply { events: vec![ev(3), ev(4)], settled: true });
        assert_eq!(s, live(4));
    }

    /// The first watcher read its snapshot at 2; events 3 to 5 came while the hub waited for it
    /// (the watcher had not started yet): all of them follow, none is dropped.
    #[test]
    fn a_new_hub_starts_from_its_first_watchers_snapshot() {
        let mut s = Sequencer::new();
        for seq in [2, 3, 5, 4] {
            assert_eq!(s.arrive(ev(seq)), Arrival::Hold);
        }
        assert_eq!(s.seed(2), Seed::Apply { events: vec![ev(3), ev(4), ev(5)], settled: true });
        assert_eq!(s, Sequencer { phase: Phase::Live { last_seq: 5 }, floor: 2 });
        // Events still on their way come later and are forwarded, not taken for seen.
        let mut s = Sequencer::new();
        assert_eq!(s.seed(2), Seed::Apply { events: vec![], settled: true });
        assert_eq!(s.arrive(ev(3)), Arrival::Forward(ev(3)));
    }

    #[test]
    fn a_gap_after_the_first_watchers_snapshot_reads_one() {
        let mut s = Sequencer::new();
        s.arrive(ev(3));
        s.arrive(ev(5));
        assert_eq!(s.seed(2), Seed::Apply { events: vec![ev(3)], settled: false });
        assert_eq!(s.phase, syncing(vec![ev(5)]));
        assert_eq!(s.snapshot(4), Snapshot::Apply { events: vec![ev(5)], settled: true });
    }

    /// Two watchers joined at once and read snapshots 4 and 6; the one at 6 came first, so 5 and
    /// 6 were dropped: the one at 4 must read again, and anything at 6 or later is fine.
    #[test]
    fn a_watcher_behind_the_first_reads_again() {
        let mut s = Sequencer::new();
        s.arrive(ev(5));
        s.arrive(ev(6));
        assert_eq!(s.seed(6), Seed::Apply { events: vec![], settled: true });
        assert_eq!(s.seed(4), Seed::Behind);
        assert_eq!(s.seed(6), Seed::Covered);
        s.arrive(ev(7));
        assert_eq!(s.seed(7), Seed::Covered);
    }

    #[test]
    fn a_watcher_joining_during_a_read_is_covered_by_it() {
        let mut s = live(3);
        assert!(s.resync());
        assert_eq!(s.seed(1), Seed::Covered);
    }

    #[test]
    fn a_resync_before_the_first_watcher_reads_and_keeps_the_events() {
        let mut s = Sequencer::new();
        s.arrive(ev(4));
        assert!(s.resync(), "a new hub has no read under way");
        assert_eq!(s.phase, syncing(vec![ev(4)]));
        assert_eq!(s.seed(2), Seed::Covered);
        assert_eq!(s.snapshot(3), Snapshot::Apply { events: vec![ev(4)], settled: true });
    }

    #[test]
    fn a_resync_during_a_read_reads_again() {
        let mut s = live(1);
        assert!(s.resync());
        assert!(!s.resync(), "a read is already under way");
        assert_eq!(s.snapshot(2), Snapshot::ReadAgain);
        assert_eq!(s.snapshot(3), Snapshot::Apply { events: vec![], settled: true });
        assert!(s.resync(), "live: a read must start");
        assert_eq!(s.snapshot(3), Snapshot::Apply { events: vec![], settled: true });
    }

    #[test]
    fn a_snapshot_nobody_waits_for_is_unwanted() {
        let mut s = live(3);
        assert_eq!(s.snapshot(9), Snapshot::Unwanted);
        assert_eq!(s, live(3));
        let mut fresh = Sequencer::new();
        assert_eq!(fresh.snapshot(9), Snapshot::Unwanted);
        fresh.give_up(0);
        assert_eq!(fresh, live(0));
    }
}
