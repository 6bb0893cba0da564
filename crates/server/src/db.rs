//! MySQL, the durable record. Migrations are embedded in the binary and applied on start.

use std::time::Duration;

use auction_proto::rest::Auction;
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
    sqlx::query("UPDATE auctions SET status = 'active' WHERE auction_id = ? AND status = 'scheduled'")
        .bind(auction)
        .execute(pool)
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
    sqlx::query("UPDATE auctions SET status = 'ended', end_time = ? WHERE auction_id = ?")
        .bind(ended.end_time)
        .bind(ended.auction)
        .execute(&mut *tx)
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
    .execute(&mut *tx)
    .await?;
    tx.commit().await
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
