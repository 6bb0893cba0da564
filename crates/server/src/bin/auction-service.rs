//! The auction service binary: configuration from config.yaml and the environment, then run until
//! SIGINT/SIGTERM.

use auction_server::config::AuctionConfig;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    auction_server::runtime::main_with::<AuctionConfig, _, _>(|config, shutdown| async move {
        auction_server::auction::App::build(config, &shutdown).await?.run(shutdown).await
    })
    .await
}
