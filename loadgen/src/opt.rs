//! Command-line options: every clap type of `auction-loadgen` lives here.

use std::time::Duration;

use auction_proto::duration;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Measures bid throughput and latency of the auction system: opens bidder and watcher
/// WebSockets over one or more bidding-service nodes and places bids at a fixed arrival rate
/// (open loop, the default) or as fast as answers come back (closed loop, --concurrency).
///
/// Latency is measured from each bid's scheduled send time, so a stalled server shows up in the
/// percentiles instead of hiding behind fewer requests (no coordinated omission).
#[derive(Debug, Clone, Parser)]
#[command(name = "auction-loadgen", version, after_help = duration::GRAMMAR, args_conflicts_with_subcommands = true)]
pub struct Opt {
    /// Without a command, a load run.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The auction service, used to create the auctions (unless --auction-id is given).
    #[arg(long, env = "AUCTION_API_URL", default_value = "http://localhost:8081")]
    pub api_url: String,

    /// Bidding-service WebSocket base URLs; bidders and watchers are spread over them.
    #[arg(long = "ws-url", env = "AUCTION_WS_URL", value_delimiter = ',', default_value = "ws://localhost:8080")]
    pub ws_urls: Vec<String>,

    /// Bid on these existing auctions instead of creating new ones.
    #[arg(long = "auction-id", value_delimiter = ',')]
    pub auction_ids: Vec<String>,

    /// How many auctions to create: 1 hammers one hot auction, more spreads the bidders.
    #[arg(long, default_value_t = 1)]
    pub auctions: usize,

    /// Bidder connections (open loop).
    #[arg(long, default_value_t = 50)]
    pub bidders: usize,

    /// Extra connections that only watch, to measure fan-out latency.
    #[arg(long, default_value_t = 0)]
    pub watchers: usize,

    /// Open loop: total bids per second, on a fixed schedule.
    #[arg(long, conflicts_with = "concurrency")]
    pub rate: Option<f64>,

    /// Closed loop: this many bidders, each sending its next bid as soon as the last is answered.
    #[arg(long)]
    pub concurrency: Option<usize>,

    /// How long to send bids (after the warm-up), such as 10s or 1m.
    #[arg(long, value_parser = duration::parse, default_value = "10s")]
    pub duration: Duration,

    /// Stop after this many bids instead (counted after the warm-up).
    #[arg(long)]
    pub bids: Option<u64>,

    /// Sending time excluded from the results, while connections and caches warm up.
    #[arg(long, value_parser = duration::parse, default_value = "2s")]
    pub warmup: Duration,

    /// Also list auctions at this many calls per second (open loop, from the start to the end of
    /// the run), to measure what listing costs bidding: `list_latency_ms` in the report.
    #[arg(long)]
    pub list_rate: Option<f64>,

    /// The query of those list calls, such as `status=active&limit=100`.
    #[arg(long, default_value = "status=active&limit=100")]
    pub list_query: String,

    /// How the report is printed.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,

    /// Starting bid of created auctions.
    #[arg(long, default_value = "1.00")]
    pub starting_bid: String,

    /// Signs a bidder token for each connection, when the bidding service requires tokens.
    #[arg(long, env = "AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: Option<String>,

    /// The operator token, for creating the auctions.
    #[arg(long, env = "AUCTION_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// How long to wait for any single answer (and for a connection to open) before counting an
    /// error.
    #[arg(long, value_parser = duration::parse, default_value = "10s")]
    pub timeout: Duration,

    /// Open at most this many connections at once at the start (bidders, then watchers): in
    /// turn, thousands of watchers take seconds to connect; too many at once can overflow a
    /// node's accept queue (4,096 on ours, 128 on many servers), and each connection dropped
    /// there waits a second for the kernel to try again.
    #[arg(long, default_value_t = 64)]
    pub max_connecting: usize,

    /// Reconnect, and resend bids left in doubt, until the run's end: for failure tests.
    ///
    /// Off by default, so that a benchmark's figures keep their meaning (a bidder that fails
    /// stops). With it, a connection that closes or fails, or cannot be opened at the start, is
    /// opened again until the run's end, with backoff (100 ms doubling to 2 s), each attempt on
    /// the next --ws-url in turn. A bid whose answer did not come (a lost connection, a timeout,
    /// an `error` frame, an `unavailable` rejection) is in doubt: it is sent again with the same
    /// bid_id and amount, so it is never placed twice, until it is accepted or rejected; if the
    /// run ends first it counts as unresolved. Each failed attempt counts as an error; the report
    /// adds reconnects, unresolved and stalls.
    #[arg(long)]
    pub reconnect: bool,

    /// This fraction of the bidders (0 to 1) bid by max: each of their bids carries `max_amount`,
    /// its amount plus a random headroom of 1 to 5 increments, so the service's proxy bidding
    /// runs (prices placed by a max, bids beaten at once by a standing max).
    ///
    /// Beaten bids are answered `bid_accepted` with `leading: false`: they raised the price and
    /// count as accepted, and `beaten_by_proxy` in the report counts them.
    #[arg(long, default_value_t = 0.0)]
    pub proxy_share: f64,

    /// Write every bid accepted in the run, warm-up included, to FILE.
    ///
    /// The count of lines is accepted plus accepted_warmup of the report. One line each, written
    /// as the answers come:
    /// `auction_id bid_id amount_cents seq accepted_unix_ms`, space-separated. A bid is written
    /// once, at its first bid_accepted. Buffered: a run that is killed may lose the last lines.
    #[arg(long, value_name = "FILE")]
    pub accepted_out: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Draws a latency percentile plot, as SVG, from the JSON reports of earlier runs.
    ///
    /// One line per report (`--output json` of a run): latency (log scale) against the
    /// percentile, on a log scale of 1 / (1 - q), so that p90, p99, p99.9 and on are evenly spaced
    /// and the tail is seen. Each line is named after its file, without `.json`, with the run's
    /// kind and its p50, p99 and max in the legend. Every input is read and checked before the
    /// plot is written: a report that cannot be read, or has no distribution of the chosen
    /// latency, writes nothing.
    Plot(PlotOpt),
}

/// The options of `auction-loadgen plot`.
#[derive(Debug, Clone, Args)]
pub struct PlotOpt {
    /// A JSON report of a run; repeat for more lines, each drawn in its own colour.
    #[arg(long = "input", value_name = "FILE", required = true)]
    pub inputs: Vec<std::path::PathBuf>,

    /// Which latency to draw: `ack_distribution_ms` or `fanout_distribution_ms` of each report.
    #[arg(long, value_enum, default_value_t = LatencyKind::Ack)]
    pub latency: LatencyKind,

    /// The SVG file to write (its name must end in `.svg`).
    #[arg(long, value_name = "FILE")]
    pub output: std::path::PathBuf,

    /// The plot's title (by default, the latency drawn).
    #[arg(long)]
    pub title: Option<String>,
}

/// A latency a report has the distribution of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LatencyKind {
    /// From each bid's scheduled send time to its answer.
    Ack,
    /// From each accepted bid's scheduled send time to its `bid_placed` at each watcher.
    Fanout,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_shared_grammar() {
        let opt = Opt::try_parse_from(["auction-loadgen", "--duration", "1m30s", "--warmup", "0.5", "--timeout", "2"])
            .unwrap();
        assert_eq!(opt.duration, Duration::from_secs(90));
        assert_eq!(opt.warmup, Duration::from_millis(500));
        assert_eq!(opt.timeout, Duration::from_secs(2));
        let err = Opt::try_parse_from(["auction-loadgen", "--duration", "10 parsecs"]).unwrap_err().to_string();
        assert!(err.contains("unknown unit \"parsecs\""), "{err}");
    }

    #[test]
    fn connections_open_64_at_once_unless_told() {
        assert_eq!(Opt::try_parse_from(["auction-loadgen"]).unwrap().max_connecting, 64);
        let opt = Opt::try_parse_from(["auction-loadgen", "--max-connecting", "16"]).unwrap();
        assert_eq!(opt.max_connecting, 16);
        let err = Opt::try_parse_from(["auction-loadgen", "--max-connecting", "many"]).unwrap_err().to_string();
        assert!(err.contains("--max-connecting"), "{err}");
    }

    #[test]
    fn plot_is_a_command_and_a_run_is_the_default() {
        let opt = Opt::try_parse_from(["auction-loadgen", "--rate", "5"]).unwrap();
        assert!(opt.command.is_none());
        let opt = Opt::try_parse_from([
            "auction-loadgen",
            "plot",
            "--input",
            "a.json",
            "--input",
            "b.json",
            "--latency",
            "fanout",
            "--output",
            "out.svg",
        ])
        .unwrap();
        let Some(Command::Plot(plot)) = opt.command else { panic!("no plot command: {opt:?}") };
        assert_eq!(plot.inputs, [std::path::Path::new("a.json"), std::path::Path::new("b.json")]);
        assert_eq!(plot.latency, LatencyKind::Fanout);
        assert_eq!(plot.output, std::path::Path::new("out.svg"));
        // A plot needs its inputs, and takes no run options.
        let err = Opt::try_parse_from(["auction-loadgen", "plot", "--output", "out.svg"]).unwrap_err().to_string();
        assert!(err.contains("--input"), "{err}");
        let err =
            Opt::try_parse_from(["auction-loadgen", "--rate", "5", "plot", "--input", "a.json", "--output", "o.svg"])
                .unwrap_err()
                .to_string();
        assert!(err.contains("plot"), "{err}");
    }

    #[test]
    fn the_proxy_share_is_a_fraction_defaulting_to_none() {
        assert_eq!(Opt::try_parse_from(["auction-loadgen"]).unwrap().proxy_share, 0.0);
        let opt = Opt::try_parse_from(["auction-loadgen", "--proxy-share", "0.3"]).unwrap();
        assert_eq!(opt.proxy_share, 0.3);
        let err = Opt::try_parse_from(["auction-loadgen", "--proxy-share", "a third"]).unwrap_err().to_string();
        assert!(err.contains("--proxy-share"), "{err}");
    }
}
