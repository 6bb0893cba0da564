//! MySQL, the durable record. Migrations are embedded in the binary and applied on start. Every
//! statement that writes lives here, behind [`write_events`]; every read, behind [`bids_page`]
//! and, for auctions whose Redis keys have expired, [`retired_auction`] and [`retired_ids`].

use std::collections::HashMap;
use std::time::Duration;

use auction_proto::rest::BidRecord;
use auction_proto::{Amount, BidId, UserId};

use crate::store::event::{Bid, Ended, Event, Proxy};
use crate::store::{RECENT_BIDS, StoredAuction, StoredState};
use auction_proto::ws::RecentBid;
use auction_proto::{AuctionId, AuctionStatus};
use chrono::NaiveDateTime;
use rust_decimal::Decimal;
use sqlx::MySqlPool;
use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// A pool sized as configured; a caller waits at most 3 s for a connection.
pub fn pool_options(pool: crate::config::MySqlPool) -> MySqlPoolOptions {
    MySqlPoolOptions::new()
        .max_connections(pool.max_open)
        .min_connections(pool.keep_idle)
        .max_lifetime(pool.max_lifetime)
        .acquire_timeout(Duration::from_secs(3))
}

/// Connects and brings the schema up to date.
pub async fn connect_and_migrate(
    options: &MySqlConnectOptions,
    pool: crate::config::MySqlPool,
) -> Result<MySqlPool, sqlx::Error> {
    let pool = pool_options(pool).connect_with(options.clone()).await?;
    migrate(&pool).await?;
    Ok(pool)
}

/// How long an instance waits for another one's migrations (a migration of a large table has
/// taken 32 s) before it gives up.
pub const MIGRATION_WAIT: Duration = Duration::from_secs(600);

/// Applies the migrations not yet applied, one instance at a time. Services started together on
/// a fresh database (a deployment's first start) would otherwise race: one finds another's
/// migration half done and stops ("partially applied"), or both apply the same one. sqlx's own
/// lock asks to wait forever with a timeout of -1, which MariaDB refuses without taking the lock,
/// so the wait is taken here, with a timeout both servers accept, on the connection that then
/// applies the migrations.
pub async fn migrate(pool: &MySqlPool) -> Result<(), sqlx::Error> {
    let mut holder = pool.acquire().await?;
    let database: Option<String> = sqlx::query_scalar("SELECT DATABASE()").fetch_one(&mut *holder).await?;
    // Lock names are server-wide and at most 64 characters: one lock per database.
    let mut name = format!("auction_migrations:{}", database.unwrap_or_default());
    name.truncate(64);
    let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
        .bind(&name)
        .bind(MIGRATION_WAIT.as_secs())
        .fetch_one(&mut *holder)
        .await?;
    if got != Some(1) {
        return Err(sqlx::Error::Protocol(format!(
            "another instance held the migration lock `{name}` for {} s: is a migration still running?",
            MIGRATION_WAIT.as_secs()
        )));
    }
    let applied = MIGRATOR.run_direct(&mut *holder).await;
    let released = sqlx::query("SELECT RELEASE_LOCK(?)").bind(&name).execute(&mut *holder).await;
    applied?;
    released.map(|_| ())
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
pub async fn connect_reader(
    options: &MySqlConnectOptions,
    pool: crate::config::MySqlPool,
) -> Result<MySqlPool, sqlx::Error> {
    pool_options(pool).connect_with(options.clone()).await
}

/// A read pool that connects on first use, for a service that must start and run without MySQL
/// (the bidding service's optional archive reads).
pub fn lazy_reader(options: &MySqlConnectOptions) -> MySqlPool {
    MySqlPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy_with(options.clone())
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

/// The final state of an ended auction: the auction row and its result, as Redis decided it (never
/// worked out from the `bids` table, which keeps bids Redis lost). An auction ends once in Redis,
/// so an `ended` written again is the same event replayed; should Redis lose the end and decide
/// again, the later decision is the one written.
async fn mark_ended(tx: &mut sqlx::Transaction<'_, sqlx::MySql>, ended: &Ended) -> Result<(), sqlx::Error> {
    let end_time = ms_naive(ended.end_ms);
    sqlx::query("UPDATE auctions SET status = 'ended', end_time = ? WHERE auction_id = ?")
        .bind(end_time)
        .bind(ended.auction_id.as_str())
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO auction_results (auction_id, winner, final_price, reserve_met, bid_count, ended_at) \
         VALUES (?, ?, ?, ?, ?, ?) \
         ON DUPLICATE KEY UPDATE winner = VALUES(winner), final_price = VALUES(final_price), \
         reserve_met = VALUES(reserve_met), bid_count = VALUES(bid_count), ended_at = VALUES(ended_at)",
    )
    .bind(ended.auction_id.as_str())
    .bind(ended.winner.as_ref().map(UserId::as_str))
    .bind(ended.final_price.map(Amount::to_decimal))
    .bind(ended.reserve_met)
    .bind(ended.bid_count)
    .bind(end_time)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A bid's identity within its auction: (the bidder who placed it, bid id). A row whose price a
/// standing max set in answer to a bid is that bid's (`placed_by`), whoever leads after it.
pub type Identity = (String, String);

/// A bid written next to another bid that already held its `(auction_id, seq)`: Redis lost the
/// other one (a failover to a replica that was behind, an append-only file short of its last
/// second) and gave its seq again. Both were accepted, so both are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqConflict {
    pub auction_id: String,
    pub seq: u64,
    /// The bid already recorded at that seq.
    pub recorded: Identity,
    /// The bid written now.
    pub written: Identity,
}

/// What a [`write_events`] call found worth counting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    pub seq_conflicts: Vec<SeqConflict>,
}

/// Writes a batch of events in one transaction: the one way anything reaches the `auctions`,
/// `bids`, `proxy_bids` and `auction_results` tables, for the analytics service (from the logs) and the
/// auction service (its fast path, right after each change). Every statement is idempotent, so
/// an event written twice (by both, or redelivered after a crash between commit and
/// acknowledgement) changes nothing the second time, and the guards (`status = 'scheduled'`,
/// `GREATEST`, no status change on an extension) keep an older event written late from undoing a
/// newer one.
///
/// A bid is known by its identity (auction, the bidder who placed it, bid id), never by its seq
/// alone: a bid whose seq another bid already holds is kept as well, logged and returned (see
/// [`SeqConflict`]). A bid's max, read from the log beside its event, goes to `proxy_bids`.
pub async fn write_events(pool: &MySqlPool, events: &[&Event]) -> Result<Written, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut written = Written::default();
    let mut bids = Vec::new();
    for event in events {
        match event {
            Event::Bid(bid) => bids.push(bid),
            other => {
                insert_bids(&mut tx, &bids, &mut written).await?;
                bids.clear();
                write_lifecycle(&mut tx, other).await?;
            }
        }
    }
    insert_bids(&mut tx, &bids, &mut written).await?;
    tx.commit().await?;
    // Told once the rows are in: a transaction that failed is retried and would tell it twice.
    for c in &written.seq_conflicts {
        tracing::warn!(
            auction = %c.auction_id,
            seq = c.seq,
            recorded_bidder = %c.recorded.0,
            recorded_bid_id = %c.recorded.1,
            bidder = %c.written.0,
            bid_id = %c.written.1,
            "two accepted bids share one seq (redis lost writes and reused it); both are kept"
        );
    }
    Ok(written)
}

/// The bids already recorded for `auction` with a seq in `from..=to`, with their identities.
async fn recorded_bids(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    auction: &str,
    from: u64,
    to: u64,
) -> Result<Vec<(u64, Identity)>, sqlx::Error> {
    let rows: Vec<(u64, Vec<u8>, Vec<u8>)> =
        sqlx::query_as("SELECT seq, placed_by, bid_id FROM bids WHERE auction_id = ? AND seq BETWEEN ? AND ?")
            .bind(auction)
            .bind(from)
            .bind(to)
            .fetch_all(&mut **tx)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(seq, bidder, bid_id)| {
            (seq, (String::from_utf8_lossy(&bidder).into_owned(), String::from_utf8_lossy(&bid_id).into_owned()))
        })
        .collect())
}

async fn insert_bids(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    bids: &[&Bid],
    written: &mut Written,
) -> Result<(), sqlx::Error> {
    if bids.is_empty() {
        return Ok(());
    }
    // What each seq of the batch already holds, one indexed read per auction: a bid recorded
    // before is a replay (nothing to do), another bid at its seq is a conflict (both kept).
    let mut held: HashMap<&str, Vec<(u64, Identity)>> = HashMap::new();
    for bid in bids {
        let auction = bid.auction_id.as_str();
        if held.contains_key(auction) {
            continue;
        }
        let seqs = bids.iter().filter(|b| b.auction_id.as_str() == auction).map(|b| b.seq);
        let (from, to) = seqs.fold((u64::MAX, 0), |(lo, hi), seq| (lo.min(seq), hi.max(seq)));
        held.insert(auction, recorded_bids(tx, auction, from, to).await?);
    }
    for bid in bids {
        let identity = (bid.placed_by().as_str().to_owned(), bid.bid_id.as_str().to_owned());
        let at_seq = held.entry(bid.auction_id.as_str()).or_default();
        if at_seq.iter().any(|(_, recorded)| *recorded == identity) {
            continue;
        }
        if let Some((_, recorded)) = at_seq.iter().find(|(seq, _)| *seq == bid.seq) {
            written.seq_conflicts.push(SeqConflict {
                auction_id: bid.auction_id.as_str().to_owned(),
                seq: bid.seq,
                recorded: recorded.clone(),
                written: identity.clone(),
            });
        }
        at_seq.push((bid.seq, identity));
    }
    let mut insert = sqlx::QueryBuilder::<sqlx::MySql>::new(
        "INSERT INTO bids (auction_id, seq, bid_id, bidder, amount, auto, placed_by, placed_at) ",
    );
    insert.push_values(bids, |mut row, bid| {
        row.push_bind(bid.auction_id.as_str())
            .push_bind(bid.seq)
            .push_bind(bid.bid_id.as_str())
            .push_bind(bid.bidder.as_str())
            .push_bind(bid.amount.to_decimal())
            .push_bind(bid.auto)
            .push_bind(bid.placed_by().as_str())
            .push_bind(us_naive(bid.placed_us));
    });
    // Only the identity is unique now: a replayed bid changes nothing, a bid at a seq another
    // bid holds is a row of its own.
    insert.push(" ON DUPLICATE KEY UPDATE seq = seq");
    insert.build().execute(&mut **tx).await?;
    let maxes: Vec<(&str, &Proxy)> =
        bids.iter().filter_map(|bid| Some((bid.auction_id.as_str(), bid.proxy.as_deref()?))).collect();
    insert_proxies(tx, &maxes).await?;
    // The close in force moves with bid extensions.
    let mut latest: HashMap<&str, i64> = HashMap::new();
    for bid in bids {
        latest.insert(bid.auction_id.as_str(), bid.end_ms);
    }
    for (auction, end_ms) in latest {
        move_close(&mut **tx, auction, end_ms).await?;
    }
    Ok(())
}

/// Records the maxes of bids (for audit: never shown), each once by its identity (auction,
/// bidder, bid id).
async fn insert_proxies(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    maxes: &[(&str, &Proxy)],
) -> Result<(), sqlx::Error> {
    if maxes.is_empty() {
        return Ok(());
    }
    let mut insert = sqlx::QueryBuilder::<sqlx::MySql>::new(
        "INSERT INTO proxy_bids (auction_id, bidder, bid_id, amount, max_amount, placed_at) ",
    );
    insert.push_values(maxes, |mut row, (auction, proxy)| {
        row.push_bind(*auction)
            .push_bind(proxy.bidder.as_str())
            .push_bind(proxy.bid_id.as_str())
            .push_bind(proxy.amount.to_decimal())
            .push_bind(proxy.max.to_decimal())
            .push_bind(us_naive(proxy.placed_us));
    });
    insert.push(" ON DUPLICATE KEY UPDATE id = id");
    insert.build().execute(&mut **tx).await?;
    Ok(())
}

async fn write_lifecycle(tx: &mut sqlx::Transaction<'_, sqlx::MySql>, event: &Event) -> Result<(), sqlx::Error> {
    match event {
        Event::Created(created) => {
            sqlx::query(
                "INSERT INTO auctions (auction_id, title, starting_bid, reserve_price, buy_now_price, start_time, \
                 end_time, extension_window_s, extension_s, status, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'scheduled', ?) \
                 ON DUPLICATE KEY UPDATE auction_id = auction_id",
            )
            .bind(created.auction_id.as_str())
            .bind(&created.title)
            .bind(created.starting_bid.to_decimal())
            .bind(created.reserve.map(Amount::to_decimal))
            .bind(created.buy_now.map(Amount::to_decimal))
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
        Event::MaxRaised(raised) => {
            if let Some(proxy) = &raised.proxy {
                insert_proxies(tx, &[(raised.auction_id.as_str(), proxy)]).await?;
            }
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
type BidRow = (u64, Vec<u8>, Vec<u8>, Decimal, u64, NaiveDateTime);

/// Where a page of bids starts: after the bid at `seq` (and, when two bids share that seq, after
/// the one with row id `id`; `None` is after every bid at `seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BidsAfter {
    pub seq: u64,
    pub id: Option<u64>,
}

/// One page of an auction's accepted bids in `(seq, id)` order (two bids share a seq only when
/// Redis lost one of them and reused its seq; the one recorded first comes first), after `after`;
/// `limit + 1` rows are read so the caller knows whether another page follows. Each bid comes
/// with its row id, for a cursor that falls between two bids of one seq.
pub async fn bids_page(
    pool: &MySqlPool,
    auction: &str,
    after: BidsAfter,
    limit: u32,
) -> Result<Vec<(u64, BidRecord)>, sqlx::Error> {
    type PageRow = (u64, Vec<u8>, Vec<u8>, Decimal, u64, NaiveDateTime, bool, Vec<u8>);
    let rows: Vec<PageRow> = sqlx::query_as(
        "SELECT id, bid_id, bidder, amount, seq, placed_at, auto, placed_by FROM bids \
         WHERE auction_id = ? AND (seq > ? OR (seq = ? AND id > ?)) ORDER BY seq, id LIMIT ?",
    )
    .bind(auction)
    .bind(after.seq)
    .bind(after.seq)
    .bind(after.id.unwrap_or(u64::MAX))
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(id, bid_id, bidder, amount, seq, placed_at, auto, placed_by)| {
            let corrupt = |what: &str| sqlx::Error::Decode(format!("bids.{what} of {auction} seq {seq}").into());
            let bidder = UserId::parse(&String::from_utf8_lossy(&bidder)).map_err(|_| corrupt("bidder"))?;
            let placed_by = UserId::parse(&String::from_utf8_lossy(&placed_by)).map_err(|_| corrupt("placed_by"))?;
            Ok((
                id,
                BidRecord {
                    bid_id: BidId::parse(&String::from_utf8_lossy(&bid_id)).map_err(|_| corrupt("bid_id"))?,
                    amount: Amount::from_decimal(amount).ok_or_else(|| corrupt("amount"))?,
                    seq,
                    placed_at: placed_at.and_utc(),
                    auto,
                    placed_by: (placed_by != bidder).then_some(placed_by),
                    bidder,
                },
            ))
        })
        .collect()
}

/// An `auctions` row as read for [`retired_auction`].
type AuctionRow = (
    Vec<u8>,
    String,
    String,
    NaiveDateTime,
    NaiveDateTime,
    Decimal,
    Option<Decimal>,
    Option<Decimal>,
    u32,
    u32,
    NaiveDateTime,
    u64,
);

/// A finished auction as MySQL records it, in the shape Redis gives a live one, for reads after
/// its Redis keys expired (`ENDED_RETENTION`); `None` unless it is ended or cancelled there (an
/// auction MySQL still shows running is not one whose keys expired, and is not made up from it).
/// Its `seq` is its last bid's (MySQL keeps no later one), `now_us` the caller's time.
pub async fn retired_auction(
    pool: &MySqlPool,
    id: &AuctionId,
    now_us: i64,
) -> Result<Option<StoredAuction>, sqlx::Error> {
    let row: Option<AuctionRow> = sqlx::query_as(
        "SELECT a.auction_id, a.title, a.status, a.start_time, a.end_time, a.starting_bid, a.reserve_price, \
         a.buy_now_price, a.extension_window_s, a.extension_s, a.created_at, \
         CAST(COALESCE(r.bid_count, (SELECT COUNT(*) FROM bids b WHERE b.auction_id = a.auction_id)) AS UNSIGNED) \
         FROM auctions a LEFT JOIN auction_results r ON r.auction_id = a.auction_id \
         WHERE a.auction_id = ? AND a.status IN ('ended', 'cancelled')",
    )
    .bind(id.as_str())
    .fetch_optional(pool)
    .await?;
    let Some((_, title, status, start, end, starting_bid, reserve, buy_now, window_s, ext_s, created, bid_count)) = row
    else {
        return Ok(None);
    };
    let corrupt = |what: &str| sqlx::Error::Decode(format!("auctions.{what} of {id}").into());
    let recent: Vec<RecentBid> = bids_newest(pool, id.as_str(), RECENT_BIDS).await?;
    Ok(Some(StoredAuction {
        id: id.clone(),
        title,
        state: if status == "cancelled" { StoredState::Cancelled } else { StoredState::Ended },
        start_ms: start.and_utc().timestamp_millis(),
        end_ms: end.and_utc().timestamp_millis(),
        starting_bid: Amount::from_decimal(starting_bid).ok_or_else(|| corrupt("starting_bid"))?,
        current_bid: recent.first().map(|b| b.amount),
        bidder: recent.first().map(|b| b.bidder.clone()),
        // Secret, and no one's to know once the auction is over.
        max: None,
        reserve: reserve.map(|r| Amount::from_decimal(r).ok_or_else(|| corrupt("reserve_price"))).transpose()?,
        buy_now: buy_now.map(|n| Amount::from_decimal(n).ok_or_else(|| corrupt("buy_now_price"))).transpose()?,
        seq: recent.first().map_or(0, |b| b.seq),
        bid_count,
        extension_window_s: window_s,
        extension_s: ext_s,
        created_ms: created.and_utc().timestamp_millis(),
        now_us,
        recent,
    }))
}

/// The newest `limit` finished auctions (ended or cancelled; or only those of `status`, which
/// must be one of the two), newest first: the list's view of auctions whose keys expired.
pub async fn retired_ids(
    pool: &MySqlPool,
    status: Option<AuctionStatus>,
    limit: usize,
) -> Result<Vec<AuctionId>, sqlx::Error> {
    let statuses = match status {
        None => vec!["ended", "cancelled"],
        Some(AuctionStatus::Ended) => vec!["ended"],
        Some(AuctionStatus::Cancelled) => vec!["cancelled"],
        Some(_) => return Ok(Vec::new()),
    };
    let mut query = sqlx::QueryBuilder::<sqlx::MySql>::new("SELECT auction_id FROM auctions WHERE status IN (");
    let mut list = query.separated(", ");
    for status in statuses {
        list.push_bind(status);
    }
    query.push(") ORDER BY created_at DESC LIMIT ").push_bind(u64::try_from(limit).unwrap_or(u64::MAX));
    let rows: Vec<(Vec<u8>,)> = query.build_query_as().fetch_all(pool).await?;
    rows.into_iter()
        .map(|(id,)| {
            AuctionId::parse(&String::from_utf8_lossy(&id))
                .map_err(|_| sqlx::Error::Decode(format!("auctions.auction_id {id:?}").into()))
        })
        .collect()
}

/// An auction's newest `limit` bids, newest first, as a snapshot's recent bids.
async fn bids_newest(pool: &MySqlPool, auction: &str, limit: usize) -> Result<Vec<RecentBid>, sqlx::Error> {
    let rows: Vec<BidRow> = sqlx::query_as(
        "SELECT id, bid_id, bidder, amount, seq, placed_at FROM bids WHERE auction_id = ? \
         ORDER BY seq DESC, id DESC LIMIT ?",
    )
    .bind(auction)
    .bind(u64::try_from(limit).unwrap_or(u64::MAX))
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(_, _, bidder, amount, seq, placed_at)| {
            let corrupt = |what: &str| sqlx::Error::Decode(format!("bids.{what} of {auction} seq {seq}").into());
            Ok(RecentBid {
                bidder: UserId::parse(&String::from_utf8_lossy(&bidder)).map_err(|_| corrupt("bidder"))?,
                amount: Amount::from_decimal(amount).ok_or_else(|| corrupt("amount"))?,
                seq,
                placed_at: placed_at.and_utc(),
            })
        })
        .collect()
}
