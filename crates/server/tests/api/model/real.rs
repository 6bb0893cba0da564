//! The real side of the model test: the bid script's text run on this test's Redis with the
//! arguments of docs/protocol.md ("The bid script"), the operator's changes and the scheduler's
//! end through the store, the state read from the auction hash and the log from its stream.
//! The script's text is a parameter, so that a test can plant a bug in it.

use std::collections::HashMap;

use auction_proto::AuctionId;
use auction_server::store::{ChangeOutcome, ChangeRequest, Conn, Fence, Keys, Store};
use redis::AsyncCommands;
use serde_json::Value;

use super::rules::{Answer, Bid, Cents, Change, ProxyRecord, Reason, State};
use super::{Final, Setup, System};

pub struct Real {
    store: Store,
    conn: Conn,
    keys: Keys,
    script: redis::Script,
    publish: &'static str,
    /// The auction of the current sequence and its settings.
    id: AuctionId,
    setup: Option<Setup>,
    made: u64,
    /// The last log entry read, so that a bid's own entries can be found.
    log_cursor: String,
}

fn int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not an integer: {v}")),
        Value::Number(n) => n.as_i64().unwrap_or_else(|| panic!("not an integer: {v}")),
        _ => panic!("not an integer: {v}"),
    }
}

fn cents(v: &Value) -> Cents {
    u64::try_from(int(v)).expect("cents")
}

fn opt_cents(o: &Value, field: &str) -> Option<Cents> {
    o.get(field).filter(|v| !v.is_null() && v.as_str() != Some("")).map(cents)
}

fn flag(o: &Value, field: &str) -> bool {
    matches!(o.get(field), Some(Value::Bool(true)))
        || matches!(o.get(field).and_then(Value::as_str), Some("1" | "true"))
}

fn opt_flag(o: &Value, field: &str) -> Option<bool> {
    o.get(field).filter(|v| !v.is_null()).map(|_| flag(o, field))
}

fn text(o: &Value, field: &str) -> Option<String> {
    o.get(field).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
}

fn reason(text: &str) -> Reason {
    match text {
        "bid_too_low" => Reason::TooLow,
        "already_highest_bidder" => Reason::AlreadyHighest,
        "auction_not_started" => Reason::NotStarted,
        "auction_ended" => Reason::Ended,
        "auction_cancelled" => Reason::Cancelled,
        "max_bid_reached" => Reason::MaxBidReached,
        other => panic!("the script answered a reason the model does not know: {other}"),
    }
}

/// The script's answer as the model states answers.
fn answer(text: &str) -> Answer {
    let o: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("outcome {text:?}: {e}"));
    match o["type"].as_str() {
        // A plain bid that leads: the outcome is its event.
        Some("bid") => Answer::Accepted {
            amount: cents(&o["amount"]),
            seq: int(&o["seq"]) as u64,
            end_ms: int(&o["end_ms"]),
            leading: true,
            current: None,
            min_next: None,
            your_max: None,
            bought_now: false,
        },
        Some("accepted") => Answer::Accepted {
            amount: cents(&o["amount"]),
            seq: int(&o["seq"]) as u64,
            end_ms: int(&o["end_ms"]),
            leading: o.get("leading").is_none_or(|_| flag(&o, "leading")),
            current: opt_cents(&o, "current"),
            min_next: opt_cents(&o, "min_next"),
            your_max: opt_cents(&o, "your_max"),
            bought_now: flag(&o, "bought_now"),
        },
        Some("rejected") => Answer::Rejected {
            reason: reason(o["reason"].as_str().expect("reason")),
            current: opt_cents(&o, "current"),
            min_next: opt_cents(&o, "min_next"),
        },
        _ => panic!("an outcome the model does not know: {text}"),
    }
}

/// A log entry as the model states changes; `None` for `created` and `started`, which the model
/// leaves out.
fn change(event: &Value) -> Option<Change> {
    let seq = int(&event["seq"]) as u64;
    Some(match event["type"].as_str().expect("type") {
        "bid" => Change::Bid {
            seq,
            bidder: text(event, "bidder").expect("bidder"),
            bid_id: text(event, "bid_id").expect("bid_id"),
            amount: cents(&event["amount"]),
            bid_count: int(&event["bid_count"]) as u64,
            end_ms: int(&event["end_ms"]),
            prev_end_ms: int(&event["prev_end_ms"]),
            auto: flag(event, "auto"),
            placed_by: text(event, "placed_by"),
            reserve_met: opt_flag(event, "reserve_met"),
        },
        "max_raised" => Change::MaxRaised {
            seq,
            bidder: text(event, "bidder").expect("bidder"),
            bid_id: text(event, "bid_id").expect("bid_id"),
        },
        "ended" => Change::Ended {
            seq,
            winner: text(event, "winner"),
            final_price: opt_cents(event, "final_price"),
            bid_count: int(&event["bid_count"]) as u64,
            end_ms: int(&event["end_ms"]),
            reserve_met: opt_flag(event, "reserve_met"),
            bought_now: flag(event, "bought_now"),
        },
        "extended" => Change::Extended { seq, end_ms: int(&event["end_ms"]), prev_end_ms: int(&event["prev_end_ms"]) },
        "cancelled" => Change::Cancelled { seq },
        "created" | "started" => return None,
        other => panic!("a log event the model does not know: {other}"),
    })
}

type Entries = Vec<(String, HashMap<String, String>)>;

impl Real {
    /// `script`: the bid script's text (the real one, or one with a planted bug).
    pub async fn new(store: Store, prefix: &str, script: &str, publish: &'static str) -> Real {
        let conn = store.connection();
        Real {
            store,
            conn,
            keys: Keys::new(prefix),
            script: redis::Script::new(script),
            publish,
            id: AuctionId::parse("m0").unwrap(),
            setup: None,
            made: 0,
            log_cursor: "-".to_owned(),
        }
    }

    async fn now_ms(&mut self) -> i64 {
        let (s, us): (i64, i64) = redis::cmd("TIME").query_async(&mut self.conn).await.unwrap();
        s * 1000 + us / 1000
    }

    /// The log entries after the cursor, moving it.
    async fn new_entries(&mut self) -> Entries {
        let keys = self.keys.auction(&self.id);
        let start = if self.log_cursor == "-" { "-".to_owned() } else { format!("({}", self.log_cursor) };
        let entries: Entries =
            redis::cmd("XRANGE").arg(&keys.log).arg(start).arg("+").query_async(&mut self.conn).await.unwrap();
        if let Some((id, _)) = entries.last() {
            self.log_cursor = id.clone();
        }
        entries
    }
}

impl System for Real {
    async fn create(&mut self, setup: &Setup) -> i64 {
        self.made += 1;
        self.id = AuctionId::parse(&format!("m{}", self.made)).unwrap();
        self.setup = Some(setup.clone());
        self.log_cursor = "-".to_owned();
        let now = self.now_ms().await;
        // A close the sequence cannot outlast, and near enough that bids inside a window extend it.
        let end_ms = now + 20_000;
        let start_ms = if setup.started { now - 3_600_000 } else { now + 3_600_000 };
        let keys = self.keys.auction(&self.id);
        let mut fields: Vec<(&str, String)> = vec![
            ("id", self.id.to_string()),
            ("title", "model".to_owned()),
            ("state", "open".to_owned()),
            ("start_ms", start_ms.to_string()),
            ("end_ms", end_ms.to_string()),
            ("starting_bid", setup.starting.to_string()),
            ("current_bid", String::new()),
            ("bidder", String::new()),
            ("seq", "0".to_owned()),
            ("bid_count", "0".to_owned()),
            ("ext_window_s", setup.ext_window_s.to_string()),
            ("ext_s", setup.ext_s.to_string()),
            ("created_ms", now.to_string()),
        ];
        if let Some(r) = setup.reserve {
            fields.push(("reserve", r.to_string()));
        }
        if let Some(n) = setup.buy_now {
            fields.push(("buy_now", n.to_string()));
        }
        let () = self.conn.hset_multiple(&keys.state, &fields).await.unwrap();
        end_ms
    }

    async fn bid(&mut self, bid: &Bid) -> (Answer, Option<i64>) {
        let setup = self.setup.clone().expect("created");
        let keys = self.keys.auction(&self.id);
        let table: Vec<String> = setup.rules.bands.iter().map(|(from, step)| format!("{from}:{step}")).collect();
        let text: String = self
            .script
            .key(&keys.state)
            .key(&keys.recent)
            .key(&keys.outcomes)
            .key(&keys.log)
            .arg(self.id.as_str())
            .arg(&bid.bidder)
            .arg(&bid.bid_id)
            .arg(bid.amount)
            .arg(table.join(","))
            .arg(&keys.live)
            .arg(10)
            .arg(self.publish)
            .arg("1")
            .arg(1)
            .arg(setup.rules.max_bid)
            .arg("0")
            .arg(bid.max.map_or(String::new(), |m| m.to_string()))
            .invoke_async(&mut self.conn)
            .await
            .unwrap();
        // The time the bid was decided at: that of the price change it logged, if any.
        let now = self.new_entries().await.iter().find_map(|(_, fields)| {
            let event: Value = serde_json::from_str(fields.get("event")?).ok()?;
            (event["type"] == "bid").then(|| int(&event["placed_us"]) / 1000)
        });
        (answer(&text), now)
    }

    async fn extend(&mut self, seconds: i64) -> bool {
        let request = ChangeRequest::Extend { seconds: u32::try_from(seconds).unwrap() };
        matches!(self.store.change(&self.id, request).await.unwrap(), ChangeOutcome::Changed(_))
    }

    async fn cancel(&mut self) -> bool {
        matches!(self.store.change(&self.id, ChangeRequest::Cancel).await.unwrap(), ChangeOutcome::Changed(_))
    }

    async fn start(&mut self) {
        let now = self.now_ms().await;
        let keys = self.keys.auction(&self.id);
        let () = self.conn.hset(&keys.state, "start_ms", (now - 1).to_string()).await.unwrap();
    }

    async fn pass_close(&mut self) -> i64 {
        let at = self.now_ms().await - 1;
        let keys = self.keys.auction(&self.id);
        let () = self.conn.hset(&keys.state, "end_ms", at.to_string()).await.unwrap();
        at
    }

    async fn end(&mut self) -> bool {
        let fence = Fence { epoch: 1, until_ms: i64::MAX / 2 };
        let advanced = self.store.advance(&self.id, fence).await.unwrap();
        matches!(advanced, auction_server::store::Advance::Moved(_))
    }

    async fn state(&mut self) -> Final {
        let keys = self.keys.auction(&self.id);
        let hash: HashMap<String, String> = self.conn.hgetall(&keys.state).await.unwrap();
        let get = |f: &str| hash.get(f).filter(|v| !v.is_empty()).cloned();
        let num = |f: &str| get(f).map(|v| v.parse::<i64>().unwrap_or_else(|_| panic!("{f} = {v}")));
        let price = num("current_bid").map(|p| p as u64);
        Final {
            state: match get("state").as_deref() {
                Some("open" | "active") => State::Open,
                Some("ended") => State::Ended,
                Some("cancelled") => State::Cancelled,
                other => panic!("state {other:?}"),
            },
            price,
            leader: get("bidder"),
            max: get("bidder").and(num("max")).map(|m| m as u64),
            seq: num("seq").unwrap_or(0) as u64,
            bid_count: num("bid_count").unwrap_or(0) as u64,
            end_ms: num("end_ms").unwrap(),
        }
    }

    async fn log(&mut self) -> (Vec<Change>, Vec<ProxyRecord>) {
        let keys = self.keys.auction(&self.id);
        let entries: Entries =
            redis::cmd("XRANGE").arg(&keys.log).arg("-").arg("+").query_async(&mut self.conn).await.unwrap();
        let mut changes = Vec::new();
        let mut proxies = Vec::new();
        for (_, fields) in entries {
            if let Some(event) = fields.get("event") {
                let event: Value = serde_json::from_str(event).unwrap();
                changes.extend(change(&event));
            }
            if let Some(proxy) = fields.get("proxy") {
                let p: Value = serde_json::from_str(proxy).unwrap();
                proxies.push(ProxyRecord {
                    bidder: text(&p, "bidder").expect("bidder"),
                    bid_id: text(&p, "bid_id").expect("bid_id"),
                    amount: cents(&p["amount"]),
                    max: cents(&p["max"]),
                });
            }
        }
        (changes, proxies)
    }
}
