//! `auction-loadgen`: bid throughput and latency against the bidding service, measured the way
//! that cannot hide a stall: open-loop arrivals on a fixed schedule, latency from the scheduled
//! send time, per-worker HdrHistograms merged at the end.
//!
//! - [`opt`]: the command line.
//! - [`run`]: one run.
//! - [`report`]: the results, as a table or JSON.
//! - [`plot`]: `auction-loadgen plot`, latency percentile plots of reports, as SVG.

mod accepted;
mod bidder;
mod link;
mod lister;
pub mod opt;
pub mod plot;
pub mod report;
mod run;
mod watcher;

pub use run::run;
