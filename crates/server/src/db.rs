//! MySQL, the durable record. Migrations are embedded in the binary and applied on start.

use std::time::Duration;

use auction_proto::rest::Auction;
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
