//! One bidder: what it knows of its auction, how it bids on its slots, and its tallies. With
//! `--reconnect` it also outlives its connection and never leaves a bid in doubt while the run
//! lasts: a bid without a certain answer is sent again, with the same `bid_id` and amount, until
//! the bidding service answers `bid_accepted` or `bid_rejected` (a retry with the same `bid_id`
//! gets the stored outcome, so the bid is never placed twice).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use auction_proto::ws::{BidAccepted, PlaceBid, ServerFrame};
use auction_proto::{Amount, BidId, ClientFrame, RejectReason};
use futures_util::SinkExt;
use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::link::{Dialer, Pace, Read, Socket, drain, read};
use crate::run::{Shared, histogram, micros, unix_ms};

/// One bidder's tallies.
pub(crate) struct Tally {
    pub attempted: u64,
    pub accepted: u64,
    pub rejected: BTreeMap<String, u64>,
    pub errors: u64,
    pub ack: Histogram<u64>,
    pub accepted_warmup: u64,
    pub reconnects: u64,
    pub unresolved: u64,
    /// Accepted bids a standing max beat at once (`leading: false`).
    pub beaten: u64,
    /// Stalls that ended: start (Unix ms) and seconds.
    pub stalls: Vec<(u64, f64)>,
    /// The stall still on when the bidder stopped: its start, as an instant and in Unix ms.
    pub stalled: Option<(Instant, u64)>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            attempted: 0,
            accepted: 0,
            rejected: BTreeMap::new(),
            errors: 0,
            ack: histogram(),
            accepted_warmup: 0,
            reconnects: 0,
            unresolved: 0,
            beaten: 0,
            stalls: Vec::new(),
            stalled: None,
        }
    }

    /// The bidder stopped getting answers at `at`, unless it already had.
    fn stall_begins(&mut self, at: Instant) {
        self.stalled.get_or_insert((at, unix_ms(at)));
    }

    /// A certain answer came: any stall is over.
    fn stall_ends(&mut self) {
        if let Some((at, start_unix_ms)) = self.stalled.take() {
            self.stalls.push((start_unix_ms, at.elapsed().as_secs_f64()));
        }
    }
}

/// What a bidder knows of its auction, from every frame it has read.
struct Knowledge {
    me: String,
    /// The lowest acceptable bid as last seen.
    min_next: Option<Amount>,
    /// The price as last seen (none before the first bid).
    current: Option<Amount>,
    /// Whether this bidder holds the high bid (then bidding again would only be refused).
    highest: bool,
    /// The auction's version that `highest` is from: news of an older one (a bid's broadcast
    /// that arrives after the answer to a later bid) no longer says who leads.
    seq: u64,
}

impl Knowledge {
    fn raise(&mut self, amount: Option<Amount>) {
        if let Some(amount) = amount {
            self.min_next = Some(self.min_next.map_or(amount, |m| m.max(amount)));
        }
    }

    /// Who leads as of version `seq`, unless newer news already said.
    fn lead(&mut self, seq: u64, me: bool) {
        if seq >= self.seq {
            self.seq = seq;
            self.highest = me;
        }
    }

    fn price(&mut self, amount: Option<Amount>) {
        if let Some(amount) = amount {
            self.current = Some(self.current.map_or(amount, |c| c.max(amount)));
        }
    }

    /// The increment at the price as last seen: the step from the price to the minimum next bid.
    fn increment(&self) -> Option<i64> {
        let step = self.min_next?.cents() - self.current?.cents();
        (step > 0).then_some(step)
    }

    fn learn(&mut self, frame: &ServerFrame) {
        match frame {
            ServerFrame::Snapshot(s) => {
                self.min_next = Some(s.min_next_bid);
                self.current = s.current_bid;
                self.highest = s.highest_bidder.as_ref().is_some_and(|b| b.as_str() == self.me);
                self.seq = s.seq;
            }
            ServerFrame::BidPlaced(p) => {
                self.raise(p.min_next_bid.or(Amount::from_cents(p.amount.cents() + 1)));
                self.price(Some(p.amount));
                self.lead(p.seq, p.bidder.as_str() == self.me);
            }
            ServerFrame::BidAccepted(a) => {
                // A bid beaten at once by a standing max still raised the price.
                let price = a.current_bid.unwrap_or(a.amount);
                self.raise(a.min_next_bid.or(Amount::from_cents(price.cents() + 1)));
                self.price(Some(price));
                self.lead(a.seq, a.leading);
            }
            ServerFrame::BidRejected(r) => {
                self.raise(r.min_next_bid);
                self.highest = r.reason == RejectReason::AlreadyHighestBidder;
            }
            _ => {}
        }
    }
}

/// What one attempt at a bid came to.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Accepted(BidAccepted),
    /// Rejected, for this reason.
    Rejected(String),
    /// No certain answer: the bid may or may not stand.
    InDoubt(Doubt),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Doubt {
    /// The connection closed or failed (the send included).
    Lost,
    TimedOut,
    /// An `error` frame, or an `unavailable` rejection: the bid's script may have run with its
    /// answer lost.
    Refused,
}

/// What `frame`, read while bid `bid_id` waits for its answer, says of that bid; `None` for a
/// frame that is not about it (news of the auction, a late answer to an earlier attempt of a
/// different bid). `resilient` (`--reconnect`) reads an `error` frame and an `unavailable`
/// rejection as "in doubt"; without it, as before the option existed, the first is no answer and
/// the second a rejection like any other.
fn verdict(frame: &ServerFrame, bid_id: &BidId, resilient: bool) -> Option<Verdict> {
    match frame {
        ServerFrame::BidAccepted(a) if a.bid_id == *bid_id => Some(Verdict::Accepted(a.clone())),
        ServerFrame::BidRejected(r) if r.bid_id.as_ref().is_none_or(|id| id == bid_id) => {
            if resilient && r.reason == RejectReason::Unavailable {
                Some(Verdict::InDoubt(Doubt::Refused))
            } else {
                Some(Verdict::Rejected(r.reason.as_str().to_owned()))
            }
        }
        ServerFrame::Error(_) if resilient => Some(Verdict::InDoubt(Doubt::Refused)),
        _ => None,
    }
}

/// The headroom of a bidder that bids by max: how many increments above its amount each max is,
/// 1 to 5, drawn at random (xorshift64*: a benchmark needs spread, not a strong generator).
pub(crate) struct Headroom(u64);

impl Headroom {
    /// Headroom for bidder `worker`, seeded from the clock and the worker, never zero.
    pub(crate) fn new(worker: usize) -> Headroom {
        let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let seed = u64::try_from(clock.as_nanos() & u128::from(u64::MAX)).unwrap_or(1)
            ^ (worker as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Headroom(seed.max(1))
    }

    /// The next headroom, in increments: 1 to 5.
    pub(crate) fn increments(&mut self) -> i64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        let draw = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32;
        1 + i64::try_from(draw % 5).unwrap_or(0)
    }

    /// The max for a bid of `amount` when the increment is `increment`: at most the largest
    /// amount there is, and never below `amount`.
    pub(crate) fn max_for(&mut self, amount: Amount, increment: i64) -> Amount {
        let headroom = increment.saturating_mul(self.increments());
        Amount::from_cents(amount.cents().saturating_add(headroom)).unwrap_or(Amount::MAX).max(amount)
    }
}

/// A bid placed and not yet answered for certain: what every attempt at it sends again.
struct Pending {
    bid_id: BidId,
    text: String,
    scheduled: Instant,
    measured: bool,
}

/// One bidder: on each slot it is given (or right after each answer, closed loop) it bids the
/// lowest amount it knows to be acceptable, and records the latency from the slot.
///
/// Open loop, every slot ends in a measured bid, however late the bidder reaches it: the slots of
/// a bidder busy with an earlier bid wait in its queue, each keeping its scheduled time, and a
/// bidder that holds the high bid at its slot bids all the same, plainly (no `max_amount`, which
/// would raise its own max), to be answered `already_highest_bidder`: a user clicking "bid" while
/// leading. Skipping such a slot would excuse a stall: the slots queued behind a bid that a frozen
/// node answered late find their bidder leading (that bid was accepted), and would go unmeasured.
/// Only a bidder that stops for good (its connection failed, without `--reconnect`) leaves slots
/// unsent; they are counted in `skipped`. Closed loop, a bidder holding the high bid waits to be
/// outbid instead.
pub(crate) struct Bidder {
    worker: usize,
    shared: Arc<Shared>,
    socket: Option<Socket>,
    dialer: Dialer,
    /// The pace of attempts at a bid in doubt on a connection that still stands.
    retries: Pace,
    /// Set for a bidder that bids by max (`--proxy-share`).
    proxy: Option<Headroom>,
    known: Knowledge,
    tally: Tally,
}

impl Bidder {
    /// A bidder on `socket`, or (`--reconnect` only) on none yet, when the first connection
    /// failed: then it connects during the run, and is stalled until it does.
    pub(crate) fn new(
        worker: usize,
        shared: Arc<Shared>,
        socket: Option<Socket>,
        dialer: Dialer,
        proxy: Option<Headroom>,
    ) -> Bidder {
        let mut tally = Tally::new();
        if socket.is_none() {
            tally.stall_begins(Instant::now());
        }
        let known = Knowledge { me: format!("lg-b{worker}"), min_next: None, current: None, highest: false, seq: 0 };
        Bidder { worker, shared, socket, dialer, retries: Pace::new(), proxy, known, tally }
    }

    /// Bids until the schedule ends (open loop: `slots` closes) or the run does.
    pub(crate) async fn run(mut self, mut slots: Option<mpsc::UnboundedReceiver<Instant>>) -> Tally {
        self.bid(slots.as_mut()).await;
        if let Some(slots) = &mut slots {
            // Stopped early: the slots still queued will never be sent, nor those to come.
            slots.close();
            while let Ok(slot) = slots.try_recv() {
                self.shared.unsent(slot);
            }
        }
        if let Some(mut socket) = self.socket.take() {
            let _ = socket.close(None).await;
        }
        self.tally
    }

    /// The slot loop of [`Bidder::run`]; returns when the schedule or the run ends, or when the
    /// bidder cannot go on (a slot in hand then is counted unsent).
    async fn bid(&mut self, mut slots: Option<&mut mpsc::UnboundedReceiver<Instant>>) {
        let mut n: u64 = 0;
        if self.socket.is_none() && !self.reconnect().await {
            return;
        }
        loop {
            let scheduled = match &mut slots {
                Some(slots) => match slots.recv().await {
                    Some(slot) => slot,
                    None => return,
                },
                None => Instant::now(),
            };
            if self.shared.stopping.load(Ordering::Relaxed) || scheduled >= self.shared.stop_at {
                return;
            }
            // Catch up on what others did since the last answer.
            if !self.catch_up().await {
                self.shared.unsent(scheduled);
                return;
            }
            if slots.is_none() {
                if self.known.min_next.is_none() || self.known.highest {
                    // Closed loop: wait for news (first snapshot, or being outbid) rather than spin.
                    if !self.wait_for_news().await {
                        return;
                    }
                    continue;
                }
            } else if !self.first_snapshot().await {
                self.shared.unsent(scheduled);
                return;
            }
            if !self.shared.take_bid(scheduled) {
                return;
            }
            n += 1;
            let Some(amount) = self.known.min_next else { continue };
            let Ok(bid_id) = BidId::parse(&self.shared.bid_id(self.worker, n, scheduled)) else { return };
            // Before the first bid the increment is not known yet: a twentieth of the amount.
            let increment = self.known.increment().unwrap_or((amount.cents() / 20).max(1));
            // A leader bids plainly: a max would raise its own max instead of being refused.
            let proxy = if self.known.highest { None } else { self.proxy.as_mut() };
            let max = proxy.map(|headroom| headroom.max_for(amount, increment));
            let text = ClientFrame::PlaceBid(PlaceBid {
                amount: amount.into(),
                bid_id: Some(bid_id.clone()),
                max_amount: max.map(Into::into),
            })
            .encode();
            let pending = Pending { bid_id, text, scheduled, measured: self.shared.measured(scheduled) };
            if !self.settle(&pending).await {
                return;
            }
        }
    }

    /// Open loop: waits, keeping the slot in hand, until the auction is known (the snapshot that
    /// opens every connection); false if the bidder cannot go on, or the run ends first.
    async fn first_snapshot(&mut self) -> bool {
        while self.known.min_next.is_none() {
            if Instant::now() >= self.shared.stop_at || !self.wait_for_news().await {
                return false;
            }
        }
        true
    }

    fn resilient(&self) -> bool {
        self.shared.reconnect
    }

    /// Reads what came since the last answer; false if the bidder cannot go on (its connection is
    /// gone, and made again only with `--reconnect`, within the run).
    async fn catch_up(&mut self) -> bool {
        let known = &mut self.known;
        if let Some(socket) = &mut self.socket
            && drain(socket, |frame| known.learn(frame))
        {
            return true;
        }
        self.lost(Instant::now());
        self.reconnect_idle().await
    }

    /// Waits up to 200 ms for a frame to learn from; false if the bidder cannot go on.
    async fn wait_for_news(&mut self) -> bool {
        let Some(socket) = &mut self.socket else { return self.reconnect_idle().await };
        match read(socket, Instant::now() + Duration::from_millis(200)).await {
            Read::Frame(frame) => self.known.learn(&frame),
            Read::TimedOut => {}
            Read::Closed => {
                self.lost(Instant::now());
                return self.reconnect_idle().await;
            }
        }
        true
    }

    /// The connection is gone (noticed at `at`).
    fn lost(&mut self, at: Instant) {
        self.socket = None;
        self.tally.stall_begins(at);
    }

    /// [`Bidder::reconnect`] with no bid in doubt: the new connection's snapshot is a certain
    /// answer, so a stall that began with the lost connection ends there. (A bidder holding the
    /// high bid sends nothing until outbid, and would otherwise look stalled all that while.)
    async fn reconnect_idle(&mut self) -> bool {
        let reconnected = self.reconnect().await;
        if reconnected {
            self.tally.stall_ends();
        }
        reconnected
    }

    /// With `--reconnect`, connects again (within the run) and learns the auction from the new
    /// snapshot; false if it cannot, or without the option.
    async fn reconnect(&mut self) -> bool {
        if !self.resilient() {
            return false;
        }
        match self.dialer.again(self.shared.stop_at).await {
            Some((socket, snapshot)) => {
                self.known.learn(&ServerFrame::Snapshot(snapshot));
                self.socket = Some(socket);
                self.tally.reconnects += 1;
                true
            }
            None => false,
        }
    }

    /// Sends `pending` until it has a certain answer, and records it. Without `--reconnect` a
    /// bid is sent once, and no answer stops the bidder (false). With it, a bid in doubt is sent
    /// again (reconnecting first if need be) while the run lasts; if the run ends first it is
    /// counted unresolved and the bidder stops.
    async fn settle(&mut self, pending: &Pending) -> bool {
        loop {
            let sent = Instant::now();
            self.tally.attempted += u64::from(pending.measured);
            let verdict = self.attempt(pending).await;
            match verdict {
                Verdict::Accepted(accepted) => self.accepted(pending, &accepted),
                Verdict::Rejected(reason) => self.rejected(pending, reason),
                Verdict::InDoubt(doubt) => {
                    self.tally.errors += u64::from(pending.measured);
                    self.tally.stall_begins(sent);
                    if matches!(doubt, Doubt::Lost | Doubt::TimedOut) {
                        // A connection that let an answer time out is not trusted with the retry.
                        self.socket = None;
                    }
                    if self.resilient() && self.retry_ready().await {
                        continue;
                    }
                    self.tally.unresolved += u64::from(self.resilient());
                    return false;
                }
            }
            self.retries.reset();
            return true;
        }
    }

    /// Gets ready for another attempt at a bid in doubt, within the run: pauses (a node that
    /// refused may need a moment) or connects again; false once the run is over.
    async fn retry_ready(&mut self) -> bool {
        if self.socket.is_some() { self.retries.wait(self.shared.stop_at).await } else { self.reconnect().await }
    }

    /// One attempt: sends the bid and reads until its verdict, learning from every frame on the
    /// way, for at most `--timeout`.
    async fn attempt(&mut self, pending: &Pending) -> Verdict {
        let Some(socket) = &mut self.socket else { return Verdict::InDoubt(Doubt::Lost) };
        if socket.send(Message::text(pending.text.as_str())).await.is_err() {
            return Verdict::InDoubt(Doubt::Lost);
        }
        let deadline = Instant::now() + self.shared.timeout;
        loop {
            match read(socket, deadline).await {
                Read::Frame(frame) => {
                    self.known.learn(&frame);
                    if let Some(verdict) = verdict(&frame, &pending.bid_id, self.shared.reconnect) {
                        return verdict;
                    }
                }
                Read::Closed => return Verdict::InDoubt(Doubt::Lost),
                Read::TimedOut => return Verdict::InDoubt(Doubt::TimedOut),
            }
        }
    }

    fn accepted(&mut self, pending: &Pending, accepted: &BidAccepted) {
        self.tally.stall_ends();
        if let Some(log) = &self.shared.accepted_log {
            log.record(accepted, unix_ms(Instant::now()));
        }
        if pending.measured {
            self.tally.accepted += 1;
            self.tally.beaten += u64::from(!accepted.leading);
            self.shared.accepted.fetch_add(1, Ordering::Relaxed);
            let _ = self.tally.ack.record(micros(pending.scheduled.elapsed()));
        } else {
            self.tally.accepted_warmup += 1;
        }
    }

    fn rejected(&mut self, pending: &Pending, reason: String) {
        self.tally.stall_ends();
        if pending.measured {
            *self.tally.rejected.entry(reason).or_default() += 1;
            let _ = self.tally.ack.record(micros(pending.scheduled.elapsed()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(json: &str) -> ServerFrame {
        serde_json::from_str(json).unwrap()
    }

    fn id(text: &str) -> BidId {
        BidId::parse(text).unwrap()
    }

    const ACCEPTED: &str = r#"{"type":"bid_accepted","auction_id":"a1","bid_id":"b-1","amount":"1.00","seq":3,"end_time":"2026-11-26T10:10:15Z"}"#;
    const UNAVAILABLE: &str =
        r#"{"type":"bid_rejected","auction_id":"a1","bid_id":"b-1","reason":"unavailable","message":"try again"}"#;
    const TOO_LOW: &str = r#"{"type":"bid_rejected","auction_id":"a1","bid_id":"b-1","reason":"bid_too_low","message":"the minimum bid is 1.25","min_next_bid":"1.25","current_bid":"1.00"}"#;
    const ERROR: &str = r#"{"type":"error","code":"unavailable","message":"no replica confirmed the bid in time"}"#;

    #[test]
    fn with_reconnect_an_error_frame_or_unavailable_leaves_the_bid_in_doubt() {
        let mine = id("b-1");
        assert_eq!(verdict(&frame(ERROR), &mine, true), Some(Verdict::InDoubt(Doubt::Refused)));
        assert_eq!(verdict(&frame(UNAVAILABLE), &mine, true), Some(Verdict::InDoubt(Doubt::Refused)));
        assert_eq!(verdict(&frame(TOO_LOW), &mine, true), Some(Verdict::Rejected("bid_too_low".into())));
        assert!(matches!(verdict(&frame(ACCEPTED), &mine, true), Some(Verdict::Accepted(a)) if a.seq == 3));
    }

    #[test]
    fn without_reconnect_the_verdicts_are_as_before() {
        let mine = id("b-1");
        assert_eq!(verdict(&frame(ERROR), &mine, false), None, "an error frame is no answer");
        assert_eq!(verdict(&frame(UNAVAILABLE), &mine, false), Some(Verdict::Rejected("unavailable".into())));
    }

    #[test]
    fn a_max_is_the_amount_plus_one_to_five_increments() {
        let mut headroom = Headroom::new(3);
        let amount = Amount::parse("10.00").unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            let over = headroom.max_for(amount, 50).cents() - amount.cents();
            assert!(over % 50 == 0 && (50..=250).contains(&over), "{over}");
            seen.insert(over);
        }
        assert_eq!(seen.len(), 5, "every headroom from 1 to 5 increments comes up: {seen:?}");
        // Never past the largest amount, never below the bid.
        let top = Amount::MAX;
        assert_eq!(headroom.max_for(top, 100), top);
        assert_eq!(headroom.max_for(amount, 0), amount);
    }

    #[test]
    fn a_beaten_answer_leaves_the_bidder_outbid_at_the_new_price() {
        let mut known = Knowledge { me: "lg-b1".into(), min_next: None, current: None, highest: false, seq: 0 };
        known.learn(&frame(r#"{"type":"snapshot","auction_id":"a1","status":"active","start_time":"2026-11-26T10:00:00Z","end_time":"2026-11-26T11:00:00Z","starting_bid":"1.00","current_bid":"1.00","highest_bidder":"lg-b2","min_next_bid":"1.25","bid_count":1,"seq":2,"server_time":"2026-11-26T10:01:00Z","recent_bids":[]}"#));
        assert_eq!(known.increment(), Some(25));
        known.learn(&frame(r#"{"type":"bid_accepted","auction_id":"a1","bid_id":"b-1","amount":"1.25","seq":3,"end_time":"2026-11-26T11:00:00Z","leading":false,"current_bid":"1.50","min_next_bid":"1.75"}"#));
        assert!(!known.highest, "beaten: another max leads");
        assert_eq!((known.min_next, known.current), (Amount::parse("1.75").ok(), Amount::parse("1.50").ok()));
        known.learn(&frame(r#"{"type":"bid_accepted","auction_id":"a1","bid_id":"b-2","amount":"1.75","seq":4,"end_time":"2026-11-26T11:00:00Z","your_max":"2.50"}"#));
        assert!(known.highest);
        assert_eq!(known.min_next, Amount::parse("1.76").ok(), "without min_next_bid, above the amount");
    }

    #[test]
    fn news_older_than_the_last_answer_does_not_say_who_leads() {
        let mut known = Knowledge { me: "lg-b1".into(), min_next: None, current: None, highest: false, seq: 0 };
        // Beaten at seq 3, then leading by the next bid at seq 4: the broadcast of seq 3 (another
        // max leads) comes last, as the live channel is slower than the answer.
        known.learn(&frame(r#"{"type":"bid_accepted","auction_id":"a1","bid_id":"b-1","amount":"1.25","seq":3,"end_time":"2026-11-26T11:00:00Z","leading":false,"current_bid":"1.50","min_next_bid":"1.75"}"#));
        known.learn(&frame(r#"{"type":"bid_accepted","auction_id":"a1","bid_id":"b-2","amount":"1.75","seq":4,"end_time":"2026-11-26T11:00:00Z"}"#));
        known.learn(&frame(r#"{"type":"bid_placed","auction_id":"a1","bid_id":"b-1","amount":"1.50","bidder":"lg-b2","seq":3,"end_time":"2026-11-26T11:00:00Z","bid_count":3,"placed_at":"2026-11-26T10:01:00Z","auto":true,"placed_by":"lg-b1"}"#));
        assert!(known.highest, "seq 3's news is older than the answer at seq 4");
        assert_eq!(known.min_next, Amount::parse("1.76").ok(), "its price still counts where higher");
        // Newer news does: another bidder's bid at seq 5.
        known.learn(&frame(r#"{"type":"bid_placed","auction_id":"a1","bid_id":"c-1","amount":"2.00","bidder":"lg-b2","seq":5,"end_time":"2026-11-26T11:00:00Z","bid_count":4,"placed_at":"2026-11-26T10:01:01Z"}"#));
        assert!(!known.highest);
    }

    #[test]
    fn an_answer_to_another_bid_is_not_this_ones() {
        let other = id("b-0");
        for json in [ACCEPTED, UNAVAILABLE, TOO_LOW] {
            assert_eq!(verdict(&frame(json), &other, true), None, "{json}");
        }
    }
}
