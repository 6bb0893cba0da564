//! The `auction-loadgen` binary: parse the options, run, print the report (or, `plot`, draw
//! reports).

use std::process::ExitCode;

use auction_loadgen::opt::{Command, Opt, Output};
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let mut opt = Opt::parse();
    if let Some(Command::Plot(plot)) = opt.command.take() {
        return match auction_loadgen::plot::run(&plot) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("auction-loadgen plot: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
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
