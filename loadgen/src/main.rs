//! The `auction-loadgen` binary: parse the options, run, print the report.

use std::process::ExitCode;

use auction_loadgen::opt::{Opt, Output};
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let opt = Opt::parse();
    let output = opt.output;
    match auction_loadgen::run(opt).await {
        Ok(report) => {
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default()),
                Output::Table => print!("{}", report.table()),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("auction-loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}
