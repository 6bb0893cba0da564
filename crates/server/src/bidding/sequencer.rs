//! The order in which a hub forwards its auction's events: pure state, no I/O, so that every case
//! of gaps, duplicates and resyncs is unit-tested here and the hub only carries out the answers.
//!
//! Invariant: events leave in `seq` order with no gap. On a gap (pub/sub dropped a message) or a
//! request to resync, the hub reads a snapshot; events that arrive meanwhile wait, and those
//! newer than the snapshot follow it.

use crate::store::Event;

#[derive(Debug, PartialEq, Eq)]
pub enum Sequencer {
    /// Waiting for a snapshot. `again`: something asked for a fresher one while it was being
    /// read. `announce` is false only for a new hub, whose watchers each read their own snapshot
    /// when they joined.
    Syncing {
        pending: Vec<Event>,
        again: bool,
        announce: bool,
    },
    Live {
        last_seq: u64,
    },
}

/// What to do with an event that arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Already seen, or held until the snapshot.
    Hold,
    Forward(Event),
    /// A gap: read a snapshot (the event waits for it).
    Resync,
}

/// What to do with a snapshot of version `seq` just read.
#[derive(Debug, PartialEq, Eq)]
pub enum Snapshot {
    /// Nobody is waiting for it any more.
    Unwanted,
    /// A fresher one was asked for meanwhile: read again.
    ReadAgain,
    /// Show it (if `announce`), then forward `events`; if `settled` is false a gap remains after
    /// them (they were published after the read), so read again.
    Apply { announce: bool, events: Vec<Event>, settled: bool },
}

impl Sequencer {
    /// A new hub's: its watchers read their own snapshots, so the first is not announced.
    pub fn new() -> Sequencer {
        Sequencer::Syncing { pending: Vec::new(), again: false, announce: false }
    }

    pub fn arrive(&mut self, event: Event) -> Arrival {
        match self {
            Sequencer::Syncing { pending, .. } => {
                pending.push(event);
                Arrival::Hold
            }
            Sequencer::Live { last_seq } if event.seq() <= *last_seq => Arrival::Hold,
            Sequencer::Live { last_seq } if event.seq() == *last_seq + 1 => {
                *last_seq = event.seq();
                Arrival::Forward(event)
            }
            Sequencer::Live { .. } => {
                *self = Sequencer::Syncing { pending: vec![event], again: false, announce: true };
                Arrival::Resync
            }
        }
    }

    /// Asks for a fresh snapshot; true when a read must be started (none is under way).
    pub fn resync(&mut self) -> bool {
        match self {
            Sequencer::Syncing { again, .. } => {
                *again = true;
                false
            }
            Sequencer::Live { .. } => {
                *self = Sequencer::Syncing { pending: Vec::new(), again: false, announce: true };
                true
            }
        }
    }

    pub fn snapshot(&mut self, seq: u64) -> Snapshot {
        let Sequencer::Syncing { pending, again, announce } = self else { return Snapshot::Unwanted };
        if std::mem::take(again) {
            *announce = true;
            return Snapshot::ReadAgain;
        }
        let announce = *announce;
        let mut pending = std::mem::take(pending);
        pending.sort_by_key(Event::seq);
        let mut last_seq = seq;
        let mut rest = pending.into_iter().filter(|e| e.seq() > seq).peekable();
        let mut events = Vec::new();
        while let Some(event) = rest.next_if(|e| e.seq() == last_seq + 1) {
            last_seq = event.seq();
            events.push(event);
        }
        let rest: Vec<Event> = rest.collect();
        let settled = rest.is_empty();
        *self = if settled {
            Sequencer::Live { last_seq }
        } else {
            Sequencer::Syncing { pending: rest, again: false, announce: true }
        };
        Snapshot::Apply { announce, events, settled }
    }

    /// Stops waiting: the auction is gone, or unreadable at version `seq`.
    pub fn give_up(&mut self, seq: u64) {
        *self = Sequencer::Live { last_seq: seq };
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
        Sequencer::Live { last_seq }
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
        assert_eq!(s, Sequencer::Syncing { pending: vec![ev(7)], again: false, announce: true });
        // More events wait with it, in any order.
        assert_eq!(s.arrive(ev(6)), Arrival::Hold);
        // The snapshot is at 5: 6 and 7 follow it, and the hub is live at 7.
        assert_eq!(s.snapshot(5), Snapshot::Apply { announce: true, events: vec![ev(6), ev(7)], settled: true });
        assert_eq!(s, live(7));
    }

    #[test]
    fn events_older_than_the_snapshot_are_dropped() {
        let mut s = live(1);
        s.arrive(ev(3));
        s.arrive(ev(4));
        assert_eq!(s.snapshot(4), Snapshot::Apply { announce: true, events: vec![], settled: true });
        assert_eq!(s, live(4));
    }

    #[test]
    fn a_gap_after_the_snapshot_reads_again() {
        let mut s = live(1);
        s.arrive(ev(5));
        assert_eq!(s.snapshot(3), Snapshot::Apply { announce: true, events: vec![], settled: false });
        assert_eq!(s, Sequencer::Syncing { pending: vec![ev(5)], again: false, announce: true });
        assert_eq!(s.snapshot(4), Snapshot::Apply { announce: true, events: vec![ev(5)], settled: true });
    }

    #[test]
    fn a_new_hub_does_not_announce_its_first_snapshot() {
        let mut s = Sequencer::new();
        assert_eq!(s.arrive(ev(1)), Arrival::Hold);
        assert_eq!(s.snapshot(0), Snapshot::Apply { announce: false, events: vec![ev(1)], settled: true });
    }

    #[test]
    fn a_resync_during_a_read_reads_again_and_announces() {
        let mut s = Sequencer::new();
        assert!(!s.resync(), "a read is already under way");
        assert_eq!(s.snapshot(2), Snapshot::ReadAgain);
        assert_eq!(s.snapshot(3), Snapshot::Apply { announce: true, events: vec![], settled: true });
        assert!(s.resync(), "live: a read must start");
        assert_eq!(s.snapshot(3), Snapshot::Apply { announce: true, events: vec![], settled: true });
    }

    #[test]
    fn a_snapshot_nobody_waits_for_is_unwanted() {
        let mut s = live(3);
        assert_eq!(s.snapshot(9), Snapshot::Unwanted);
        assert_eq!(s, live(3));
        let mut gone = Sequencer::new();
        gone.give_up(0);
        assert_eq!(gone, live(0));
    }
}
