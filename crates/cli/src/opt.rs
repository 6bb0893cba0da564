//! Every clap type of `auctionctl`: the doc comments are the help text.

use std::path::PathBuf;

use auction_proto::duration;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Administer the auction system: create, inspect, extend and cancel auctions, watch them live,
/// read and change the bid rules, and check the services.
///
/// Exit codes: 0 success, 1 the server said no, 2 bad usage or input (nothing was sent),
/// 3 a service could not be reached.
#[derive(Debug, Parser)]
#[command(name = "auctionctl", version, after_help = duration::GRAMMAR)]
pub struct Opt {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes; each also reads an environment variable.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The auction service (REST).
    #[arg(long, global = true, env = "AUCTION_API_URL", default_value = "http://localhost:8081")]
    pub api_url: String,
    /// A bidding service (WebSocket), for `watch` and `health`.
    #[arg(long, global = true, env = "AUCTION_WS_URL", default_value = "ws://localhost:8080")]
    pub ws_url: String,
    /// The analytics service, for `health`.
    #[arg(long, global = true, env = "AUCTION_ANALYTICS_URL", default_value = "http://localhost:8082")]
    pub analytics_url: String,
    /// Human tables or JSON (one document per command; `watch` prints one object per line).
    #[arg(long, global = true, value_enum, env = "AUCTION_OUTPUT", default_value_t = Output::Table)]
    pub output: Output,
    /// The operator token, sent with every call that changes state and with `get` (whose answer
    /// then carries the auction's reserve price).
    #[arg(long, global = true, env = "AUCTION_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// A bidder token for `watch` (otherwise one is minted from AUTH_SECRET when it is set).
    #[arg(long, global = true, env = "AUCTION_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// How long to wait for a service, such as 10s or 500ms.
    #[arg(long, global = true, env = "AUCTION_TIMEOUT", default_value = "10s", value_parser = duration::parse)]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an auction.
    #[command(after_help = duration::GRAMMAR)]
    Create(Create),
    /// Show one auction.
    Get {
        /// The auction id.
        id: String,
    },
    /// List auctions, newest first.
    List {
        /// Only auctions in this state.
        #[arg(long, value_parser = ["scheduled", "active", "ended", "cancelled"])]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// Move an auction's close later.
    #[command(after_help = duration::GRAMMAR)]
    Extend {
        /// The auction id.
        id: String,
        /// How much later, such as 30s or 5m.
        #[arg(long, value_parser = duration::parse)]
        by: std::time::Duration,
    },
    /// Cancel an auction: bids are refused from then on.
    Cancel {
        /// The auction id.
        id: String,
        /// Do not ask for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// An auction's accepted bids, oldest first.
    Bids {
        /// The auction id.
        id: String,
        /// Bids per page.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Follow the pages to the end.
        #[arg(long)]
        all: bool,
    },
    /// Follow an auction live until it ends (or Ctrl-C).
    Watch {
        /// The auction id.
        id: String,
        /// The user id to watch as.
        #[arg(long, default_value = "auctionctl")]
        user: String,
    },
    /// Who leads the auction services: instance, fencing epoch, lease left.
    Leader,
    /// Read or replace the bid increment rules.
    #[command(subcommand)]
    Rules(Rules),
    /// Check every service, one line each.
    Health,
    /// Mint a bidder token (HS256, signed with AUTH_SECRET).
    #[command(after_help = duration::GRAMMAR)]
    Token {
        /// The bidder the token speaks for.
        #[arg(long)]
        user: String,
        /// How long it is valid, such as 1h or 30m.
        #[arg(long, default_value = "1h", value_parser = duration::parse)]
        ttl: std::time::Duration,
        /// The signing secret (the bidding service's AUTH_SECRET).
        #[arg(long, env = "AUTH_SECRET", hide_env_values = true)]
        auth_secret: Option<String>,
    },
    /// Print a shell completion script.
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Args)]
pub struct Create {
    /// A title for people.
    #[arg(long)]
    pub title: Option<String>,
    /// When bidding opens: now, +5m (from now) or an RFC 3339 time.
    #[arg(long, default_value = "now")]
    pub start: String,
    /// How long it runs from the start, such as 10m or 2h.
    #[arg(long, conflicts_with = "end", value_parser = duration::parse)]
    pub duration: Option<std::time::Duration>,
    /// When it closes: +1h (from now) or an RFC 3339 time.
    #[arg(long)]
    pub end: Option<String>,
    /// The first acceptable bid, such as 100 or 99.50.
    #[arg(long)]
    pub starting_bid: String,
    /// Bids this close to the close extend it, such as 30s; 0s turns extension off.
    #[arg(long, value_parser = duration::parse)]
    pub extension_window: Option<std::time::Duration>,
    /// How far past such a bid the close moves, such as 30s.
    #[arg(long, value_parser = duration::parse)]
    pub extension: Option<std::time::Duration>,
    /// A hidden reserve, such as 150: above the starting bid; an auction that closes below it
    /// has no winner. Bidders only see whether it is met.
    #[arg(long)]
    pub reserve: Option<String>,
    /// A buy-it-now price, such as 500: above the starting bid and at or above the reserve. A bid
    /// whose max reaches it buys the auction at once, while there is no bid (or, with a reserve,
    /// while the price is below the reserve).
    #[arg(long)]
    pub buy_now: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Rules {
    /// Show the increment bands.
    Get,
    /// Replace them from a JSON file (or - for standard input); checked before sending.
    Set { file: PathBuf },
}
