//! MySQL, the durable record. Migrations are embedded in the binary and applied on start.

use std::time::Duration;

use auction_proto::rest::{Auction, BidRecord};
use auction_proto::{Amount, BidId, UserId};

use crate::store::log::LogEvent;
use chrono::NaiveDateTime;
use rust_decimal::Decimal;
use sqlx::MySqlPool;
use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Connects and brings the schema up to date.
pub async fn connect_and_migrate(options: &MySqlConnectOptions) -> Result<MySqlPool, sqlx::Error> {
    let pool = MySqlPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(options.clone())
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// Records a new auction. Idempotent, so a retry (or the analytics service replaying the
/// creation event) is harmless.
pub async fn insert_auction(pool: &MySqlPool, auction: &Auction) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO auctions (auction_id, title, starting_bid, start_time, end_time, \
         extension_window_s, extension_s, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON DUPLICATE KEY UPDATE auction_id = auction_id",
    )
    .bind(auction.auction_id.as_str())
    .bind(&auction.title)
    .bind(auction.starting_bid.to_decimal())
    .bind(auction.start_time.naive_utc())
    .bind(auction.end_time.naive_utc())
    .bind(auction.extension_window_s)
    .bind(auction.extension_s)
    .bind(auction.status.as_str())
    .bind(auction.created_at.naive_utc())
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn ping(pool: &MySqlPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}

/// Marks an auction started (only if it was still scheduled: records are idempotent).
pub async fn record_started(pool: &MySqlPool, auction: &str) -> Result<(), sqlx::Error> {
    mark_started(pool, auction).await
}

async fn mark_started<'e>(db: impl sqlx::MySqlExecutor<'e>, auction: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE auctions SET status = 'active' WHERE auction_id = ? AND status = 'scheduled'")
        .bind(auction)
        .execute(db)
        .await?;
    Ok(())
}

/// Moves the recorded close later (never earlier: a replayed older event changes nothing).
async fn move_close<'e>(db: impl sqlx::MySqlExecutor<'e>, auction: &str, end_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE auctions SET end_time = GREATEST(end_time, ?) WHERE auction_id = ?")
        .bind(ms_naive(end_ms))
        .bind(auction)
        .execute(db)
        .await?;
    Ok(())
}

/// The final state of an ended auction: the auction row and its result, in one transaction.
pub struct EndedRecord<'a> {
    pub auction: &'a str,
    pub winner: Option<&'a str>,
    pub final_price: Option<Decimal>,
    pub bid_count: u64,
    pub end_time: NaiveDateTime,
}

pub async fn record_ended(pool: &MySqlPool, ended: &EndedRecord<'_>) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    mark_ended(&mut tx, ended).await?;
    tx.commit().await
}

async fn mark_ended(tx: &mut sqlx::Transaction<'_, sqlx::MySql>, ended: &EndedRecord<'_>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE auctions SET status = 'ended', end_time = ? WHERE auction_id = ?")
        .bind(ended.end_time)
        .bind(ended.auction)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO auction_results (auction_id, winner, final_price, bid_count, ended_at) VALUES (?, ?, ?, ?, ?) \
         ON DUPLICATE KEY UPDATE auction_id = auction_id",
    )
    .bind(ended.auction)
    .bind(ended.winner)
    .bind(ended.final_price)
    .bind(ended.bid_count)
    .bind(ended.end_time)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// An operator's change: the new status and close in force.
pub async fn record_change(
    pool: &MySqlPool,
    auction: &str,
    status: &str,
    end_time: NaiveDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE auctions SET status = ?, end_time = ? WHERE auction_id = ?")
        .bind(status)
        .bind(end_time)
        .bind(auction)
        .execute(pool)
        .await?;
    Ok(())
}

/// Writes a batch of log events in one transaction. Every statement is idempotent, so a batch
/// redelivered after a crash between commit and acknowledgement changes nothing the second time.
/// Events of one auction arrive in log order (one consumer owns a stream at a time); the guards
/// (`status = 'scheduled'`, `GREATEST`) keep a replayed older event from undoing a newer one.
pub async fn write_events(pool: &MySqlPool, events: &[&LogEvent]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut bids = Vec::new();
    for event in events {
        match event {
            LogEvent::Bid { .. } => bids.push(*event),
            other => {
                insert_bids(&mut tx, &bids).await?;
                bids.clear();
                write_lifecycle(&mut tx, other).await?;
            }
        }
    }
    insert_bids(&mut tx, &bids).await?;
    tx.commit().await
}

async fn insert_bids(tx: &mut sqlx::Transaction<'_, sqlx::MySql>, bids: &[&LogEvent]) -> Result<(), sqlx::Error> {
    if bids.is_empty() {
        return Ok(());
    }
    let mut insert = sqlx::QueryBuilder::<sqlx::MySql>::new(
        "INSERT INTO bids (auction_id, seq, bid_id, bidder, amount, placed_at) ",
    );
    insert.push_values(bids, |mut row, event| {
        if let LogEvent::Bid { auction, bid_id, bidder, amount, seq, placed_us, .. } = event {
            row.push_bind(auction.as_str())
                .push_bind(*seq)
                .push_bind(bid_id.as_str())
                .push_bind(bidder.as_str())
                .push_bind(amount.to_decimal())
                .push_bind(us_naive(*placed_us));
        }
    });
    insert.push(" ON DUPLICATE KEY UPDATE seq = seq");
    insert.build().execute(&mut **tx).await?;
    // The close in force moves with bid extensions.
    let mut latest: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for event in bids {
        if let LogEvent::Bid { auction, end_ms, .. } = event {
            latest.insert(auction.as_str(), *end_ms);
        }
    }
    for (auction, end_ms) in latest {
        move_close(&mut **tx, auction, end_ms).await?;
    }
    Ok(())
}

async fn write_lifecycle(tx: &mut sqlx::Transaction<'_, sqlx::MySql>, event: &LogEvent) -> Result<(), sqlx::Error> {
    match event {
        LogEvent::Created {
            auction,
            title,
            start_ms,
            end_ms,
            starting_bid,
            extension_window_s,
            extension_s,
            created_ms,
        } => {
            sqlx::query(
                "INSERT INTO auctions (auction_id, title, starting_bid, start_time, end_time, extension_window_s, \
                 extension_s, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'scheduled', ?) \
                 ON DUPLICATE KEY UPDATE auction_id = auction_id",
            )
            .bind(auction.as_str())
            .bind(title)
            .bind(starting_bid.to_decimal())
            .bind(ms_naive(*start_ms))
            .bind(ms_naive(*end_ms))
            .bind(extension_window_s)
            .bind(extension_s)
            .bind(ms_naive(*created_ms))
            .execute(&mut **tx)
            .await?;
        }
        LogEvent::Started { auction } => mark_started(&mut **tx, auction.as_str()).await?,
        LogEvent::Extended { auction, end_ms } => move_close(&mut **tx, auction.as_str(), *end_ms).await?,
        LogEvent::Ended { auction, winner, final_price, bid_count, end_ms } => {
            let ended = EndedRecord {
                auction: auction.as_str(),
                winner: winner.as_ref().map(UserId::as_str),
                final_price: final_price.map(Amount::to_decimal),
                bid_count: *bid_count,
                end_time: ms_naive(*end_ms),
            };
            mark_ended(tx, &ended).await?;
        }
        LogEvent::Cancelled { auction } => {
            sqlx::query("UPDATE auctions SET status = 'cancelled' WHERE auction_id = ?")
                .bind(auction.as_str())
                .execute(&mut **tx)
                .await?;
        }
        LogEvent::Bid { .. } => {}
    }
    Ok(())
}

/// A time in ms as MySQL's naive UTC `DATETIME(6)` (the epoch if out of range).
pub fn ms_naive(ms: i64) -> NaiveDateTime {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.naive_utc()).unwrap_or_default()
}

fn us_naive(us: i64) -> NaiveDateTime {
    chrono::DateTime::from_timestamp_micros(us).map(|t| t.naive_utc()).unwrap_or_default()
}

/// A `bids` row as read: ids are `ascii_bin`, so they arrive as bytes.
type BidRow = (Vec<u8>, Vec<u8>, Decimal, u64, NaiveDateTime);

/// One page of an auction's accepted bids, oldest first, after `after_seq`; `limit + 1` rows are
/// read so the caller knows whether another page follows.
pub async fn bids_page(
    pool: &MySqlPool,
    auction: &str,
    after_seq: u64,
    limit: u32,
) -> Result<Vec<BidRecord>, sqlx::Error> {
    let rows: Vec<BidRow> = sqlx::query_as(
        "SELECT bid_id, bidder, amount, seq, placed_at FROM bids WHERE auction_id = ? AND seq > ? ORDER BY seq LIMIT ?",
    )
    .bind(auction)
    .bind(after_seq)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(bid_id, bidder, amount, seq, placed_at)| {
            let corrupt = |what: &str| sqlx::Error::Decode(format!("bids.{what} of {auction} seq {seq}").into());
            Ok(BidRecord {
                bid_id: BidId::parse(&String::from_utf8_lossy(&bid_id)).map_err(|_| corrupt("bid_id"))?,
                bidder: UserId::parse(&String::from_utf8_lossy(&bidder)).map_err(|_| corrupt("bidder"))?,
                amount: Amount::from_decimal(amount).ok_or_else(|| corrupt("amount"))?,
                seq,
                placed_at: placed_at.and_utc(),
            })
        })
        .collect()
}
