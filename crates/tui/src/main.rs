//! `auction-tui`: parse the options and run; errors are one line, never a backtrace.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    match auction_tui::run(auction_tui::Opt::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("auction-tui: {e:#}");
            ExitCode::FAILURE
        }
    }
}
