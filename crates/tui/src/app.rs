//! The app's state and key handling; no drawing here (that is `ui.rs`), no I/O (that is `net.rs`).

use std::collections::VecDeque;

use auction_proto::rest::Auction;
use auction_proto::ws::{ServerFrame, Snapshot};
use auction_proto::{Amount, AuctionStatus};
use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::event::{Command, Net};

#[derive(Debug, Clone, PartialEq)]
pub enum Screen {
    List,
    Room,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Connection {
    Connecting,
    Live,
    Reconnecting {
        attempt: u32,
        reason: String,
    },
    /// The server closed the room at the bidder token's expiry; bidding needs a new token.
    TokenExpired,
}

/// What the room says once the token expired, in the outcome line and on a bid attempt.
pub const TOKEN_EXPIRED_TEXT: &str = "session expired: restart with a new --token";

/// The last bid's outcome, in words.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub accepted: bool,
    pub text: String,
}

/// One recent bid as the room shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentBid {
    pub bidder: String,
    pub amount: Amount,
    pub at: DateTime<Utc>,
}

/// The auction room's view of its auction.
#[derive(Debug, Clone, PartialEq)]
pub struct Room {
    pub auction_id: String,
    pub title: String,
    pub status: AuctionStatus,
    pub end_time: DateTime<Utc>,
    pub current_bid: Option<Amount>,
    pub highest_bidder: Option<String>,
    pub min_next_bid: Amount,
    pub bid_count: u64,
    pub seq: u64,
    pub recent: VecDeque<RecentBid>,
    /// Every price seen, for the chart.
    pub prices: Vec<u64>,
    /// When the close last moved (shown as a flash on the countdown).
    pub extended_at: Option<DateTime<Utc>>,
    pub winner: Option<String>,
    pub final_price: Option<Amount>,
    /// Your max (proxy bid), known while you lead with one.
    pub your_max: Option<Amount>,
    /// Whether the price has reached the seller's reserve; `None` without a reserve.
    pub reserve_met: Option<bool>,
    /// The buy-it-now price while it is available (no bid yet, or the reserve not met).
    pub buy_now_price: Option<Amount>,
    /// The auction ended because a bid bought it at the buy-it-now price.
    pub bought_now: bool,
}

const RECENT: usize = 12;

impl Room {
    fn from_snapshot(s: &Snapshot, title: String) -> Room {
        let recent: VecDeque<RecentBid> = s
            .recent_bids
            .iter()
            .map(|b| RecentBid { bidder: b.bidder.to_string(), amount: b.amount, at: b.placed_at })
            .collect();
        let mut prices: Vec<u64> = recent.iter().rev().map(|b| b.amount.cents().unsigned_abs()).collect();
        if prices.is_empty() {
            prices.push(s.starting_bid.cents().unsigned_abs());
        }
        Room {
            auction_id: s.auction_id.to_string(),
            title,
            status: s.status,
            end_time: s.end_time,
            current_bid: s.current_bid,
            highest_bidder: s.highest_bidder.as_ref().map(ToString::to_string),
            min_next_bid: s.min_next_bid,
            bid_count: s.bid_count,
            seq: s.seq,
            recent,
            prices,
            extended_at: None,
            winner: None,
            final_price: None,
            your_max: s.your_max,
            reserve_met: s.reserve_met,
            buy_now_price: s.buy_now_price,
            bought_now: false,
        }
    }
}

pub struct App {
    pub user: String,
    pub screen: Screen,
    pub auctions: Vec<Auction>,
    pub list_error: Option<String>,
    pub selected: usize,
    pub room: Option<Room>,
    pub connection: Connection,
    pub round_trip_ms: Option<u64>,
    /// The amount being typed; empty means "the minimum".
    pub input: String,
    /// The max being typed (a proxy bid: the most to bid up to), while `x` has opened it.
    pub max_input: Option<String>,
    pub outcome: Option<Outcome>,
    pub help: bool,
    pub quit: bool,
    bid_counter: u64,
    run_id: String,
}

impl App {
    pub fn new(user: &str, run_id: &str) -> App {
        App {
            user: user.to_owned(),
            screen: Screen::List,
            auctions: Vec::new(),
            list_error: None,
            selected: 0,
            room: None,
            connection: Connection::Connecting,
            round_trip_ms: None,
            input: String::new(),
            max_input: None,
            outcome: None,
            help: false,
            quit: false,
            bid_counter: 0,
            run_id: run_id.to_owned(),
        }
    }

    /// Opens the room of `auction` (asks the network task to join it).
    pub fn enter(&mut self, auction: &str) -> Vec<Command> {
        self.screen = Screen::Room;
        self.room = None;
        self.outcome = None;
        self.input.clear();
        self.max_input = None;
        self.connection = Connection::Connecting;
        vec![Command::Join(auction.to_owned())]
    }

    /// The amount Enter would bid now.
    pub fn next_amount(&self) -> Option<Amount> {
        if self.input.is_empty() { self.room.as_ref().map(|r| r.min_next_bid) } else { Amount::parse(&self.input).ok() }
    }

    /// The field digits go to: the max while it is open, else the amount.
    fn field(&mut self) -> &mut String {
        self.max_input.as_mut().unwrap_or(&mut self.input)
    }

    /// The step `+`/`-` move the typed amount by: the room's current increment.
    fn step(&self) -> i64 {
        self.room
            .as_ref()
            .map(|r| r.min_next_bid.cents() - r.current_bid.map_or(r.min_next_bid.cents(), Amount::cents))
            .filter(|s| *s > 0)
            .unwrap_or(100)
    }

    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Command> {
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            self.quit = true;
            return vec![];
        }
        if self.help {
            self.help = false;
            return vec![];
        }
        match (self.screen.clone(), key.code) {
            (_, KeyCode::Char('q')) => {
                self.quit = true;
                vec![]
            }
            (_, KeyCode::Char('?')) => {
                self.help = true;
                vec![]
            }
            (Screen::List, KeyCode::Down | KeyCode::Char('j')) => {
                self.selected = (self.selected + 1).min(self.auctions.len().saturating_sub(1));
                vec![]
            }
            (Screen::List, KeyCode::Up | KeyCode::Char('k')) => {
                self.selected = self.selected.saturating_sub(1);
                vec![]
            }
            (Screen::List, KeyCode::Enter) => match self.auctions.get(self.selected) {
                Some(a) => {
                    let id = a.auction_id.to_string();
                    self.enter(&id)
                }
                None => vec![],
            },
            (Screen::Room, KeyCode::Esc) if self.max_input.is_some() => {
                self.max_input = None;
                vec![]
            }
            (Screen::Room, KeyCode::Esc) => {
                if self.input.is_empty() {
                    self.screen = Screen::List;
                    self.room = None;
                    vec![Command::Leave]
                } else {
                    self.input.clear();
                    vec![]
                }
            }
            (Screen::Room, KeyCode::Char(c)) if c.is_ascii_digit() || c == '.' => {
                let field = self.field();
                if field.len() < 16 {
                    field.push(c);
                }
                vec![]
            }
            (Screen::Room, KeyCode::Backspace) => {
                self.field().pop();
                vec![]
            }
            (Screen::Room, KeyCode::Char('x')) => {
                self.max_input.get_or_insert_with(String::new);
                vec![]
            }
            (Screen::Room, KeyCode::Char('+' | '=')) => self.adjust(1),
            (Screen::Room, KeyCode::Char('-')) => self.adjust(-1),
            (Screen::Room, KeyCode::Char('m')) => {
                self.input.clear();
                self.max_input = None;
                self.send_bid()
            }
            (Screen::Room, KeyCode::Enter) => self.send_bid(),
            (Screen::Room, KeyCode::Char('s')) => vec![Command::Sync],
            _ => vec![],
        }
    }

    fn adjust(&mut self, direction: i64) -> Vec<Command> {
        // The max steps from what is typed, else from the max you hold, else from the bid.
        let base = match &self.max_input {
            Some(max) if !max.is_empty() => Amount::parse(max).ok(),
            Some(_) => self.room.as_ref().and_then(|r| r.your_max).or_else(|| self.next_amount()),
            None => self.next_amount(),
        };
        let Some(base) = base else { return vec![] };
        let cents = base.cents() + direction * self.step();
        if let Some(amount) = Amount::from_cents(cents) {
            *self.field() = amount.to_string();
        }
        vec![]
    }

    fn send_bid(&mut self) -> Vec<Command> {
        if self.connection == Connection::TokenExpired {
            self.outcome = Some(Outcome { accepted: false, text: TOKEN_EXPIRED_TEXT.to_owned() });
            return vec![];
        }
        let refuse = |text: String| Some(Outcome { accepted: false, text });
        let Some(mut amount) = self.next_amount() else {
            self.outcome = refuse(format!("{:?} is not an amount", self.input));
            return vec![];
        };
        let max = match self.max_input.as_deref() {
            None => None,
            Some("") => {
                self.outcome = refuse("type your max (the most to bid up to), then Enter".to_owned());
                return vec![];
            }
            Some(text) => match Amount::parse(text) {
                Ok(max) => Some(max),
                Err(e) => {
                    self.outcome = refuse(format!("your max {text:?} is not an amount: {e}"));
                    return vec![];
                }
            },
        };
        if let Some(max) = max
            && max < amount
        {
            let leading = self.room.as_ref().and_then(|r| r.highest_bidder.as_deref()) == Some(self.user.as_str());
            if !self.input.is_empty() {
                self.outcome = refuse(format!("your max {max} is below your bid of {amount}"));
                return vec![];
            }
            if !leading {
                self.outcome = refuse(format!("your max {max} is below the minimum bid of {amount}"));
                return vec![];
            }
            // The leader raising a max that is still below the minimum next bid: the bid is the
            // max itself (a leader's bid only raises the max).
            amount = max;
        }
        self.bid_counter += 1;
        let bid_id = format!("tui-{}-{}", self.run_id, self.bid_counter);
        let text = match max {
            Some(max) => format!("bidding {amount}, up to {max}…"),
            None => format!("bidding {amount}…"),
        };
        self.outcome = Some(Outcome { accepted: true, text });
        self.input.clear();
        self.max_input = None;
        vec![Command::Bid { amount, max, bid_id }]
    }

    /// Applies network news; returns commands (a resync when a gap shows).
    pub fn on_net(&mut self, net: Net) -> Vec<Command> {
        match net {
            Net::List(Ok(list)) => {
                self.auctions = list;
                if let Some(room) = self.room.as_mut().filter(|r| r.title.is_empty()) {
                    let found = self.auctions.iter().find(|a| a.auction_id.as_str() == room.auction_id);
                    room.title = found.map(|a| a.title.clone()).unwrap_or_default();
                }
                self.list_error = None;
                self.selected = self.selected.min(self.auctions.len().saturating_sub(1));
                vec![]
            }
            Net::List(Err(e)) => {
                self.list_error = Some(e);
                vec![]
            }
            Net::Connected => {
                self.connection = Connection::Live;
                vec![]
            }
            Net::Reconnecting { attempt, reason } => {
                self.connection = Connection::Reconnecting { attempt, reason };
                vec![]
            }
            Net::TokenExpired => {
                self.connection = Connection::TokenExpired;
                self.outcome = Some(Outcome { accepted: false, text: TOKEN_EXPIRED_TEXT.to_owned() });
                vec![]
            }
            Net::RoundTrip(ms) => {
                self.round_trip_ms = Some(ms);
                vec![]
            }
            Net::Frame(frame) => self.on_frame(*frame),
        }
    }

    fn title_of(&self, auction: &str) -> String {
        self.auctions.iter().find(|a| a.auction_id.as_str() == auction).map(|a| a.title.clone()).unwrap_or_default()
    }

    fn on_frame(&mut self, frame: ServerFrame) -> Vec<Command> {
        if let ServerFrame::Snapshot(s) = &frame {
            let title = self.room.as_ref().map(|r| r.title.clone()).filter(|t| !t.is_empty());
            let title = title.unwrap_or_else(|| self.title_of(s.auction_id.as_str()));
            self.room = Some(Room::from_snapshot(s, title));
            self.connection = Connection::Live;
            return vec![];
        }
        let Some(room) = self.room.as_mut() else { return vec![] };
        if let Some(seq) = frame.seq()
            && !matches!(frame, ServerFrame::BidAccepted(_))
        {
            let same_change = matches!(frame, ServerFrame::AuctionExtended(_)) && seq == room.seq;
            if seq <= room.seq && !same_change {
                return vec![];
            }
            if seq > room.seq + 1 {
                return vec![Command::Sync];
            }
            room.seq = seq;
        }
        let me = self.user.as_str();
        match frame {
            ServerFrame::BidPlaced(b) => {
                let was_leading = room.highest_bidder.as_deref() == Some(me);
                let by = b.placed_by.as_ref().map(ToString::to_string);
                let said = if b.bidder.as_str() == me {
                    by.filter(|by| by != me).map(|by| Outcome {
                        accepted: true,
                        text: format!("your max held against {by}'s bid: you lead at {}", b.amount),
                    })
                } else if by.as_deref() == Some(me) {
                    Some(Outcome {
                        accepted: false,
                        text: format!("outbid by a proxy: {}'s max beat you at {}", b.bidder, b.amount),
                    })
                } else if was_leading && b.auto {
                    Some(Outcome {
                        accepted: false,
                        text: format!("outbid by a proxy: {}'s max leads at {}", b.bidder, b.amount),
                    })
                } else if was_leading {
                    Some(Outcome { accepted: false, text: format!("outbid: {} leads at {}", b.bidder, b.amount) })
                } else {
                    None
                };
                if said.is_some() {
                    self.outcome = said;
                }
                if b.bidder.as_str() != me {
                    room.your_max = None;
                }
                if b.reserve_met.is_some() {
                    room.reserve_met = b.reserve_met;
                }
                // Buy-it-now lasts while there is no bid, or, with a reserve, until it is met.
                if room.reserve_met != Some(false) {
                    room.buy_now_price = None;
                }
                room.current_bid = Some(b.amount);
                room.highest_bidder = Some(b.bidder.to_string());
                if let Some(m) = b.min_next_bid {
                    room.min_next_bid = m;
                }
                room.bid_count = b.bid_count;
                room.end_time = b.end_time;
                room.status = AuctionStatus::Active;
                room.recent.push_front(RecentBid { bidder: b.bidder.to_string(), amount: b.amount, at: b.placed_at });
                room.recent.truncate(RECENT);
                room.prices.push(b.amount.cents().unsigned_abs());
            }
            ServerFrame::AuctionExtended(e) => {
                room.end_time = e.end_time;
                room.extended_at = Some(Utc::now());
            }
            ServerFrame::AuctionStarted(_) => room.status = AuctionStatus::Active,
            ServerFrame::AuctionEnded(e) => {
                room.status = AuctionStatus::Ended;
                room.winner = e.winner.map(|w| w.to_string());
                room.final_price = e.final_price;
                room.bought_now = e.bought_now;
                room.buy_now_price = None;
                if e.reserve_met.is_some() {
                    room.reserve_met = e.reserve_met;
                }
            }
            ServerFrame::AuctionCancelled(_) => room.status = AuctionStatus::Cancelled,
            ServerFrame::BidAccepted(a) => {
                if let Some(m) = a.min_next_bid.filter(|m| *m > room.min_next_bid) {
                    room.min_next_bid = m;
                }
                let text = if a.bought_now {
                    format!("bought it now at {}", a.amount)
                } else if !a.leading {
                    // At once: a standing max answered the bid, which still raised the price.
                    match a.current_bid {
                        Some(now) => format!("outbid by a proxy: now {now} (your bid {})", a.amount),
                        None => format!("outbid by a proxy (your bid {})", a.amount),
                    }
                } else if let Some(max) = a.your_max {
                    // The answer may overtake the frames before it: the max is yours if this
                    // bid's change is still to come, or you lead now.
                    if a.seq > room.seq || room.highest_bidder.as_deref() == Some(me) {
                        room.your_max = Some(max);
                    }
                    format!("accepted: you lead at {}, up to your max {max}", a.amount)
                } else {
                    format!("accepted: your bid of {} leads", a.amount)
                };
                self.outcome = Some(Outcome { accepted: a.leading || a.bought_now, text });
            }
            ServerFrame::BidRejected(r) => {
                self.outcome = Some(Outcome { accepted: false, text: format!("rejected: {}", r.message) });
                if let Some(m) = r.min_next_bid {
                    room.min_next_bid = m;
                }
            }
            ServerFrame::Error(e) => {
                self.outcome = Some(Outcome { accepted: false, text: format!("error: {}", e.message) });
            }
            ServerFrame::Snapshot(_) | ServerFrame::Pong => {}
        }
        vec![]
    }
}
