//! Human output: aligned tables, money as decimals, times in local time with relative hints.

use auction_proto::rest::{Auction, BidRecord, LeaderInfo};
use auction_proto::ws::ServerFrame;
use auction_proto::{AuctionStatus, BidRules};
use chrono::{DateTime, Utc};

use crate::time::{local, local_since, local_with_hint, span};

fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "-".to_owned())
}

fn money(amount: Option<auction_proto::Amount>) -> String {
    or_dash(amount)
}

/// One auction as `key  value` lines.
pub fn auction(a: &Auction, now: DateTime<Utc>) -> String {
    // The status, which the service decided by its own clock, says whether the start is past:
    // this machine's clock may be a moment behind, and "starts in 0s" for a running auction
    // misleads.
    let start_hint = match a.status {
        AuctionStatus::Scheduled => local_with_hint(a.start_time, now, "starts", "started"),
        _ => local_since(a.start_time, now, "started"),
    };
    let end_hint = match a.status {
        AuctionStatus::Ended => local_with_hint(a.end_time, now, "closes", "closed"),
        AuctionStatus::Cancelled => format!("{} (cancelled: never ends)", local(a.end_time)),
        _ => local_with_hint(a.end_time, now, "ends", "ended"),
    };
    // The reserve itself comes only to the operator; whether it is met, to everyone.
    let reserve = match (a.reserve_price, a.reserve_met) {
        (None, None) => None,
        (price, met) => {
            let price = price.map_or_else(|| "hidden".to_owned(), |p| p.to_string());
            Some(match met {
                Some(true) => format!("{price} (reserve met)"),
                Some(false) => format!("{price} (reserve not met)"),
                None => price,
            })
        }
    };
    let winner = match (a.status, a.reserve_met, &a.winner) {
        (AuctionStatus::Ended, Some(false), None) => "none: reserve not met, no sale".to_owned(),
        (_, _, winner) => or_dash(winner.as_ref()),
    };
    let rows = [
        Some(("auction", a.auction_id.to_string())),
        Some(("title", a.title.clone())),
        Some(("status", a.status.as_str().to_owned())),
        Some(("starts", start_hint)),
        Some(("ends", end_hint)),
        Some(("starting bid", a.starting_bid.to_string())),
        reserve.map(|r| ("reserve price", r)),
        a.buy_now_price.map(|p| ("buy it now", p.to_string())),
        Some(("current bid", money(a.current_bid))),
        Some(("highest bidder", or_dash(a.highest_bidder.as_ref()))),
        Some(("min next bid", a.min_next_bid.to_string())),
        Some(("bids", a.bid_count.to_string())),
        Some(("extension", format!("{}s within the last {}s", a.extension_s, a.extension_window_s))),
        Some(("winner", winner)),
        Some(("final price", money(a.final_price))),
    ];
    rows.iter().flatten().map(|(k, v)| format!("{k:<15} {v}\n")).collect()
}

/// `, reserve met` or `, reserve not met` when the auction has a reserve.
fn reserve_note(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => ", reserve met",
        Some(false) => ", reserve not met",
        None => "",
    }
}

/// Rows under a header, each column as wide as its widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

pub fn auctions(list: &[Auction], now: DateTime<Utc>) -> String {
    if list.is_empty() {
        return "no auctions\n".to_owned();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            let left = a.end_time - now;
            let ends = match a.status {
                AuctionStatus::Cancelled => "-".to_owned(),
                _ if left.num_seconds() >= 0 => format!("in {}", span(left)),
                _ => format!("{} ago", span(left)),
            };
            vec![
                a.auction_id.to_string(),
                a.status.as_str().to_owned(),
                money(a.current_bid.or(Some(a.starting_bid))),
                a.bid_count.to_string(),
                ends,
                a.title.clone(),
            ]
        })
        .collect();
    table(&["ID", "STATUS", "PRICE", "BIDS", "ENDS", "TITLE"], &rows)
}

pub fn bids(list: &[BidRecord]) -> String {
    if list.is_empty() {
        return "no bids\n".to_owned();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|b| {
            vec![
                b.seq.to_string(),
                b.amount.to_string(),
                b.bidder.to_string(),
                b.placed_at.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
                b.bid_id.to_string(),
            ]
        })
        .collect();
    table(&["SEQ", "AMOUNT", "BIDDER", "PLACED", "BID ID"], &rows)
}

pub fn leader(info: &LeaderInfo) -> String {
    match &info.instance_id {
        Some(holder) => format!(
            "leader {holder}, epoch {}, lease {} left\n",
            info.epoch,
            span(chrono::Duration::milliseconds(i64::try_from(info.lease_ms_left).unwrap_or(0)))
        ),
        None => format!("no leader right now (last epoch {})\n", info.epoch),
    }
}

pub fn rules(rules: &BidRules) -> String {
    let rows: Vec<Vec<String>> = rules
        .increments
        .iter()
        .enumerate()
        .map(|(i, band)| {
            let to = rules.increments.get(i + 1).map(|next| auction_proto::amount::non_negative::format(next.from - 1));
            vec![
                auction_proto::amount::non_negative::format(band.from),
                to.unwrap_or_else(|| "and up".to_owned()),
                band.increment.to_string(),
            ]
        })
        .collect();
    table(&["FROM", "TO", "INCREMENT"], &rows)
}

/// One live event as a line.
pub fn event(frame: &ServerFrame) -> Option<String> {
    let now = chrono::Local::now().format("%H:%M:%S%.3f");
    Some(match frame {
        ServerFrame::Snapshot(s) => format!(
            "{now} {} {}: current {} by {}, next at least {}, {} bids, closes {}{}{}",
            s.auction_id,
            s.status.as_str(),
            money(s.current_bid),
            or_dash(s.highest_bidder.as_ref()),
            s.min_next_bid,
            s.bid_count,
            s.end_time.with_timezone(&chrono::Local).format("%H:%M:%S"),
            reserve_note(s.reserve_met),
            s.buy_now_price.map(|p| format!(", buy it now at {p}")).unwrap_or_default()
        ),
        ServerFrame::BidPlaced(b) => {
            // A price a max placed: the leader's own max, against another's bid (placed_by), or
            // the new leader's max beating the standing one.
            let proxy = match (&b.placed_by, b.auto) {
                (Some(by), _) => format!(": {}'s max answered {by}'s bid", b.bidder),
                (None, true) => format!(": placed by {}'s max", b.bidder),
                (None, false) => String::new(),
            };
            format!(
                "{now} bid {} by {} (#{}, seq {}){proxy}{}",
                b.amount,
                b.bidder,
                b.bid_count,
                b.seq,
                reserve_note(b.reserve_met)
            )
        }
        ServerFrame::AuctionExtended(e) => format!(
            "{now} extended: closes {} (was {})",
            e.end_time.with_timezone(&chrono::Local).format("%H:%M:%S"),
            e.previous_end_time.with_timezone(&chrono::Local).format("%H:%M:%S")
        ),
        ServerFrame::AuctionStarted(_) => format!("{now} started"),
        ServerFrame::AuctionEnded(e) => match (&e.winner, e.final_price) {
            (Some(w), Some(p)) if e.bought_now => format!("{now} ended: {w} bought it now at {p}"),
            (Some(w), Some(p)) => format!("{now} ended: {w} wins at {p}"),
            _ if e.reserve_met == Some(false) => format!("{now} ended: no sale, reserve not met"),
            _ => format!("{now} ended with no bids"),
        },
        ServerFrame::AuctionCancelled(_) => format!("{now} cancelled"),
        ServerFrame::Error(e) => format!("{now} error {}: {}", e.code, e.message),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn auction(json: serde_json::Value) -> Auction {
        let mut base = serde_json::json!({
            "auction_id": "a1", "title": "Brass lamp", "status": "active",
            "start_time": "2026-11-26T09:00:00Z", "end_time": "2026-11-26T10:00:00Z",
            "starting_bid": "100.00", "current_bid": null, "highest_bidder": null,
            "min_next_bid": "100.00", "bid_count": 0, "seq": 0, "server_time": "2026-11-26T09:30:00Z",
            "recent_bids": [], "extension_window_s": 30, "extension_s": 30,
            "created_at": "2026-11-26T08:00:00Z", "winner": null, "final_price": null
        });
        for (k, v) in json.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn row(text: &str, key: &str) -> Option<String> {
        text.lines().find(|l| l.starts_with(&format!("{key:<15} "))).map(|l| l[16..].to_owned())
    }

    fn now() -> DateTime<Utc> {
        "2026-11-26T09:30:00Z".parse().unwrap()
    }

    #[test]
    fn an_auction_without_reserve_or_buy_now_shows_neither() {
        let text = super::auction(&auction(serde_json::json!({})), now());
        assert_eq!(row(&text, "reserve price"), None, "{text}");
        assert_eq!(row(&text, "buy it now"), None, "{text}");
        assert_eq!(row(&text, "winner").as_deref(), Some("-"), "{text}");
    }

    #[test]
    fn the_reserve_shows_whether_it_is_met_and_its_price_only_when_given() {
        let bidder = auction(serde_json::json!({"reserve_met": false, "buy_now_price": "500.00"}));
        let text = super::auction(&bidder, now());
        assert_eq!(row(&text, "reserve price").as_deref(), Some("hidden (reserve not met)"), "{text}");
        assert_eq!(row(&text, "buy it now").as_deref(), Some("500.00"), "{text}");

        let operator =
            auction(serde_json::json!({"reserve_met": true, "reserve_price": "150.00", "current_bid": "160.00"}));
        let text = super::auction(&operator, now());
        assert_eq!(row(&text, "reserve price").as_deref(), Some("150.00 (reserve met)"), "{text}");
        assert_eq!(row(&text, "buy it now"), None, "no longer available: {text}");
    }

    #[test]
    fn an_auction_ended_below_its_reserve_says_no_sale() {
        let ended = auction(serde_json::json!({"status": "ended", "reserve_met": false, "current_bid": "120.00"}));
        let text = super::auction(&ended, now());
        assert_eq!(row(&text, "winner").as_deref(), Some("none: reserve not met, no sale"), "{text}");
        assert_eq!(row(&text, "final price").as_deref(), Some("-"), "{text}");
    }

    fn frame(json: &str) -> ServerFrame {
        serde_json::from_str(json).unwrap()
    }

    const PLACED: &str = r#""type":"bid_placed","auction_id":"a1","bid_id":"b1","amount":"52.50","seq":5,"end_time":"2026-11-26T10:00:00Z","bid_count":3,"placed_at":"2026-11-26T09:59:00Z""#;

    #[test]
    fn watch_says_when_a_max_placed_the_price() {
        let line = |extra: &str| event(&frame(&format!("{{{PLACED},{extra}}}"))).unwrap();
        let answered = line(r#""bidder":"alice","auto":true,"placed_by":"bob","reserve_met":false"#);
        assert!(
            answered.ends_with("bid 52.50 by alice (#3, seq 5): alice's max answered bob's bid, reserve not met"),
            "{answered}"
        );
        let beat = line(r#""bidder":"bob","auto":true,"reserve_met":true"#);
        assert!(beat.ends_with("bid 52.50 by bob (#3, seq 5): placed by bob's max, reserve met"), "{beat}");
        let plain = line(r#""bidder":"bob""#);
        assert!(plain.ends_with("bid 52.50 by bob (#3, seq 5)"), "{plain}");
    }

    #[test]
    fn watch_says_how_an_auction_ended() {
        let ended = |extra: &str| {
            event(&frame(&format!(r#"{{"type":"auction_ended","auction_id":"a1","seq":9,{extra}}}"#))).unwrap()
        };
        let text = ended(r#""winner":null,"final_price":null,"reserve_met":false"#);
        assert!(text.ends_with("ended: no sale, reserve not met"), "{text}");
        let text = ended(r#""winner":"bob","final_price":"500.00","reserve_met":true,"bought_now":true"#);
        assert!(text.ends_with("ended: bob bought it now at 500.00"), "{text}");
        let text = ended(r#""winner":"bob","final_price":"160.00","reserve_met":true"#);
        assert!(text.ends_with("ended: bob wins at 160.00"), "{text}");
        let text = ended(r#""winner":null,"final_price":null"#);
        assert!(text.ends_with("ended with no bids"), "{text}");
    }

    #[test]
    fn a_snapshot_line_shows_the_reserve_and_buy_now() {
        let snapshot = r#"{"type":"snapshot","auction_id":"a1","status":"active","start_time":"2026-11-26T09:00:00Z","end_time":"2026-11-26T10:00:00Z","starting_bid":"100.00","current_bid":null,"highest_bidder":null,"min_next_bid":"100.00","bid_count":0,"seq":1,"server_time":"2026-11-26T09:30:00Z","recent_bids":[],"reserve_met":false,"buy_now_price":"500.00"}"#;
        let text = event(&frame(snapshot)).unwrap();
        assert!(text.ends_with(", reserve not met, buy it now at 500.00"), "{text}");
    }
}
