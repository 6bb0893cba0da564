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
    let rows = [
        ("auction", a.auction_id.to_string()),
        ("title", a.title.clone()),
        ("status", a.status.as_str().to_owned()),
        ("starts", start_hint),
        ("ends", end_hint),
        ("starting bid", a.starting_bid.to_string()),
        ("current bid", money(a.current_bid)),
        ("highest bidder", or_dash(a.highest_bidder.as_ref())),
        ("min next bid", a.min_next_bid.to_string()),
        ("bids", a.bid_count.to_string()),
        ("extension", format!("{}s within the last {}s", a.extension_s, a.extension_window_s)),
        ("winner", or_dash(a.winner.as_ref())),
        ("final price", money(a.final_price)),
    ];
    rows.iter().map(|(k, v)| format!("{k:<15} {v}\n")).collect()
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
            "{now} {} {}: current {} by {}, next at least {}, {} bids, closes {}",
            s.auction_id,
            s.status.as_str(),
            money(s.current_bid),
            or_dash(s.highest_bidder.as_ref()),
            s.min_next_bid,
            s.bid_count,
            s.end_time.with_timezone(&chrono::Local).format("%H:%M:%S")
        ),
        ServerFrame::BidPlaced(b) => {
            format!("{now} bid {} by {} (#{}, seq {})", b.amount, b.bidder, b.bid_count, b.seq)
        }
        ServerFrame::AuctionExtended(e) => format!(
            "{now} extended: closes {} (was {})",
            e.end_time.with_timezone(&chrono::Local).format("%H:%M:%S"),
            e.previous_end_time.with_timezone(&chrono::Local).format("%H:%M:%S")
        ),
        ServerFrame::AuctionStarted(_) => format!("{now} started"),
        ServerFrame::AuctionEnded(e) => match (&e.winner, e.final_price) {
            (Some(w), Some(p)) => format!("{now} ended: {w} wins at {p}"),
            _ => format!("{now} ended with no bids"),
        },
        ServerFrame::AuctionCancelled(_) => format!("{now} cancelled"),
        ServerFrame::Error(e) => format!("{now} error {}: {}", e.code, e.message),
        _ => return None,
    })
}
