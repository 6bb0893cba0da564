//! `auctionctl`: parse, run, and exit with the documented code (0 ok, 1 the server said no,
//! 2 usage, 3 unreachable).

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let opt = auction_cli::opt::Opt::parse();
    match auction_cli::run(opt).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
