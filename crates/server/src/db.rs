//! MySQL, the durable record. Migrations are embedded in the binary and applied on start. Every
//! statement that writes lives here, behind [`write_events`]; every read, behind [`bids_page`].

use std::time::Duration;

use auction_proto::rest::BidRecord;
use auction_proto::{Amount, BidId, UserId};

use crate::store::event::{Bid, Ended, Event};
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

/// Whether a failure to connect (or to migrate, on a connection that then broke) is one that time
/// may cure: the server is not up or not reachable yet, is starting or stopping, or is full. A
/// refused password, a missing database or a failed migration is not: waiting would only hide it.
pub fn may_recover(error: &sqlx::Error) -> bool {
    /// Too many connections; server shutdown in progress; connection killed.
    const PASSING: [u16; 3] = [1040, 1053, 1927];
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(e) => {
            e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().is_some_and(|e| PASSING.contains(&e.number()))
        }
        sqlx::Error::Migrate(e) => match e.as_ref() {
            sqlx::migrate::MigrateError::Execute(e) => may_recover(e),
            _ => false,
        },
        _ => false,
    }
}

/// Connects to a read replica: no migrations (the primary's arrive by replication), and a pool
/// of its own so that slow reads never hold the writers' connections.
pub async fn connect_reader(options: &MySqlConnectOptions) -> Result<MySqlPool, sqlx::Error> {
    MySqlPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(options.clone())
        .await
}

pub async fn ping(pool: &MySqlPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}

async fn mark_started<'e>(db: impl sqlx::MySqlExecutor<'e>, auction: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE auctions SET status = 'active' WHERE auction_id = ? AND status = 'scheduled'")
        .bind(auction)
        .execute(db)
        .await?;
    Ok(())
}

/// Moves the recorded close later (never earlier, and never the status: an extension written
/// late, after the end, changes nothing).
async fn move_close<'e>(db: impl sqlx::MySqlExecutor<'e>, auction: &str, end_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE auctions SET end_time = GREATEST(end_time, ?) WHERE auction_id = ?")
        .bind(ms_naive(end_ms))
        .bind(auction)
        .execute(db)
        .await?;
    Ok(())
}

/// The final state of an ended auction: the auction row and its result.
async fn mark_ended(tx: &mut sqlx::Transaction<'_, sqlx::MySql>, ended: &Ended) -> Result<(), sqlx::Error> {
    let end_time = ms_naive(ended.end_ms);
    sqlx::query("UPDATE auctions SET status = 'ended', end_time = ? WHERE auction_id = ?")
        .bind(end_time)
        .bind(ended.auction_id.as_str())
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO auction_results (auction_id, winner, final_price, bid_count, ended_at) VALUES (?, ?, ?, ?, ?) \
         ON DUPLICATE KEY UPDATE auction_id = auction_id",
    )
    .bind(ended.auction_id.as_str())
    .bind(ended.winner.as_ref().map(UserId::as_str))
    .bind(ended.final_price.map(Amount::to_decimal))
    .bind(ended.bid_count)
    .bind(end_time)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes a batch of events in one transaction: the one way anything reaches the `auctions`,
/// `bids` and `auction_results` tables, for the analytics service (from the logs) and the
/// auction service (its fast path, right after each change). Every statement is idempotent, so
/// an event written twice (by both, or redelivered after a crash between commit and
/// acknowledgement) changes nothing the second time, and the guards (`status = 'scheduled'`,
/// `GREATEST`, no status change on an extension) keep an older event written late from undoing a
/// newer one.
pub async fn write_events(pool: &MySqlPool, events: &[&Event]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut bids = Vec::new();
    for event in events {
        match event {
            Event::Bid(bid) => bids.push(bid),
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

async fn insert_bids(tx: &mut sqlx::Transaction<'_, sqlx::MySql>, bids: &[&Bid]) -> Result<(), sqlx::Error> {
    if bids.is_empty() {
        return Ok(());
    }
    let mut insert = sqlx::QueryBuilder::<sqlx::MySql>::new(
        "INSERT INTO bids (auction_id, seq, bid_id, bidder, amount, placed_at) ",
    );
    insert.push_values(bids, |mut row, bid| {
        row.push_bind(bid.auction_id.as_str())
            .push_bind(bid.seq)
            .push_bind(bid.bid_id.as_str())
            .push_bind(bid.bidder.as_str())
            .push_bind(bid.amount.to_decimal())
            .push_bind(us_naive(bid.placed_us));
    });
    insert.push(" ON DUPLICATE KEY UPDATE seq = seq");
    insert.build().execute(&mut **tx).await?;
    // The close in force moves with bid extensions.
    let mut latest: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for bid in bids {
        latest.insert(bid.auction_id.as_str(), bid.end_ms);
    }
    for (auction, end_ms) in latest {
        move_close(&mut **tx, auction, end_ms).await?;
    }
    Ok(())
}

async fn write_lifecycle(tx: &mut sqlx::Transaction<'_, sqlx::MySql>, event: &Event) -> Result<(), sqlx::Error> {
    match event {
        Event::Created(created) => {
            sqlx::query(
                "INSERT INTO auctions (auction_id, title, starting_bid, start_time, end_time, extension_window_s, \
                 extension_s, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'scheduled', ?) \
                 ON DUPLICATE KEY UPDATE auction_id = auction_id",
            )
            .bind(created.auction_id.as_str())
            .bind(&created.title)
            .bind(created.starting_bid.to_decimal())
            .bind(ms_naive(created.start_ms))
            .bind(ms_naive(created.end_ms))
            .bind(created.extension_window_s)
            .bind(created.extension_s)
            .bind(ms_naive(created.created_ms))
            .execute(&mut **tx)
            .await?;
        }
        Event::Started(started) => mark_started(&mut **tx, started.auction_id.as_str()).await?,
        Event::Extended(extended) => move_close(&mut **tx, extended.auction_id.as_str(), extended.end_ms).await?,
        Event::Ended(ended) => mark_ended(tx, ended).await?,
        Event::Cancelled(cancelled) => {
            sqlx::query("UPDATE auctions SET status = 'cancelled' WHERE auction_id = ?")
                .bind(cancelled.auction_id.as_str())
                .execute(&mut **tx)
                .await?;
        }
        Event::Bid(_) => {}
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
