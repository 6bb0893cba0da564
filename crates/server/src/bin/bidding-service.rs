//! The bidding service binary: configuration from config.yaml and the environment, then run until
//! SIGINT/SIGTERM.

use auction_server::config::BiddingConfig;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    auction_server::runtime::main_with::<BiddingConfig, _, _>(|config, shutdown| async move {
        auction_server::bidding::App::build(config, &shutdown).await?.run(shutdown).await
    })
    .await
}
